"""Bounded state: entries idle for longer than their table's TTL are deleted (a tombstone reaches
the changelog), partition by partition, as event time moves on (pipeline/detection/expiry.py)."""

from __future__ import annotations

import faust
import numpy as np

from pipeline.config import Settings
from pipeline.detection.expiry import ExpiryIndex
from pipeline.detection.states import CARD
from pipeline.worker.batching import partition_of
from pipeline.worker.tables import WorkerTables, as_row
from pipeline.worker.telemetry import PipelineMetrics
from pipeline.worker.topics import owner_key


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

    def touch(self, table: faust.Table, partition: int, key: str, at: float) -> None:
        """Record that ``key`` of ``table`` was written at event time ``at``, and delete the keys of
        the same partition idle for longer than the table's TTL."""
        index = self._index[table.name]
        if not index.knows(partition):  # first write since start: index what was restored
            for owner, entries in self._restored_entries(table).items():
                if not index.knows(owner):
                    index.load(owner, entries)
            if not index.knows(partition):
                index.load(partition, [])
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

    def _restored_entries(self, table: faust.Table) -> dict[int, list[tuple[str, float]]]:
        """(key, last activity) of every entry in the table, by partition: one scan for all of them."""
        entries: dict[int, list[tuple[str, float]]] = {}
        entity = self.tables.entity_of(table)
        for key, value in table.items():
            if value is None or (not isinstance(value, np.ndarray) and not value):
                continue
            if table is self.tables.pending:
                owner, at = value.get("partition"), value.get("at")
            else:
                routing = owner_key(entity, key) if entity is not None else key
                columns = entity.columns if entity is not None else CARD
                at = columns.last_active(as_row(columns, value))
                owner = partition_of(routing, self.partitions)
            if owner is not None and at is not None:
                entries.setdefault(int(owner), []).append((key, float(at)))
        return entries
