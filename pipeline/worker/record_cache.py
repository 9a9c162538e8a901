"""A record cache over Faust's RocksDB table store, as Kafka Streams puts one in front of its
state stores: reads of recently used entries and every write stay in memory as Python objects;
the writes reach RocksDB in one batch per partition when the worker flushes before it commits.

Faust's own RocksDB store encodes and decodes JSON and calls RocksDB on every table access (a
``table.get`` is two reads: a membership test, then the value); the worker reads and writes each
entity once per frame, so that was about a fifth of its time (docs/performance.md).

The table (pipeline/worker/faust_app.py, NativeChangelogTable) sends each changed entry to its changelog once
per flush, with its latest value, as Kafka Streams' record cache does: a merchant written by many
batches between two commits costs one changelog message, not one per batch. Faust flushes before
every offset commit, before it gives partitions away in a rebalance and when it stops, so the
changelog holds every change behind a committed offset (at-least-once, as before). Until then the
changed entries are pinned in the cache (never evicted), so reads see them.

RocksDB's persisted changelog offset (from which a restart replays the changelog) is set only after
the entries written so far were written back, so after a crash RocksDB is never ahead of what the
offset says, and the replay brings it up to date.

The cache is bounded in bytes (``RecordCache``), not in entries: a state row costs its cells (8 B
each: 1.7-4.6 kB by entity) plus about 250 B of key, array header and dict entry (measured with
tracemalloc and as RSS, tests/reliability/test_record_cache.py), and a worker's memory is stated
as RocksDB's budget plus ``FRAUD_WORKER_RECORD_CACHE_MB`` plus the rest.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import orjson
from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import current_event
from faust.types import TP, CollectionT, EventT

from pipeline.detection.rows import encode_row
from pipeline.worker.bulk_restore import RestoreGuard

_ABSENT = object()  # a key known not to exist (deleted, or read and not found)
_MISSING = object()
# As Faust's JSON codec (with orjson), except that entity state rows go to encode_row.
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z | orjson.OPT_PASSTHROUGH_DATACLASS


def encode_value(value: Any) -> bytes:
    """A table key or value as Faust's JSON codec writes it; an entity's state row (a numpy array)
    as its ``encode_row`` text."""
    return orjson.dumps(value, default=_encode_row, option=_JSON_OPTIONS)


def _encode_row(value: Any) -> Any:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return encode_row(value)


ENTRY_OVERHEAD_BYTES = 100
"""An entry's place in the cache's ordered dict, beyond its key and value (measured: 60-120 B
with the dict's spare room)."""
ARRAY_OVERHEAD_BYTES = 112
"""A numpy array's object (header, shape, strides) beyond its cells."""


def entry_bytes(key: Any, value: Any) -> int:
    """What one cached entry holds in memory, as counted against the budget: its key, its value
    (a state row: its cells and header; text read from RocksDB: the string) and its dict entry."""
    if isinstance(value, np.ndarray):
        held = value.nbytes + ARRAY_OVERHEAD_BYTES
    elif value is _ABSENT:
        held = 0
    else:
        held = sys.getsizeof(value)  # text, numbers; a container's own size only
    return sys.getsizeof(key) + held + ENTRY_OVERHEAD_BYTES


class RecordCache:
    """Values by key, least recently used first, with the bytes they hold (``entry_bytes``); what is
    over ``budget_bytes`` is dropped by ``evict``, never an entry that must stay (``pinned``)."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.bytes = 0
        self._entries: OrderedDict[Any, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[Any]:
        return iter(self._entries)

    def get(self, key: Any) -> Any:
        """The value of ``key`` (KeyError if not cached), now the most recently used."""
        value = self._entries[key]
        self._entries.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        """``key`` holds ``value``, the most recently used."""
        old = self._entries.pop(key, _MISSING)
        if old is not _MISSING:
            self.bytes -= entry_bytes(key, old)
        self._entries[key] = value
        self.bytes += entry_bytes(key, value)

    def pop(self, key: Any) -> None:
        """Forget ``key`` if cached."""
        old = self._entries.pop(key, _MISSING)
        if old is not _MISSING:
            self.bytes -= entry_bytes(key, old)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def evict(self, pinned: Container[Any] = ()) -> int:
        """Drop the least recently used entries not in ``pinned`` until the cache holds at most
        ``budget_bytes``; return how many were dropped."""
        if self.bytes <= self.budget_bytes:
            return 0
        dropped: list[Any] = []
        over = self.bytes - self.budget_bytes
        for key, value in self._entries.items():  # least recent first
            if over <= 0:
                break
            if key not in pinned:
                dropped.append(key)
                over -= entry_bytes(key, value)
        for key in dropped:
            self.pop(key)
        return len(dropped)


def _event_partition() -> int:
    event = current_event()
    if event is None:
        raise RuntimeError("table written outside of a stream event")
    return int(event.message.partition)


class CachedRocksDBStore(RocksDBStore):
    """Faust's RocksDB store with a bounded record cache and write-back (see the module's doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cache = RecordCache(16 * 1024 * 1024)
        self._dirty: dict[int, dict[Any, bytes | None]] = {}  # partition -> key -> JSON (None: deleted)
        # Set by the table: keys changed but not yet sent to the changelog (kept in the cache), and
        # what sends them (before anything reads RocksDB past the cache, or forgets the cache).
        self.pinned: Container[Any] = ()
        self.send_changes: Callable[[], object] = lambda: None
        self.restore_guard = RestoreGuard()  # a bulk restore's writes (bulk_restore.py) stop at a rebalance

    @property
    def cache_bytes(self) -> int:
        """Bytes the cache keeps after a write-back, least recently used dropped first (the table
        sets its share of the worker's FRAUD_WORKER_RECORD_CACHE_MB)."""
        return self._cache.budget_bytes

    @cache_bytes.setter
    def cache_bytes(self, budget: int) -> None:
        self._cache.budget_bytes = budget

    @property
    def cached_bytes(self) -> int:
        """Bytes the cache holds now (at most ``cache_bytes`` after a write-back, with what must stay)."""
        return self._cache.bytes

    # --- the mapping, as the table uses it --------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        value = self._cached(key)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return self._cached(key) is not _ABSENT

    def value_or_none(self, key: Any) -> Any:
        """The value of ``key``, None when it has none: one lookup (``table.get`` makes two)."""
        value = self._cached(key)
        return None if value is _ABSENT else value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.remember(key, value)
        self.stage(key, encode_value(value), _event_partition())

    def __delitem__(self, key: Any) -> None:
        self.forget(key)
        self.stage(key, None, _event_partition())

    def remember(self, key: Any, value: Any) -> None:
        """Reads of ``key`` return ``value`` from now on (RocksDB gets it with ``stage``)."""
        self._cache.put(key, value)

    def forget(self, key: Any) -> None:
        """``key`` is deleted, for reads; RocksDB forgets it with ``stage(key, None, ...)``."""
        self.remember(key, _ABSENT)

    def stage(self, key: Any, encoded: bytes | None, partition: int) -> None:
        """Write ``key`` of ``partition`` as ``encoded`` (its JSON; None deletes it) to RocksDB at
        the next write-back."""
        self._dirty.setdefault(partition, {})[key] = encoded

    def values_or_none(self, keys: Sequence[Any], partition: int) -> list[Any]:
        """``value_or_none`` of each of ``keys``, all of ``partition``: those not cached read from
        its RocksDB database in one multi-get (a batch's lookups of keys that are mostly absent,
        such as the transaction ids of the stored decisions)."""
        values: list[Any] = []
        missing: list[int] = []
        cached = self._cache.get
        for key in keys:
            try:
                values.append(cached(key))
            except KeyError:
                missing.append(len(values))
                values.append(_ABSENT)
        if missing:
            db = self._db_for_partition(partition)
            encoded = [self._encode_key(keys[item]) for item in missing]
            raws = db.get(encoded) if self.use_rocksdict else [db.get(key) for key in encoded]
            for item, raw in zip(missing, raws, strict=True):
                value = _ABSENT if raw is None else self._decode_value(raw)
                self._cache.put(keys[item], value)
                values[item] = value
        return [None if value is _ABSENT else value for value in values]

    def _cached(self, key: Any) -> Any:
        try:
            return self._cache.get(key)
        except KeyError:
            raw = self._get(self._encode_key(key))
            value = _ABSENT if raw is None else self._decode_value(raw)
            self._cache.put(key, value)
            return value

    # --- write-back -------------------------------------------------------------------------------
    def write_back(self) -> None:
        """Write every entry changed since the last write-back to RocksDB (one batch per
        partition), then drop the least recently used clean entries beyond ``cache_bytes``."""
        for partition, entries in self._dirty.items():
            db = self._db_for_partition(partition)
            batch = self._new_batch()
            for key, value in entries.items():
                encoded_key = encode_value(key)
                if value is None:
                    batch.delete(encoded_key)
                    self._key_index.pop(encoded_key, None)
                else:
                    batch.put(encoded_key, value)
                    self._key_index[encoded_key] = partition
            db.write(batch)
        self._dirty.clear()
        self._cache.evict(self.pinned)

    def persist(self, tp: TP, offset: int) -> None:
        """The changelog of ``tp`` is acknowledged up to ``offset``: write back, then record it."""
        self.write_back()
        self.set_persisted_offset(tp, offset)

    def _new_batch(self) -> Any:
        if self.use_rocksdict:
            import rocksdict

            return rocksdict.WriteBatch(raw_mode=True)
        import rocksdb  # pragma: no cover - python-rocksdb is not installed here

        return rocksdb.WriteBatch()

    # --- what bypasses the cache ------------------------------------------------------------------
    def apply_changelog_batch(self, batch: Iterable[EventT], to_key: Any, to_value: Any) -> None:
        """Recovery and standby replicas write RocksDB directly; forget those keys' cached values."""
        events = list(batch)
        for event in events:
            self._cache.pop(self._decode_key(event.message.key))
        super().apply_changelog_batch(events, to_key, to_value)

    def write_raw(self, tp: TP, records: list[tuple[bytes, bytes | None, int]]) -> None:
        """Changelog records of ``tp`` (key, value or None, offset), in offset order, written as
        Faust's recovery writes them, then their last offset recorded (a bulk restore, from its
        thread: bulk_restore.py; the cache holds nothing of a partition being restored, it was
        cleared when the partition was assigned)."""
        batch = self._new_batch()
        for key, value, _ in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._db_for_partition(tp.partition).write(batch)
        self.set_persisted_offset(tp, records[-1][2])

    def revoke_partitions(self, table: CollectionT, tps: set[TP]) -> None:
        # Faust flushed and committed before revoking; another worker may now change these
        # partitions, so no cached value can be trusted afterwards.
        self.restore_guard.stop()
        self.send_changes()
        self.write_back()
        self._cache.clear()
        # Faust drops a revoked partition's database without closing it (its close() is commented
        # out), leaving its memtables and block cache to the garbage collector; close it here, so a
        # worker that took over partitions during a failover gives their memory back.
        for tp in tps:
            if tp.topic in table.changelog_topic.topics:
                db = self._dbs.pop(tp.partition, None)
                if db is not None:
                    db.close()
        super().revoke_partitions(table, tps)

    async def assign_partitions(self, table: CollectionT, tps: set[TP], generation_id: int = 0) -> None:
        self.restore_guard.stop()
        self.send_changes()
        self.write_back()
        self._cache.clear()
        await super().assign_partitions(table, tps, generation_id)

    def _iterkeys(self) -> Iterator[bytes]:
        self._bring_up_to_date()
        return super()._iterkeys()

    def _itervalues(self) -> Iterator[bytes]:
        self._bring_up_to_date()
        return super()._itervalues()

    def _iteritems(self) -> Iterator[tuple[bytes, bytes]]:
        self._bring_up_to_date()
        return super()._iteritems()

    def _size(self) -> int:
        self._bring_up_to_date()
        return super()._size()

    def _bring_up_to_date(self) -> None:
        """A scan reads RocksDB: every change, sent or not yet, goes there first."""
        self.send_changes()
        self.write_back()
