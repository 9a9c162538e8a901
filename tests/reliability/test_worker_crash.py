"""Two workers under steady load; one is killed with SIGKILL mid-stream. The survivor takes over
its partitions: every transaction produced gets a decision, duplicates are recognisable by id,
and the monitor (which counts by id) counts each transaction once."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from pipeline.tools.simulator.generator import FraudRates, TrafficGenerator
from pipeline.worker.topics import internal_topic_names
from tests.conftest import free_port
from tests.support import consume_until, trace_ids

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
    producer = Producer(settings.producer_config())
    acknowledged: list[str] = []
    errors: list[Any] = []

    def on_delivery(error: Any, message: Any) -> None:
        (errors if error else acknowledged).append(error or orjson.loads(message.value())["transaction_id"])

    def produce_steadily() -> None:
        started = time.monotonic()
        for index, item in enumerate(items):
            delay = started + index / 80 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            producer.produce(settings.topic_transactions, orjson.dumps(item.transaction),
                             item.transaction["card_token"].encode(), on_delivery=on_delivery)  # fmt: skip
            producer.poll(0)
        producer.flush(30)

    load = threading.Thread(target=produce_steadily)
    load.start()
    time.sleep(10)
    killed_at = time.monotonic()
    second.stop(signal.SIGKILL)
    load.join(60)
    assert not errors and len(acknowledged) == len(items)

    ids = set(acknowledged)
    read_so_far: list[dict[str, Any]] = []

    def all_decided(got: list[dict[str, Any]]) -> bool:
        read_so_far[:] = got
        return ids <= {d["transaction_id"] for d in got}

    try:
        decisions = consume_until(settings, settings.topic_decisions, all_decided, timeout=180)
    except AssertionError:  # say which were lost and what the survivor logged, for the diagnosis
        missing = sorted(ids - {d["transaction_id"] for d in read_so_far})
        topics = [settings.topic_transactions, *internal_topic_names(settings), settings.topic_dead_letter]
        raise AssertionError(
            f"{len(missing)} of {len(ids)} transactions never decided (first: {missing[:5]}); survivor "
            f"running: {first.process.poll() is None}\n{trace_ids(settings, topics, missing[:5])}\n"
            f"survivor's log ({first.log_path}):\n{first.log()}\nkilled worker's log:\n{second.log()}"
        ) from None
    recovered_after = time.monotonic() - killed_at
    decided = [d["transaction_id"] for d in decisions]
    duplicates = len(decided) - len(set(decided))
    print(f"{len(ids)} produced, {len(set(decided))} decided, {duplicates} duplicate decisions, "
          f"all decided {recovered_after:.0f} s after the kill")  # fmt: skip
    assert set(decided) == ids
    assert first.process.poll() is None, "the survivor kept running"
