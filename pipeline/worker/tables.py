"""The worker's Faust tables: one per entity, the cards' history and the features kept for labels.

Each is a ``NativeChangelogTable``: its changelog is produced through librdkafka and its RocksDB
store has a record cache (pipeline/worker/record_cache.py); reading, recovery and standbys are
Faust's. Entity and card tables hold state rows (numpy arrays, pipeline/detection/rows.py),
written as their ``encode_row`` text."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
import numpy as np
from faust.types import TP, StoreT

from pipeline.config import Settings
from pipeline.detection.features import ENTITY_STAGES, Entity
from pipeline.detection.rows import decode_row
from pipeline.detection.states import EntityColumns
from pipeline.worker.producer import NativeProducer
from pipeline.worker.record_cache import CachedRocksDBStore, encode_value
from pipeline.worker.rocksdb_memory import MIB, WorkerRocksDBMemory
from pipeline.worker.topics import table_names

_DELETED = object()  # a table entry deleted since the last flush


class NativeChangelogTable(faust.Table):
    """A Faust table whose changelog is produced through librdkafka (NativeProducer), in Faust's
    own format (JSON; state rows as their ``encode_row`` text), and whose RocksDB store has a
    record cache (CachedRocksDBStore).

    A write changes the cache at once; the changelog gets each changed entry once per flush, with
    its latest value (``send_changes``; pipeline/worker/record_cache.py says why that is as
    durable). A value is encoded once per flush, for both the changelog and RocksDB."""

    native: NativeProducer
    cache_bytes: int = 0
    """Bytes its record cache keeps (its share of FRAUD_WORKER_RECORD_CACHE_MB)."""
    rocksdb_memory: WorkerRocksDBMemory | None = None
    """The worker's RocksDB memory budget, shared by every table's databases."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._unsent: dict[Any, tuple[int, Any]] = {}  # key -> (partition, value or _DELETED)
        super().__init__(*args, **kwargs)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._unsent[key] = (self.partition_for_key(key), value)
        self._sensor_on_set(self, key, value)
        if isinstance(self.data, CachedRocksDBStore):
            self.data.remember(key, value)
        else:
            self.data[key] = value

    # The stages' reads and writes, a few per transaction: straight to the store, without Faust's
    # per-key sensors (nothing reads their counts) and, for a write, with the partition the stage
    # already knows (Faust's __setitem__ looks it up from the current event each time).
    def read(self, key: Any) -> Any:
        """The value of ``key``, None when it has none (``table.get(key)``)."""
        data = self.data
        if isinstance(data, CachedRocksDBStore):
            return data.value_or_none(key)
        return data.get(key)

    def read_many(self, keys: Sequence[Any], partition: int) -> list[Any]:
        """``read`` of each of ``keys``, all of ``partition`` (RocksDB's misses in one multi-get)."""
        data = self.data
        if isinstance(data, CachedRocksDBStore):
            return data.values_or_none(keys, partition)
        return [data.get(key) for key in keys]

    def write(self, key: Any, value: Any, partition: int) -> None:
        """``table[key] = value`` for a key of ``partition`` (the partition of the event at hand)."""
        self._unsent[key] = (partition, value)
        if isinstance(self.data, CachedRocksDBStore):
            self.data.remember(key, value)
        else:
            self.data[key] = value

    def __delitem__(self, key: Any) -> None:
        self._unsent[key] = (self.partition_for_key(key), _DELETED)
        self._sensor_on_del(self, key)
        if isinstance(self.data, CachedRocksDBStore):
            self.data.forget(key)
        else:
            del self.data[key]

    def send_changes(self) -> int:
        """Send every entry changed since the last call to the changelog, once, with its latest
        value (a deletion as a tombstone); return how many."""
        store = self.data if isinstance(self.data, CachedRocksDBStore) else None
        for key, (partition, value) in self._unsent.items():
            encoded = None if value is _DELETED else encode_value(value)
            self.native.send(self._changelog_name, encoded, encode_value(key), partition)
            if store is not None:
                store.stage(key, encoded, partition)
        sent = len(self._unsent)
        self._unsent.clear()
        return sent

    def persist_offset(self, tp: TP, offset: int) -> None:
        """The changelog of ``tp`` is acknowledged up to ``offset`` (after a flush)."""
        if isinstance(self.data, CachedRocksDBStore):
            self.data.persist(tp, offset)
        else:
            self.data.set_persisted_offset(tp, offset)

    def _new_store_by_url(self, url: Any) -> StoreT:
        """RocksDB behind a record cache (pipeline/worker/record_cache.py); other stores as Faust has them."""
        if str(url).partition(":")[0] != "rocksdb":
            return super()._new_store_by_url(url)
        store = CachedRocksDBStore(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )
        store.cache_bytes = self.cache_bytes
        if self.rocksdb_memory is not None:
            store.rocksdb_options = self.rocksdb_memory.options(dict(self.options or {}))
        store.pinned = self._unsent
        store.send_changes = self.send_changes
        return store

    @functools.cached_property
    def _changelog_name(self) -> str:
        return self.changelog_topic.get_topic_name()


@dataclass
class WorkerTables:
    """Every table of one worker."""

    entities: dict[str, NativeChangelogTable]
    """The state of each entity of ENTITY_STAGES, by entity name."""
    cards: NativeChangelogTable
    pending: NativeChangelogTable
    """Features and decision kept at scoring time, by transaction id, until the label arrives."""

    @property
    def all(self) -> list[NativeChangelogTable]:
        return [*self.entities.values(), self.cards, self.pending]

    def entity_of(self, table: faust.Table) -> Entity | None:
        """The entity whose states ``table`` holds (None for the cards and pending tables)."""
        return next((e for e in ENTITY_STAGES if self.entities[e.name] is table), None)

    def cache_bytes(self) -> dict[str, int]:
        """Bytes the worker's caches hold now: the record caches of every table (``record_cache``)
        and RocksDB's one shared cache, blocks and memtables (``rocksdb``)."""
        record = rocksdb = 0
        for table in self.all:
            store = table._data  # not ``data``, which would open a store that is not open yet
            if isinstance(store, CachedRocksDBStore):
                record += store.cached_bytes
            if table.rocksdb_memory is not None:
                rocksdb = table.rocksdb_memory.usage_bytes()  # one budget, shared by every table
        return {"record_cache": record, "rocksdb": rocksdb}


def create_tables(app: faust.App, settings: Settings, producer: NativeProducer) -> WorkerTables:
    """The worker's tables, registered with ``app``; their changelogs go through ``producer``."""

    memory = WorkerRocksDBMemory(
        settings.worker_rocksdb_block_cache_mb * MIB, settings.worker_rocksdb_memtables_mb * MIB
    )

    def table(name: str, help_text: str, cache_bytes: int) -> NativeChangelogTable:
        created = NativeChangelogTable(
            app,
            name=name,
            default=None,
            beacon=app.tables.beacon,
            schema=faust.Schema(key_serializer="json", value_serializer="json"),
            partitions=settings.topic_partitions,
            help=help_text,
            options=rocksdb_options(settings),
        )
        created.native = producer
        created.rocksdb_memory = memory
        created.cache_bytes = cache_bytes
        producer.track_offsets(created.changelog_topic.get_topic_name(), created.persist_offset)
        app.tables.add(created)
        return created

    *entity_tables, card_table, pending_table = table_names()
    cache = record_cache_share(settings)
    return WorkerTables(
        entities={
            entity.name: table(name, f"State per {entity.name}", cache)
            for name, entity in zip(entity_tables, ENTITY_STAGES, strict=True)
        },
        cards=table(card_table, "History per card", cache),
        # A pending entry is read once, by its label, long after: caching it would only cost memory.
        pending=table(pending_table, "Features kept at scoring time, by transaction id", 0),
    )


def record_cache_share(settings: Settings) -> int:
    """Each cached table's bytes: the worker's record cache budget shared equally by the entity
    tables and the cards' (the pending-labels table has no cache)."""
    return settings.worker_record_cache_mb * MIB // (len(ENTITY_STAGES) + 1)


def rocksdb_options(settings: Settings) -> dict[str, int]:
    """RocksDB's sizes for each table partition's database (Faust's RocksDBOptions): small memtables;
    the block cache and the memtables' total are the worker's, shared (pipeline/worker/rocksdb_memory.py).
    Faust's defaults (three 64 MiB memtables and a 2 GiB block cache per database, for six tables of
    N partitions) let a worker grow by the partitions it has held."""
    return {
        "write_buffer_size": settings.worker_rocksdb_write_buffer_mb * MIB,
        "max_write_buffer_number": 2,
        "target_file_size_base": 4 * settings.worker_rocksdb_write_buffer_mb * MIB,
    }


def as_row(columns: EntityColumns, stored: Any) -> np.ndarray:
    """The state row a table returned: the array itself while it is cached, else decoded from its
    text (read from RocksDB, restored from the changelog); an empty row for a new key."""
    if stored is None:
        return columns.empty()
    if isinstance(stored, np.ndarray):
        return stored
    return decode_row(stored, columns.width)
