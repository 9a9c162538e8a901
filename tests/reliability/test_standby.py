"""Standby replicas (FRAUD_WORKER_STANDBY_REPLICAS, issue 22 item 2), on a real broker: with two
workers, each keeps a warm copy of the other's table partitions; when one dies, the other takes
its partitions over and reads only the changelog records its copy lacked, not the changelog from
its start."""

from __future__ import annotations

import signal
import time

import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

from pipeline.worker.topics import changelog_topic_names
from tests.conftest import free_port
from tests.e2e.test_pipeline import simulated
from tests.e2e.test_restart import decisions_for
from tests.reliability.test_recovery_progress import _changelog_history
from tests.support import produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _changelog_offsets(settings) -> int:
    consumer = Consumer(settings.confluent_config(**{"group.id": "test-standby-offsets"}))
    try:
        return sum(
            high - low
            for topic in changelog_topic_names(settings)
            for partition in range(settings.topic_partitions)
            for low, high in [consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)]
        )
    finally:
        consumer.close()


def test_a_failover_to_a_worker_with_a_standby_reads_only_what_its_copy_lacked(
    make_settings, start_worker
) -> None:
    settings = make_settings(worker_standby_replicas=1, worker_session_timeout_seconds=6)
    first = start_worker(settings)
    second = start_worker(settings.model_copy(update={"worker_web_port": free_port()}))
    first.wait_ready()  # again: the second worker's arrival rebalanced it
    _changelog_history(settings, changelog_topic_names(settings)[-1], 6000)  # a long history
    history = simulated(1000)
    produce(settings, settings.topic_transactions, [(t["card_token"], t) for t in history])
    decisions_for(settings, {t["transaction_id"] for t in history})
    time.sleep(8)  # the standbys read the changelogs as they grow (Faust's own pace)
    changelog = _changelog_offsets(settings)

    run_before = requests.get(f"{second.url}/readyz", timeout=5).json()["recovery"]["run"]
    first.stop(signal.SIGKILL)
    deadline = time.monotonic() + 90
    while True:  # the second takes the first's partitions over once its session expires (6 s)
        assert time.monotonic() < deadline, second.log()
        answer = requests.get(f"{second.url}/readyz", timeout=5)
        recovery = answer.json()["recovery"]
        # A takeover that reads almost nothing is over between two polls: wait for the run
        # counter to move rather than for a 503 that may never be seen.
        if answer.status_code == 200 and recovery["run"] > run_before:
            break
        time.sleep(0.2)
    print(f"changelogs: {changelog:,} records; the takeover restored {recovery['total']:,}")
    assert changelog > 8000
    # Without a standby, the taken-over partition's changelogs (about half of them, over 4,000
    # records) are read from their start (test_recovery_progress).
    assert recovery["state"] == "recovered" and recovery["run"] > run_before, recovery  # the takeover's
    assert recovery["total"] < changelog / 20, recovery
