"""The worker's RocksDB databases share one memory budget (pipeline/worker/rocksdb_memory.py): one
block cache, with every database's memtables charged to it, so RocksDB's memory does not grow with
the number of table partitions a worker holds. Real RocksDB databases, no broker."""

from __future__ import annotations

from pathlib import Path

from pipeline.worker.rocksdb_memory import MIB, WorkerRocksDBMemory


def _options_file(path: Path) -> str:
    newest = max(path.glob("OPTIONS-*"), key=lambda p: int(p.name.split("-")[1]))
    return newest.read_text()


def test_every_database_charges_the_one_shared_cache(tmp_path: Path) -> None:
    memory = WorkerRocksDBMemory(block_cache_bytes=4 * MIB, memtable_bytes=8 * MIB)
    options = memory.options({"write_buffer_size": 4 * MIB, "max_write_buffer_number": 2})
    databases = [options.open(tmp_path / f"table-{partition}.db") for partition in range(3)]
    try:
        assert memory.usage_bytes() < MIB
        usage = [memory.usage_bytes()]
        for db in databases:  # memtables of each database in turn: each adds to the one cache
            for i in range(2_000):
                db[f"key-{i:06d}".encode()] = bytes(300)
            usage.append(memory.usage_bytes())
        assert usage == sorted(usage) and usage[-1] - usage[0] >= 3 * 2_000 * 300, usage
        for partition in range(3):
            text = _options_file(tmp_path / f"table-{partition}.db")
            assert "\n  cache_index_and_filter_blocks=true" in text, partition  # bounded by the cache too
            assert "pin_l0_filter_and_index_blocks_in_cache=true" in text
            assert "write_buffer_size=4194304" in text
    finally:
        for db in databases:
            db.close()
