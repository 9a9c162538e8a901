"""The worker's output through librdkafka: decisions, alerts, dead letters, frames and table
changelogs, produced by confluent-kafka's producer (C) instead of Faust's aiokafka producer
(pure Python, tens of microseconds a message; docs/performance.md).

Faust still consumes, runs the agents, recovers the tables and commits offsets. At-least-once
holds because Faust flushes its producer before every offset commit, and the worker makes that
flush also wait until librdkafka has had every message handed to it so far acknowledged
(``flush``). A message librdkafka finally fails to deliver (after its own retries) makes the next
flush raise, so the offsets of the events behind it are never committed: the worker stops and
the events are processed again after its restart.

Table changelogs keep Faust's format (JSON key, JSON value, a null value deletes), so Faust's
recovery and standby replicas read them as before; the acknowledged offsets are recorded in the
table's store as Faust's own producer callback does, so a restart reads only what is new.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from faust.types import TP

log = logging.getLogger(__name__)

PersistOffset = Callable[[TP, int], None]


class DeliveryFailed(KafkaException):
    """librdkafka gave up on a message; offsets must not be committed past it."""


class NativeProducer:
    """Sends messages through one confluent-kafka producer and waits for their delivery in
    ``flush`` (from the event loop, without blocking it)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = Producer({**config, "on_delivery": self._on_delivery})
        self._failure: KafkaError | None = None
        self._persisters: dict[str, PersistOffset] = {}
        self._acknowledged: dict[tuple[str, int], int] = {}
        self.sent_by_topic: dict[str, int] = {}
        self.failures = 0
        self._headers: dict[str, bytes] = {}

    def frame(self, headers: dict[str, bytes]) -> None:
        """Put ``headers[topic]`` (a wire-format header, pipeline/contracts/wire_format.py) before
        every value sent to that topic."""
        self._headers = dict(headers)

    def track_offsets(self, topic: str, persist: PersistOffset) -> None:
        """Call ``persist(tp, offset)`` with the newest acknowledged offset of each partition of
        ``topic`` (a table's changelog) at every flush."""
        self._persisters[topic] = persist

    def send(self, topic: str, value: bytes | None, key: bytes | None = None, partition: int = -1) -> None:
        """Hand a message to librdkafka (returns at once). Without ``partition``, the key picks it
        with murmur2, as Faust's and the other clients' partitioner does."""
        if self._headers and value is not None and topic in self._headers:
            value = self._headers[topic] + value
        while True:
            try:
                self._producer.produce(topic, value, key, partition)
                break
            except BufferError:  # librdkafka's queue is full: let it drain (backpressure)
                self._producer.poll(0.05)
        self.sent_by_topic[topic] = self.sent_by_topic.get(topic, 0) + 1

    def poll(self) -> None:
        """Serve delivery reports; cheap, called after every batch."""
        self._producer.poll(0)

    async def flush(self) -> None:
        """Wait until every message sent so far is acknowledged; raise if one was lost."""
        while self._producer.flush(0):
            await asyncio.sleep(0.002)
        self._persist_offsets()
        if self._failure is not None:
            raise DeliveryFailed(self._failure)

    def deliver(self, timeout: float) -> None:
        """``flush`` for a thread of its own (blocking): wait until every message sent so far is
        acknowledged; raise if one was lost or some are still undelivered after ``timeout``
        seconds. For a producer that tracks no table offsets (those are the event loop's)."""
        remaining = self._producer.flush(timeout)
        if self._failure is not None:
            raise DeliveryFailed(self._failure)
        if remaining:
            raise DeliveryFailed(KafkaError(KafkaError._MSG_TIMED_OUT, f"{remaining} messages undelivered"))

    def close(self, timeout: float = 30.0) -> int:
        """Flush (blocking) and return how many messages were still undelivered."""
        remaining = self._producer.flush(timeout)
        self._persist_offsets()
        return remaining

    def pending(self) -> int:
        return len(self._producer)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            log.error("lost a message to %s: %s", message.topic(), error)
            self.failures += 1
            self._failure = self._failure or error
            return
        topic = message.topic()
        if topic in self._persisters:
            key = (topic, message.partition())
            offset = message.offset()
            if offset > self._acknowledged.get(key, -1):
                self._acknowledged[key] = offset

    def _persist_offsets(self) -> None:
        for (topic, partition), offset in self._acknowledged.items():
            self._persisters[topic](TP(topic, partition), offset)
        self._acknowledged.clear()
