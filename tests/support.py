"""Helpers for tests that talk to the real broker: produce, and consume until a condition holds."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from pipeline.config import Settings


def abroad_card_present(card_token: str) -> dict[str, Any]:
    """Transaction fields of a card-present payment in Brazil with a German card: one alone is
    ordinary, a second within hours fires the rule UT-burst-abroad (so it shows the card's history)."""
    return {
        "card_token": card_token,
        "country": "BR",
        "card_country": "DE",
        "channel": "card_present",
        "device_id": None,
        "ip_address": None,
        "shipping_matches_billing": None,
    }


def produce(
    settings: Settings, topic: str, records: Iterable[tuple[str | None, bytes | dict[str, Any]]]
) -> int:
    """Produce (key, value) records and wait until every one is acknowledged."""
    producer = Producer(settings.producer_config())
    errors: list[str] = []
    count = 0

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            errors.append(str(error))

    for key, value in records:
        payload = value if isinstance(value, bytes) else orjson.dumps(value)
        while True:
            try:
                producer.produce(topic, payload, key.encode() if key else None, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
    remaining = producer.flush(30)
    assert not errors and not remaining, f"delivery failed: {errors[:3]}, {remaining} undelivered"
    return count


def consume_until(
    settings: Settings,
    topic: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 90.0,
    decode: Callable[[bytes], Any] = orjson.loads,
) -> list[dict[str, Any]]:
    """Read ``topic`` from the start, decoding JSON (or with ``decode``), until ``done(messages)``
    or the timeout."""
    consumer = Consumer(
        settings.confluent_config(
            **{
                "group.id": f"test-reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([topic])
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error():
                    continue
                messages.append(decode(message.value()))
            if done(messages):
                return messages
    finally:
        consumer.close()
    raise AssertionError(f"condition not met on {topic} within {timeout}s; got {len(messages)} messages")


def trace_ids(settings: Settings, topics: Iterable[str], ids: Iterable[str], timeout: float = 20.0) -> str:
    """Where each of ``ids`` appears in ``topics`` (read whole, values searched as bytes), and the
    worker group's committed offsets of those partitions: a lost transaction's trail through the
    stages, for a failing test's message."""
    from confluent_kafka import TopicPartition

    wanted = {i.encode(): i for i in ids}
    found: dict[str, list[str]] = {i: [] for i in wanted.values()}
    topics = list(topics)
    consumer = Consumer(settings.confluent_config(**{
        "group.id": f"test-trace-{uuid.uuid4().hex}", "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }))  # fmt: skip
    partitions: list[TopicPartition] = []
    try:
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            partitions += [TopicPartition(topic, p) for p in meta.partitions]
        ends = {}
        for tp in partitions:
            ends[(tp.topic, tp.partition)] = consumer.get_watermark_offsets(tp, timeout=10)[1]
        consumer.assign([TopicPartition(tp.topic, tp.partition, 0) for tp in partitions])
        left = {key for key, end in ends.items() if end > 0}
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                if message.error():
                    continue
                key = (message.topic(), message.partition())
                value = message.value() or b""
                for needle, name in wanted.items():
                    if needle in value:
                        place = f"{key[0]}[{key[1]}]@{message.offset()}"
                        found[name].append(f"{place} t={message.timestamp()[1]}")
                if message.offset() + 1 >= ends[key]:
                    left.discard(key)
    finally:
        consumer.close()
    group = Consumer(settings.confluent_config(**{"group.id": settings.app_id, "enable.auto.commit": False}))
    try:
        committed = group.committed(partitions, timeout=10)
    finally:
        group.close()
    offsets = ", ".join(f"{tp.topic}[{tp.partition}]={tp.offset}" for tp in committed)
    trail = "\n".join(f"  {name}: {', '.join(places) or 'nowhere'}" for name, places in found.items())
    return f"trail:\n{trail}\ncommitted offsets of {settings.app_id}: {offsets}\nends: {ends}"
