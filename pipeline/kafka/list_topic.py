"""The worker's (and the monitor's) Kafka edge of the block/allow lists.

Lists are global, not partitioned: every worker needs every entry. So each worker reads the whole
compacted list-updates topic itself, with a consumer of its own that is assigned every partition
(no consumer group): first up to the end while the worker is built, so it never scores with
stale lists, then it follows the topic in the background. A Faust ``GlobalTable`` would do the
same job, but faust-streaming documents that a GlobalTable with several workers may loop in
recovery (faust/tables/globaltable.py) and has open reports of workers missing updates
(faust-streaming/faust#283), so the topic is read directly.

Invalid updates are dead-lettered exactly once, by an agent on the same topic in the app's
consumer group (one worker per partition); the followers skip them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import NamedTuple

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge

from pipeline.config import Settings
from pipeline.contracts.list_updates import parse_list_update
from pipeline.contracts.validation import Invalid
from pipeline.detection.entity_lists import LIST_NAMES, EntityLists, ListUpdate

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
CATCH_UP_TIMEOUT_SECONDS = 60.0


class ListReadError(RuntimeError):
    """The list-updates topic cannot be read (missing topic, broker unreachable in time)."""


class Record(NamedTuple):
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


class ListTopicReader:
    """Reads every partition of the list-updates topic from the beginning; never commits.

    ``catch_up`` reads to the end of every partition; ``poll`` returns what arrived since. Both
    may be called from a worker thread; ``close`` waits for a running ``poll``.
    """

    def __init__(self, settings: Settings, client_name: str) -> None:
        self.topic = settings.topic_lists
        name = f"{settings.app_id}-{client_name}-{uuid.uuid4().hex[:8]}"
        self._consumer = Consumer(
            settings.confluent_config(
                **{
                    "group.id": name,  # required by the client; never joined (assign) nor committed
                    "client.id": name,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                }
            )
        )
        self._lock = threading.Lock()
        self._closed = False
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=30)
        except KafkaException as exc:
            self._consumer.close()
            raise ListReadError(f"cannot read the list topic {self.topic!r}: {exc}") from exc
        info = metadata.topics.get(self.topic)
        if info is None or info.error is not None or not info.partitions:
            self._consumer.close()
            why = info.error if info is not None and info.error is not None else "no partitions"
            raise ListReadError(f"list topic {self.topic!r} is not available ({why}); run `fraud topics`")
        self.partitions = sorted(info.partitions)
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in self.partitions])

    def catch_up(self, timeout: float = CATCH_UP_TIMEOUT_SECONDS) -> list[Record]:
        """Everything up to the end of every partition; raises ListReadError after ``timeout``."""
        pending = set(self.partitions)
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() >= deadline:
                raise ListReadError(
                    f"list topic {self.topic!r}: partitions {sorted(pending)} not read to the end "
                    f"in {timeout:.0f} s"
                )
            records += self._consume(POLL_SECONDS, pending)
        return records

    def poll(self, timeout: float = POLL_SECONDS) -> list[Record]:
        """The records that arrived since the last call (waits up to ``timeout`` for the first)."""
        return self._consume(timeout, set())

    def _consume(self, timeout: float, pending: set[int]) -> list[Record]:
        with self._lock:
            if self._closed:
                return []
            messages = self._consumer.consume(500, timeout)
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                elif error.fatal():
                    raise KafkaException(error)
                else:
                    log.warning("list topic %s: %s", self.topic, error)
                continue
            records.append(Record(message.key(), message.value(), message.partition(), message.offset()))
        return records

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._consumer.close()


def describe(update: ListUpdate) -> str:
    """'add block:card:tok_4f9a…3e by alice' for logs (card tokens shortened)."""
    value = update.value
    if update.kind == "card" and len(value) > 10:
        value = f"{value[:8]}…{value[-2:]}"
    who = update.message["who"] if update.message is not None else "a tombstone"
    return f"{update.action} {update.list}:{update.kind}:{value} by {who}"


class ListMetrics:
    """What a follower applied, and the entries it holds (per worker)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.updates = Counter(
            "fraud_list_updates",
            "List updates read by this worker, by outcome (applied, unchanged, refused)",
            ["outcome"],
            registry=registry,
        )
        self.entries = Gauge(
            "fraud_list_entries",
            "Entries on the list-updates topic's lists, by list",
            ["list"],
            registry=registry,
        )
        for outcome in ("applied", "unchanged", "refused"):
            self.updates.labels(outcome)
        for name in LIST_NAMES:
            self.entries.labels(name)


def apply_records(
    lists: EntityLists, records: list[Record], max_bytes: int, metrics: ListMetrics | None
) -> int:
    """Apply the valid updates among ``records`` in order; the invalid ones are skipped (the
    checking agent dead-letters them). Returns how many changed the lists."""
    changed = 0
    for record in records:
        update = parse_list_update(record.key, record.value, max_bytes)
        if isinstance(update, Invalid):
            outcome = "refused"
        elif lists.apply(update):
            outcome, changed = "applied", changed + 1
            log.info("list update applied: %s", describe(update))
        else:
            outcome = "unchanged"
        if metrics is not None:
            metrics.updates.labels(outcome).inc()
    if metrics is not None:
        for name, count in lists.counts().items():
            metrics.entries.labels(name).set(count)
    return changed
