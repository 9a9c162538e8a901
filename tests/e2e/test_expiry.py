"""State of idle entities and labels that never came are deleted: the tables stay bounded."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest
from confluent_kafka import Consumer

from pipeline.config import Settings
from pipeline.worker.topics import changelog_topic_names
from tests.e2e.test_pipeline import metric_value
from tests.e2e.test_restart import transaction
from tests.support import consume_until, produce

pytestmark = pytest.mark.kafka


def test_idle_state_and_unlabelled_entries_expire(make_settings, start_worker) -> None:
    # TTLs of about 30 minutes of event time; the traffic spans three hours.
    settings = make_settings(topic_partitions=1, entity_ttl_days=0.02, pending_label_ttl_hours=0.5)
    worker = start_worker(settings)
    txns = [
        transaction(
            f"exp-{i}",
            minutes_ago=180 - i * 6,
            card_token=f"tok_expire{i:06d}",
            customer_id=f"cust-exp-{i}",
            terminal_id=f"t-exp-{i}",
            device_id=f"dev-exp-{i}",
        )
        for i in range(30)
    ]
    produce(settings, settings.topic_transactions, [(t["card_token"], t) for t in txns])
    consume_until(settings, settings.topic_decisions, lambda got: len(got) >= len(txns))
    deadline = time.monotonic() + 30
    while metric_value(worker.metrics(), "fraud_table_entries_expired_total", table="card-rows") == 0:
        assert time.monotonic() < deadline, worker.metrics()
        time.sleep(0.3)
    metrics = worker.metrics()
    for table in ("card-rows", "terminal-rows", "device-rows", "customer-rows", "pending-labels"):
        expired = metric_value(metrics, "fraud_table_entries_expired_total", table=table)
        assert 15 <= expired <= 30, (table, expired)
    assert metric_value(metrics, "fraud_pending_label_entries") <= 10
    # Each deletion reaches the table's changelog as a tombstone, so compaction drops the entry and a
    # worker restoring the table does not read it back (docs/operations.md, "Table recovery").
    [changelog] = [name for name in changelog_topic_names(settings) if name.endswith("-card-rows-changelog")]
    tombstones = _tombstones(settings, changelog, at_least=15)
    assert tombstones <= {t["card_token"] for t in txns}, tombstones


def _tombstones(settings: Settings, topic: str, at_least: int, timeout: float = 60.0) -> set[str]:
    """The keys of the tombstones (messages without a value) of ``topic``, read from its start."""
    consumer = Consumer(
        settings.confluent_config(
            **{"group.id": f"test-tombstones-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
        )
    )
    consumer.subscribe([topic])
    keys: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(keys) < at_least:
            assert time.monotonic() < deadline, f"{len(keys)} tombstones on {topic} within {timeout}s"
            for message in consumer.consume(500, timeout=0.5):
                if not message.error() and message.value() is None:
                    keys.add(orjson.loads(message.key()))
    finally:
        consumer.close()
    return keys
