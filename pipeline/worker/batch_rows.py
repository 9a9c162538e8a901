"""The state rows a stage's batch reads from the worker's tables, each once, and writes back, each
once, at the end (the ``RowStore`` the detector reads and writes: pipeline/detection/rows.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.detection.features import Entity
from pipeline.detection.states import EntityColumns
from pipeline.worker.table_expiry import TableExpiry
from pipeline.worker.tables import NativeChangelogTable, as_row


class TableRows:
    """The rows of one table that a batch reads (each read once) and writes back (once, at the
    end): the ``RowStore`` the detector reads and writes (pipeline/detection/rows.py)."""

    def __init__(self, table: NativeChangelogTable, columns: EntityColumns) -> None:
        self.table, self.columns = table, columns
        self.read: dict[str, np.ndarray] = {}

    def row(self, key: str) -> np.ndarray:
        row = self.read.get(key)
        if row is None:
            row = self.read[key] = as_row(self.columns, self.table.read(key))
        return row

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        return np.array([self.row(key) for key in keys]).reshape(len(keys), self.columns.width)

    def keep(self, keys: Sequence[str], rows: np.ndarray) -> None:
        for key, row in zip(keys, rows, strict=True):
            self.read[key] = row.copy()  # its own memory: the table keeps it

    def write_back(self, partition: int, expiry: TableExpiry, touched: dict[str, float]) -> None:
        for key, row in self.read.items():
            self.table.write(key, row, partition)
            expiry.touch(self.table, partition, key, touched.get(key, 0.0))


class BatchStates:
    """The state rows a batch of one partition reads, per entity, and when each key was last
    active (to write them back once, with their expiry)."""

    def __init__(self, tables: dict[str, NativeChangelogTable], entities: Sequence[Entity]) -> None:
        self.stores = {e.name: TableRows(tables[e.name], e.columns) for e in entities}
        self.touched: dict[str, dict[str, float]] = {e.name: {} for e in entities}

    def store_of(self, entity: Entity) -> TableRows:
        return self.stores[entity.name]

    def touch(self, entity: str, key: str, at: float) -> None:
        touched = self.touched[entity]
        touched[key] = max(touched.get(key, 0.0), at)

    def write_back(self, partition: int, expiry: TableExpiry) -> None:
        for name, store in self.stores.items():
            store.write_back(partition, expiry, self.touched[name])
