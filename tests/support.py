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
