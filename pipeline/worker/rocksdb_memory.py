"""One RocksDB memory budget for a whole worker, as Kafka Streams' bounded-memory configuration
(``BoundedMemoryRocksDBConfig``) gives its state stores.

Faust opens a RocksDB database per table and partition, each with a block cache and memtables of its
own: a worker holding six tables of N partitions has 6 N of each, and its memory grows with every
partition it takes over and with every block it reads, for as long as the caches are not full (the
soak measured a worker that was still growing after an hour). Here every database of the worker
shares one LRU cache, and the memtables are charged to that same cache through one write buffer
manager: RocksDB's memory stays within ``block_cache + memtables`` whatever the partitions held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import rocksdict
from faust.stores.rocksdb import RocksDBOptions

MIB = 1024 * 1024


@dataclass
class WorkerRocksDBMemory:
    """The cache and the write buffer manager every RocksDB database of one worker shares."""

    block_cache_bytes: int
    memtable_bytes: int
    cache: Any = field(init=False, repr=False)
    write_buffers: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.cache = rocksdict.Cache(self.block_cache_bytes + self.memtable_bytes)
        # allow_stall=False: over the budget, RocksDB flushes memtables early instead of blocking writes.
        self.write_buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            self.memtable_bytes, False, self.cache
        )

    def usage_bytes(self) -> int:
        """What the shared cache holds now: cached blocks plus the memtables charged to it."""
        return int(self.cache.get_usage())

    def options(self, table_options: dict[str, Any]) -> BoundedRocksDBOptions:
        """Faust's options for one table's databases (its ``options``), on this shared budget."""
        return BoundedRocksDBOptions(self, **table_options)


class BoundedRocksDBOptions(RocksDBOptions):
    """Faust's RocksDB options (rocksdict), with the worker's shared cache and write buffer manager
    instead of a block cache per database; index and filter blocks are kept in that cache too, so
    they are bounded by it."""

    def __init__(self, memory: WorkerRocksDBMemory, **options: Any) -> None:
        super().__init__(**options)
        self.memory = memory

    def as_options(self) -> rocksdict.Options:
        db_options = rocksdict.Options(raw_mode=True)
        db_options.create_if_missing(True)
        db_options.set_max_open_files(self.max_open_files)
        db_options.set_write_buffer_size(self.write_buffer_size)
        db_options.set_target_file_size_base(self.target_file_size_base)
        db_options.set_max_write_buffer_number(self.max_write_buffer_number)
        db_options.set_write_buffer_manager(self.memory.write_buffers)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_block_cache(self.memory.cache)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        db_options.set_block_based_table_factory(table)
        return db_options
