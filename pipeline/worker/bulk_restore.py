"""Table recovery in bulk: the changelog records a worker must restore are read by a librdkafka
consumer in a thread and written to RocksDB a batch at a time, before Faust reads what is left its
own way (docs/reliability.md, "Table recovery").

Faust hands each changelog record through its consumer thread, its conductor, a queue and its
recovery loop, several coroutine steps per record: about 1,000 to 7,000 records/s on this
project's 2-core machine, so a worker that lost its disk after a day of demo traffic needed
minutes. librdkafka with RocksDB write batches does 26,000/s of 1.5 KB records on the same busy
machine. The result is the same as Faust's own recovery (``Store.apply_changelog_batch``): each
record's raw value put (a tombstone deleted) in the partition's database, in offset order, and
the partition's persisted offset set after every batch; Faust then seeks each partition to the
offset restored and reads the rest (a few records) as it always does.

``BulkRecovery`` is Faust's ``Recovery`` with one step added: once the offsets to read from are
known (``_build_offsets`` of the active partitions), the partitions with at least ``min_records``
records to read (FRAUD_WORKER_BULK_RESTORE_MIN_RECORDS) are restored in bulk, for at most
``TIME_BUDGET`` seconds (Faust's wait for that step, ``broker_request_timeout``, 90 s, is extended
by as much),
and their offsets in Faust's ``active_offsets`` move with each batch, which is what /readyz and
the progress lines show. A rebalance stops the thread between two batches (``RestoreGuard``): the
store's revoke and assign wait for the batch being written. Standby partitions are read by Faust
as before.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from faust.tables.recovery import Recovery
from faust.types import TP

log = logging.getLogger("pipeline.worker.recovery_progress")  # its lines show at any --loglevel

MIN_RECORDS = 1000
TIME_BUDGET = 600.0
BATCH = 5000


@dataclass
class RestoreGuard:
    """Lets a store stop a bulk restore between two batches, and wait for the batch being written:
    a restore writes only while the guard's epoch is the one it started with."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    epoch: int = 0

    def stop(self) -> None:
        """Stop any restore of this store's partitions; return once no batch is being written."""
        with self.lock:
            self.epoch += 1


@dataclass(frozen=True)
class Target:
    """One changelog partition to restore: from ``start`` (the last offset held, -1: none) to
    ``highwater`` (the last offset to read), into ``store``."""

    tp: TP
    start: int
    highwater: int
    store: Any  # CachedRocksDBStore: write_raw(tp, records) and restore_guard
    epoch: int = 0


def restore(
    config: Mapping[str, Any],
    targets: list[Target],
    offsets: MutableMapping[TP, int],
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Read each target's records after ``start`` up to its highwater, write them to its store in
    batches and record the last offset written in ``offsets``; stop at ``deadline``, or when a
    store's guard is cancelled. Return how many records were written."""
    by_key = {(t.tp.topic, t.tp.partition): t for t in targets}
    consumer = Consumer(
        {**config, "group.id": f"bulk-restore-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(t.tp.topic, t.tp.partition, t.start + 1) for t in targets])
    left = {key for key, t in by_key.items() if t.highwater > t.start}
    written = 0
    try:
        while left and clock() < deadline:
            messages = consumer.consume(BATCH, timeout=0.5)
            batches: dict[tuple[str, int], list[tuple[bytes, bytes | None, int]]] = {}
            for message in messages:
                if message.error():
                    continue
                key = (message.topic(), message.partition())
                target = by_key.get(key)
                if target is not None and key in left and message.offset() <= target.highwater:
                    batches.setdefault(key, []).append((message.key(), message.value(), message.offset()))
            for key, records in batches.items():
                target = by_key[key]
                guard: RestoreGuard = target.store.restore_guard
                with guard.lock:
                    if guard.epoch != target.epoch:  # revoked or reassigned since: stop
                        return written
                    target.store.write_raw(target.tp, records)
                offsets[target.tp] = records[-1][2]
                written += len(records)
                if records[-1][2] >= target.highwater:
                    left.discard(key)
            if not batches:  # compaction may have removed the last offsets: done once past them
                positions = consumer.position([TopicPartition(*key) for key in left])
                for position in positions:
                    key = (position.topic, position.partition)
                    if position.offset > by_key[key].highwater:
                        left.discard(key)
    finally:
        consumer.close()
    return written


class BulkRecovery(Recovery):
    """Faust's recovery, with the active changelog partitions restored in bulk first (see above)."""

    consumer_config: Mapping[str, Any] = {}
    min_records: int = MIN_RECORDS
    run = 0
    """Recoveries so far (each rebalance's), and where the last one started reading each active
    partition: exact figures for the progress (recovery_progress.py), however short it was."""
    read_from: Mapping[TP, int] = {}
    on_change: Callable[[], object] = staticmethod(lambda: None)
    """Told when a recovery starts, knows where it reads from, and ends (RecoveryWatch.wake)."""

    def _set_recovery_started(self) -> None:
        super()._set_recovery_started()
        self.on_change()

    def _set_recovery_ended(self) -> None:
        super()._set_recovery_ended()
        self.on_change()

    async def _wait(self, coro: Any, timeout: Any = None) -> None:
        """Faust's wait for one recovery step; the step that builds the offsets, which now
        restores in bulk, may take ``TIME_BUDGET`` longer (the restore stops by then, so Faust never
        goes on while it writes)."""
        if timeout is not None and getattr(getattr(coro, "cr_code", None), "co_name", "") == "_build_offsets":
            timeout = float(timeout) + TIME_BUDGET
        await super()._wait(coro, timeout=timeout)

    async def _build_offsets(self, consumer: Any, tps: Any, destination: Any, title: str) -> None:
        await super()._build_offsets(consumer, tps, destination, title)
        if title != "active":
            return
        self.read_from = {tp: destination[tp] for tp in tps}
        self.run += 1
        self.on_change()
        targets = []
        for tp in tps:
            table = self.tp_to_table.get(tp)
            store = getattr(table, "data", None)
            start, highwater = destination.get(tp), self.active_highwaters.get(tp)
            if not hasattr(store, "write_raw") or start is None or highwater is None:
                continue
            if highwater - start >= self.min_records:
                targets.append(Target(tp, start, highwater, store, store.restore_guard.epoch))
        if not targets:
            return
        total = sum(t.highwater - t.start for t in targets)
        log.info(
            "table recovery: %d records of %d changelog partitions restored in bulk", total, len(targets)
        )
        started = time.monotonic()
        written = await asyncio.to_thread(
            restore, self.consumer_config, targets, destination, started + TIME_BUDGET
        )
        seconds = time.monotonic() - started
        log.info(
            "table recovery: %d records restored in bulk in %.1f s (%.0f/s)",
            written,
            seconds,
            written / seconds if seconds else 0,
        )
