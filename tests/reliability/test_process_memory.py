"""The worker's malloc settings and the bulk restore consumer's bounds (pipeline/worker/process_memory.py).
The arena cap and the trim are checked in a child process, so this test's own allocator is untouched."""

from __future__ import annotations

import subprocess
import sys

from pipeline.worker.process_memory import ARENA_MAX, RESTORE_CONSUMER_BOUNDS, restore_consumer_config

_CHILD = """
import psutil
from pipeline.worker.process_memory import limit_arenas, release_free_memory
assert limit_arenas(1)
rss = psutil.Process().memory_info().rss
blocks = [bytearray(4000) for _ in range(60_000)]  # 240 MB of small heap blocks, then freed
keep = blocks[::1000]
del blocks
held = psutil.Process().memory_info().rss
took = release_free_memory()
after = psutil.Process().memory_info().rss
print((held - rss) >> 20, (after - rss) >> 20, took)
"""


def test_free_memory_goes_back_to_the_system() -> None:
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True)
    held, after, took = out.stdout.split()
    # Freed but kept by malloc (fragmented by the blocks still alive), then given back by the trim.
    assert int(held) > 150, out.stdout
    assert int(after) < 40, out.stdout
    assert float(took) < 1000


_THREAD_THEN_MAIN = """
import sys, threading, psutil
from pipeline.worker.process_memory import limit_arenas, release_free_memory
assert limit_arenas(int(sys.argv[1]))
kept = []
def consumer_thread():  # a backlog's records decoded in Faust's consumer thread, a few kept longer
    records = [bytes(1500) + bytes([i % 256]) for i in range(80_000)]
    kept.extend(records[::8])
t = threading.Thread(target=consumer_thread)
t.start()
t.join()
release_free_memory()
before = psutil.Process().memory_info().rss
grown = [bytearray(1500) for _ in range(70_000)]  # then the main thread's own 105 MB (caches filling)
release_free_memory()
print((psutil.Process().memory_info().rss - before) >> 20)
"""


def test_one_arena_lets_the_main_thread_reuse_what_a_thread_freed() -> None:
    def growth(arenas: int) -> int:
        command = [sys.executable, "-c", _THREAD_THEN_MAIN, str(arenas)]
        return int(subprocess.run(command, capture_output=True, text=True, check=True).stdout)

    assert ARENA_MAX == 1
    # Two arenas (4f9d6df): the thread's freed, fragmented 105 MB serve only other threads, so the
    # main thread's 105 MB are all new; one arena: the main thread fills the thread's holes.
    two, one = growth(2), growth(1)
    assert two > 90, (two, one)
    assert one < two - 25, (two, one)


_ARENAS_OF_THREADS = """
import threading
import pipeline.worker.run  # noqa: F401 - what `fraud worker` imports before its broker check
def allocate():
    kept = [bytes(2000) for _ in range(1000)]
threads = [threading.Thread(target=allocate) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
rows = [line.split() for line in open("/proc/self/maps")]
print(sum(  # glibc's thread arenas: a 64 MiB-aligned heap followed by its reserved, inaccessible rest
    1 for row, after in zip(rows, rows[1:])
    if len(row) == 5 and int(row[0].split("-")[0], 16) % (64 << 20) == 0 and after[1] == "---p"
))
"""


def test_worker_threads_allocate_in_the_main_arena() -> None:
    command = [sys.executable, "-c", _ARENAS_OF_THREADS]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    assert int(out.stdout) == 0, out.stdout  # 2 when the cap comes after the threads' first malloc


def test_restore_consumer_is_bounded() -> None:
    config = restore_consumer_config({"bootstrap.servers": "b:9092", "fetch.max.bytes": 64 << 20})
    assert config["bootstrap.servers"] == "b:9092"
    assert config["fetch.max.bytes"] == RESTORE_CONSUMER_BOUNDS["fetch.max.bytes"] <= 16 << 20
    assert config["queued.max.messages.kbytes"] <= 16 * 1024
    assert config["queued.min.messages"] <= 10_000


def test_allocation_probe_logs_what_grew(caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    from pipeline.worker.process_memory import AllocationProbe

    monkeypatch.setenv("TRACEMALLOC_DUMP_MINUTES", "0.005")
    monkeypatch.setenv("TRACEMALLOC_DELAY_SECONDS", "0")
    probe = AllocationProbe.from_environment()
    assert probe is not None and probe.every == 0.3
    kept = []
    with caplog.at_level("WARNING", logger="pipeline.worker.process_memory"):
        probe.start()
        try:
            for _ in range(300):  # two looks at least (slow on a loaded machine)
                kept.append(bytearray(20_000))
                time.sleep(0.1)
                if len(caplog.records) >= 2:
                    break
        finally:
            probe.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) >= 2, lines
    assert "main arena" in lines[-1] and "RSS MiB by mapping" in lines[-1]
    assert "test_process_memory.py" in lines[-1]  # the bytearrays kept here, at the top of the growth


_LARGE_BLOCK_AFTER_ONE_FREED = """
import sys
from pipeline.worker.process_memory import limit_arenas, malloc_info
if sys.argv[1] == "fixed":
    assert limit_arenas(1)
first = bytearray(300_000)  # a frame of a few hundred KiB: from its own pages (threshold 128 KiB)
del first  # glibc's moving threshold now rises to 300 KB ...
before = malloc_info()
second = bytearray(300_000)  # ... so the next one is cut from the heap, unless the threshold is fixed
after = malloc_info()
print(after["mmapped"] - before["mmapped"], after["in_use"] - before["in_use"])
"""


def test_large_blocks_keep_pages_of_their_own() -> None:
    def where(mode: str) -> tuple[int, int]:
        command = [sys.executable, "-c", _LARGE_BLOCK_AFTER_ONE_FREED, mode]
        mmapped, heap = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
        return int(mmapped), int(heap)

    fixed_mmapped, fixed_heap = where("fixed")
    moving_mmapped, moving_heap = where("moving")
    assert fixed_mmapped >= 300_000 and fixed_heap < 100_000, (fixed_mmapped, fixed_heap)
    assert moving_mmapped < 100_000 and moving_heap >= 300_000, (moving_mmapped, moving_heap)
