"""The broker is stopped and started again during load: the producer and the worker reconnect by
themselves and every transaction acknowledged by the broker gets its decision."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from pipeline.config import Settings
from pipeline.tools.local_kafka import LocalKafka
from pipeline.tools.simulator.generator import TrafficGenerator
from tests.conftest import free_port
from tests.support import consume_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def own_broker(tmp_path: Path):
    """A broker of this test's own (the session's broker must not restart under other tests)."""
    defaults = Settings()
    broker = LocalKafka(
        defaults.local_kafka_version, free_port(), defaults.local_kafka_home, controller_port=free_port()
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        broker.wipe()


def test_broker_restart_during_load_loses_nothing(
    own_broker: LocalKafka, make_settings, start_worker
) -> None:
    settings = make_settings(kafka_bootstrap_servers=own_broker.bootstrap_servers, model_min_labels=10**9)
    worker = start_worker(settings)
    items = list(
        TrafficGenerator(seed=5, customers=300, merchants=60, rate=50, rhythm=False, run_id="brk").events(
            count=1500
        )
    )
    producer = Producer(settings.producer_config(**{"message.timeout.ms": 120_000}))
    acknowledged: list[str] = []
    failed: list[Any] = []

    def on_delivery(error: Any, message: Any) -> None:
        if error:
            failed.append(error)
        else:
            acknowledged.append(orjson.loads(message.value())["transaction_id"])

    def produce_steadily() -> None:
        started = time.monotonic()
        for index, item in enumerate(items):
            delay = started + index / 50 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            while True:
                try:
                    producer.produce(
                        settings.topic_transactions,
                        orjson.dumps(item.transaction),
                        item.transaction["card_token"].encode(),
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        producer.flush(150)

    load = threading.Thread(target=produce_steadily)
    load.start()
    time.sleep(8)
    own_broker.stop()
    stopped_at = time.monotonic()
    time.sleep(5)
    own_broker.start()
    load.join(240)
    assert not load.is_alive()

    ids = set(acknowledged)
    assert len(ids) + len(failed) == len(items)
    decisions = consume_until(
        settings, settings.topic_decisions, lambda got: ids <= {d["transaction_id"] for d in got}, timeout=240
    )
    print(
        f"{len(items)} produced, {len(ids)} acknowledged, {len(failed)} failed deliveries, "
        f"{len({d['transaction_id'] for d in decisions})} decided, all within "
        f"{time.monotonic() - stopped_at:.0f} s of the broker stopping"
    )
    assert ids <= {d["transaction_id"] for d in decisions}
    assert worker.process.poll() is None, "the worker survived the broker restart"
