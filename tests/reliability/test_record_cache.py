"""The worker's record caches are bounded in bytes (FRAUD_WORKER_RECORD_CACHE_MB,
pipeline/worker/record_cache.py): what a cached state row costs, counted as tracemalloc sees it, and
a real store (Faust's RocksDB store, no broker) that keeps no more than its share however many rows
pass through it. Offline."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import faust
import numpy as np
import pytest

from pipeline.config import Settings
from pipeline.detection.features import ENTITY_STAGES
from pipeline.detection.rows import encode_row
from pipeline.detection.states import CARD, EntityColumns
from pipeline.worker.record_cache import CachedRocksDBStore, RecordCache, encode_value, entry_bytes
from pipeline.worker.rocksdb_memory import MIB
from pipeline.worker.tables import NativeChangelogTable, record_cache_share

COLUMNS = {**{entity.name: entity.columns for entity in ENTITY_STAGES}, "card": CARD}


def _row(columns: EntityColumns, seed: int) -> np.ndarray:
    row = columns.empty()
    row[:] = np.arange(columns.width) + seed  # every cell set, as a busy entity's
    return row


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_a_cached_rows_counted_bytes_are_what_it_holds(name: str) -> None:
    columns, count = COLUMNS[name], 5_000
    cache = RecordCache(budget_bytes=1 << 40)
    tracemalloc.start()
    try:
        before = _traced()
        for i in range(count):
            cache.put(f"{name}-{i:010x}", _row(columns, i))
        held = _traced() - before
    finally:
        tracemalloc.stop()
    per_row = held / count
    assert columns.width * 8 < per_row < columns.width * 8 + 400, per_row  # cells + key, header, entry
    assert abs(cache.bytes - held) < 0.05 * held, (cache.bytes, held)


def test_replacing_and_dropping_entries_keeps_the_count_exact() -> None:
    cache = RecordCache(budget_bytes=1 << 40)
    row = _row(CARD, 1)
    cache.put("tok_a", row)
    cache.put("tok_b", encode_row(row))  # read from RocksDB: the text
    cache.put("tok_a", encode_row(row))  # replaced
    cache.put("tok_c", row)
    cache.pop("tok_c")
    cache.pop("tok_never")
    assert cache.bytes == entry_bytes("tok_a", encode_row(row)) + entry_bytes("tok_b", encode_row(row))
    cache.clear()
    assert cache.bytes == 0 and len(cache) == 0


def test_eviction_drops_the_least_recently_used_but_never_a_pinned_entry() -> None:
    row = _row(CARD, 1)
    one = entry_bytes("k-00", row)
    cache = RecordCache(budget_bytes=3 * one)
    for i in range(6):
        cache.put(f"k-{i:02d}", row.copy())
    cache.get("k-01")  # used again: the most recent
    assert cache.evict(pinned={"k-00"}) == 3
    assert list(cache) == ["k-00", "k-05", "k-01"]  # k-00 pinned (not yet sent), over budget until sent
    assert cache.bytes == 3 * one
    assert cache.evict() == 0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CachedRocksDBStore]:
    app = faust.App("record-cache-test", broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=tmp_path)
    table = NativeChangelogTable(
        app,
        name="devices",
        default=None,
        partitions=1,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
    )
    table.cache_bytes = 6 * MIB
    data = table.data
    assert isinstance(data, CachedRocksDBStore)
    yield data
    for db in data._dbs.values():
        db.close()


def test_a_store_keeps_its_budget_however_many_rows_pass_through(store: CachedRocksDBStore) -> None:
    columns = COLUMNS["device"]
    count = 10_000  # about 37 MiB of rows through a store of 6 MiB
    tracemalloc.start()
    try:
        before = _traced()
        for i in range(count):
            key, row = f"dev-{i:010x}", _row(columns, i)
            store.remember(key, row)
            store.stage(key, encode_value(row), 0)
            if i % 250 == 249:
                store.write_back()  # as at every commit
        held = _traced() - before
    finally:
        tracemalloc.stop()
    assert store._cache.bytes <= store.cache_bytes
    # Measured, not counted: what the store still holds in Python objects (RocksDB is not traced)
    # is within its budget, plus Faust's index of the last keys written (1,000 by default, each an
    # orjson output that keeps a 4 KiB buffer: orjson >= 3.12 does not shrink it).
    key_index = store.key_index_size * 4_300
    assert held < store.cache_bytes + key_index + 0.5 * MIB, held / MIB
    assert len(store._cache) > 0.9 * store.cache_bytes / entry_bytes("dev-0000000000", _row(columns, 0))
    newest, oldest = f"dev-{count - 1:010x}", "dev-0000000000"
    assert newest in store._cache and oldest not in store._cache
    assert np.array_equal(store[newest], _row(columns, count - 1))  # from the cache, as it was kept
    assert store[oldest] == encode_row(_row(columns, 0))  # from RocksDB, as its text


def test_the_worker_budget_is_shared_by_the_cached_tables() -> None:
    settings = Settings(worker_record_cache_mb=60)
    share = record_cache_share(settings)
    assert share * (len(ENTITY_STAGES) + 1) <= 60 * MIB < (share + 1) * (len(ENTITY_STAGES) + 1)
    assert Settings().worker_record_cache_mb == 64


def test_a_batch_of_lookups_reads_what_one_lookup_each_would(store: CachedRocksDBStore) -> None:
    """``values_or_none`` (the scoring stage's stored decisions, one multi-get a batch): cached
    entries, entries only in RocksDB, deleted and absent keys, each as ``value_or_none`` gives it."""
    for i in range(6):
        store.remember(f"tx-{i}", {"decision": i})
        store.stage(f"tx-{i}", encode_value({"decision": i}), 0)
    store.write_back()
    store._cache.clear()  # tx-0..5 now only in RocksDB
    store.remember("tx-1", {"decision": "newer"})  # cached, not yet written back
    store.forget("tx-2")  # deleted, not yet written back
    keys = ["tx-0", "tx-1", "tx-2", "tx-absent", "tx-5", "tx-0"]
    expected = [store.value_or_none(key) for key in keys]
    store._cache.clear()
    store.remember("tx-1", {"decision": "newer"})
    store.forget("tx-2")
    assert store.values_or_none(keys, 0) == expected
    assert expected == [{"decision": 0}, {"decision": "newer"}, None, None, {"decision": 5}, {"decision": 0}]
    assert store.value_or_none("tx-absent") is None and "tx-absent" in store._cache  # a miss is cached
