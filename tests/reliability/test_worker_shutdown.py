"""A worker asked to stop (SIGTERM) while its broker is gone stops within 10 s and says why it
could not finish cleanly, instead of waiting for a broker that may never come back."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from pipeline.tools.simulator.generator import TrafficGenerator
from tests.reliability.test_broker_restart import own_broker  # noqa: F401 - fixture reused
from tests.support import consume_until, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_sigterm_with_the_broker_gone_stops_within_10_s(own_broker, make_settings, start_worker) -> None:  # noqa: F811
    settings = make_settings(kafka_bootstrap_servers=own_broker.bootstrap_servers, model_min_labels=10**9)
    worker = start_worker(settings)
    items = list(TrafficGenerator(seed=3, customers=50, merchants=10, rate=50, rhythm=False,
                                  run_id="term").events(count=50))  # fmt: skip
    produce(settings, settings.topic_transactions,
            [(i.transaction["card_token"], i.transaction) for i in items])  # fmt: skip
    consume_until(settings, settings.topic_decisions, lambda got: len(got) >= len(items), timeout=60)

    own_broker.stop()
    time.sleep(3)  # the worker notices: its fetches and heartbeats fail
    asked = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    try:
        code = worker.process.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 30 s after SIGTERM:\n{worker.log()}")
    took = time.monotonic() - asked
    log = worker.log()
    print(f"exited with {code} {took:.1f} s after SIGTERM")
    assert took < 10, f"{took:.1f} s:\n{log}"
    assert "stopping without Kafka" in log, log
