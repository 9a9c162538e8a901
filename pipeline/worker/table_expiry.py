"""Bounded state: entries idle for longer than their table's TTL are deleted (a tombstone reaches
the changelog), partition by partition, as event time moves on (pipeline/detection/expiry.py).

After a start the entries restored from the changelogs are indexed in the background, a chunk at
a time between the stages' batches (``index_restored``): done at the first write, in one go, the
scan decoded every entry of the table while the event loop waited (with 131,000 restored records,
a third of a restarted worker's first seconds, and its first decisions and /readyz answers
waited for it; with a real population, minutes). Until a table's restored entries are indexed,
only the entries written since can expire.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import orjson

from pipeline.config import Settings
from pipeline.detection.expiry import ExpiryIndex
from pipeline.detection.states import CARD
from pipeline.worker.batching import partition_of
from pipeline.worker.tables import WorkerTables, as_row
from pipeline.worker.telemetry import PipelineMetrics
from pipeline.worker.topics import owner_key

CHUNK = 2000
"""Restored entries read and indexed between two turns of the event loop."""


class TableExpiry:
    """The last activity of every entry of the worker's tables, and the deletion of stale ones."""

    def __init__(self, settings: Settings, tables: WorkerTables, metrics: PipelineMetrics) -> None:
        self.partitions = settings.topic_partitions
        self.tables = tables
        self.metrics = metrics
        entity_ttl = settings.entity_ttl_days * 86400
        self._index = {
            table.name: ExpiryIndex(entity_ttl) for table in (*tables.entities.values(), tables.cards)
        }
        self._index[tables.pending.name] = ExpiryIndex(settings.pending_label_ttl_hours * 3600)
        self._indexing: dict[tuple[str, int], asyncio.Task[None]] = {}

    def touch(self, table: faust.Table, partition: int, key: str, at: float) -> None:
        """Record that ``key`` of ``table`` was written at event time ``at``, and delete the keys of
        the same partition idle for longer than the table's TTL."""
        index = self._index[table.name]
        if not index.knows(partition):  # its first write here: index what was restored, aside
            index.load(partition, [])
            self._indexing[table.name, partition] = asyncio.ensure_future(
                self.index_restored(table, partition)
            )
        index.touch(partition, key, at)
        for stale in index.expired(partition, at):
            if table.get(stale) is not None:
                del table[stale]
                self.metrics.expired_entries.labels(table.name).inc()

    def forget(self, table: faust.Table, partition: int, key: str) -> None:
        """``key`` was deleted from ``table`` (a pending entry whose label arrived)."""
        self._index[table.name].forget(partition, key)

    def pending_entries(self) -> int:
        return len(self._index[self.tables.pending.name])

    async def index_restored(self, table: faust.Table, partition: int) -> None:
        """Index the (key, last activity) of every entry restored in ``partition`` of ``table``,
        ``CHUNK`` entries at a time; entries written since keep their later activity."""
        found: dict[int, dict[str, float]] = {}
        store = table.data
        after: bytes | None = b""
        while after is not None:
            db = getattr(store, "_dbs", {}).get(partition)  # revoked meanwhile: its database is closed
            if db is None:
                break
            entries, after = _chunk(db, after or None, store.offset_key)
            for raw_key, raw_value in entries:
                owner, key, at = self._activity(table, raw_key, raw_value)
                if owner is not None:
                    found.setdefault(owner, {})[key] = at
            await asyncio.sleep(0)
        index = self._index[table.name]
        for owner, restored in found.items():
            since = index._partitions.get(owner, {})  # written since the start: the later activity
            for key, at in since.items():
                restored[key] = max(at, restored.get(key, at))
            index.load(owner, restored.items())

    def _activity(self, table: faust.Table, raw_key: bytes, raw_value: bytes) -> tuple[Any, str, float]:
        """(owner partition, key, last activity) of one stored entry; owner None: nothing to index."""
        try:
            key, value = orjson.loads(raw_key), orjson.loads(raw_value)
            if not value:
                return None, "", 0.0
            if table is self.tables.pending:
                owner, at = value.get("partition"), value.get("at")
            else:
                entity = self.tables.entity_of(table)
                routing = owner_key(entity, key) if entity is not None else key
                columns = entity.columns if entity is not None else CARD
                at = columns.last_active(as_row(columns, value))
                owner = partition_of(routing, self.partitions)
        except Exception:  # an entry it cannot read is left alone, as before it was written
            return None, "", 0.0
        if owner is None or at is None:
            return None, key, 0.0
        return int(owner), key, float(at)


def _chunk(db: Any, after: bytes | None, skip: bytes) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
    """Up to CHUNK (key, value) of ``db`` after the key ``after``, and the last key read (None:
    the end), read with an iterator of their own: none is kept across the event loop's turns, as a
    revoked partition's database is closed."""
    it = db.iter()
    if after is None:
        it.seek_to_first()
    else:
        it.seek(after)
        if it.valid() and it.key() == after:
            it.next()
    entries, last = [], None
    while it.valid() and len(entries) < CHUNK:
        last = it.key()
        if last != skip:
            entries.append((last, it.value()))
        it.next()
    return entries, (last if it.valid() else None)
