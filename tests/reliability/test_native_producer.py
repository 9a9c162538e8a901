"""The worker's librdkafka producer on the real broker: a flush returns only once everything sent
is acknowledged (the worker commits its input offsets after it), reports the changelog offsets a
table store records, and fails when a message is lost, so that no offset is committed past it."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from pipeline.config import Settings
from pipeline.tools.simulator.generator import TrafficGenerator
from pipeline.worker.producer import DeliveryFailed, NativeProducer
from pipeline.worker.topics import internal_topic_names
from tests.support import produce

pytestmark = [pytest.mark.kafka]


def _end_offsets(settings: Settings, topic: str, partitions: int) -> list[int]:
    consumer = Consumer(settings.confluent_config(**{"group.id": "offsets-reader"}))
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            for partition in range(partitions)
        ]
    finally:
        consumer.close()


def test_flush_waits_for_every_message_and_reports_the_newest_offsets(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    topic = settings.topic_decisions
    producer = NativeProducer(settings.producer_config(**{"linger.ms": 50}))
    persisted: dict[int, int] = {}
    producer.track_offsets(topic, lambda tp, offset: persisted.__setitem__(tp.partition, offset))

    for index in range(500):
        producer.send(topic, b'{"n": %d}' % index, partition=index % 2)
    producer.send(topic, b"keyed", key=b"tok_abc")
    assert producer.pending() > 0  # linger: nothing has left yet

    asyncio.run(producer.flush())

    assert producer.pending() == 0
    ends = _end_offsets(settings, topic, 2)
    assert sum(ends) == 501
    assert persisted == {0: ends[0] - 1, 1: ends[1] - 1}
    assert producer.close() == 0


def test_a_message_the_broker_refuses_makes_the_flush_fail(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    # The producer accepts it; the topic (max.message.bytes 1 MiB) does not.
    producer = NativeProducer(settings.producer_config(**{"message.max.bytes": 5_000_000}))
    producer.send(settings.topic_decisions, b"small")
    producer.send(settings.topic_decisions, os.urandom(2_000_000))

    with pytest.raises(DeliveryFailed, match=r"(?i)too large|MSG_SIZE"):
        asyncio.run(producer.flush())


@pytest.mark.slow
def test_a_decision_the_broker_refuses_stops_the_worker_before_it_commits(
    make_settings: Callable[..., Settings], start_worker: Callable[[Settings], Any]
) -> None:
    """At-least-once through the worker's commit: decisions too large for their topic are lost by
    librdkafka; the worker must then stop without committing the offsets of the frames that
    produced them, so that a restart (with the topic fixed) decides those transactions again."""
    settings = make_settings()
    admin = AdminClient(settings.confluent_config())
    too_small = ConfigResource(
        "topic",
        settings.topic_decisions,
        incremental_configs=[
            ConfigEntry("max.message.bytes", "64", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([too_small])[too_small].result(30)
    worker = start_worker(settings)
    worker.wait_ready()
    generator = TrafficGenerator(seed=5, customers=50, merchants=10, rate=50, rhythm=False, run_id="lost")
    transactions = [item.transaction for item in generator.events(count=40)]
    produce(settings, settings.topic_transactions, ((t["card_token"], t) for t in transactions))

    try:
        code = worker.process.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker went on after losing decisions:\n{worker.log()}")
    assert code != 0
    assert "lost a message to " + settings.topic_decisions in worker.log_path.read_text(errors="replace")

    by_card = internal_topic_names(settings)[-1]
    reader = Consumer(settings.confluent_config(**{"group.id": settings.app_id}))
    try:
        partitions = [TopicPartition(by_card, p) for p in range(settings.topic_partitions)]
        committed = {tp.partition: tp.offset for tp in reader.committed(partitions, timeout=10)}
        ends = {p: reader.get_watermark_offsets(TopicPartition(by_card, p), timeout=10)[1] for p in committed}
    finally:
        reader.close()
    assert sum(ends.values()) > 0  # the frames reached the scoring stage
    for partition, end in ends.items():
        assert committed[partition] < end, f"by-card[{partition}] committed past lost decisions"
