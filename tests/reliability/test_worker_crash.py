"""Two workers under steady load; one is killed with SIGKILL mid-stream. The survivor takes over
its partitions: every transaction produced gets a decision, duplicates are recognisable by id,
and the monitor (which counts by id) counts each transaction once."""

from __future__ import annotations

import signal
import time

import pytest

from pipeline.tools.simulator.generator import FraudRates, TrafficGenerator
from tests.conftest import free_port
from tests.support import SteadyLoad, decisions_for_every_id

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_kill_9_of_one_worker_loses_nothing(make_settings, start_worker) -> None:
    settings = make_settings(topic_partitions=4, worker_session_timeout_seconds=8, model_min_labels=10**9)
    first = start_worker(settings)
    second = start_worker(settings.model_copy(update={"worker_web_port": free_port()}))
    first.wait_ready()
    second.wait_ready()
    assert second.process.poll() is None and first.process.poll() is None

    generator = TrafficGenerator(seed=21, customers=400, merchants=80, rate=80, rhythm=False,
                                 fraud=FraudRates(0.02, 0.02, 0.01), run_id="crash")  # fmt: skip
    items = list(generator.events(count=2400))  # ~30 s of traffic at 80/s
    load = SteadyLoad(settings, [item.transaction for item in items], rate=80).start()
    time.sleep(10)
    killed_at = time.monotonic()
    second.stop(signal.SIGKILL)
    ids = load.finish()
    decisions = decisions_for_every_id(settings, ids, {"survivor": first, "killed worker": second})
    recovered_after = time.monotonic() - killed_at
    decided = [d["transaction_id"] for d in decisions]
    duplicates = len(decided) - len(set(decided))
    print(f"{len(ids)} produced, {len(set(decided))} decided, {duplicates} duplicate decisions, "
          f"all decided {recovered_after:.0f} s after the kill")  # fmt: skip
    assert set(decided) == ids
    assert first.process.poll() is None, "the survivor kept running"
