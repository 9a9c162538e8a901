"""A worker's memory outside Python's objects and RocksDB's budget: glibc's malloc, and the buffers
of the consumer that restores tables in bulk (issue 18; docs/reliability.md, "The soak").

glibc gives each thread that allocates concurrently an arena of its own (up to 8 per core), and
keeps what is freed in an arena for that arena's next allocations instead of returning it: a
worker's threads (librdkafka's, RocksDB's flush and compaction, the bulk restore's, the event
loop's) each keep the high-water mark of what they once held. A bulk restore makes that mark
large: librdkafka fetches and queues up to hundreds of MiB of changelog, RocksDB fills and flushes
memtables, and all of it is freed within a minute but stays resident. So the worker

* caps the arenas at ``ARENA_MAX``, one (``mallopt(M_ARENA_MAX)``, as the ``MALLOC_ARENA_MAX``
  environment variable would, set before the worker starts a thread), so that what any thread
  frees serves every thread's next allocations. The cap holds only for threads that allocate after
  it (glibc hands out the arenas of exited threads first), so pipeline/worker/run.py sets it when
  `fraud worker` imports it, before its broker check: set later (4f9d6df), it left the five arenas
  of that check's librdkafka threads to the worker's threads. In those, Faust's consumer thread
  decodes the fetched records (aiokafka's bytes objects over 512 B go to malloc, in the thread's
  arena) and the main thread frees them once the stages are done, so the thread arenas grew to the
  largest backlog the consumer had held (a takeover's) and their free, fragmented memory could
  serve only the other threads while the main arena grew beside them (heaptrack on a soak worker
  after four takeovers: 23 MiB resident in the thread arenas for 10.5 MiB allocated there; the
  growth of the 60-minute soak's worker-1 at 4f9d6df, +104 MiB from minute 15 to 60, was in the
  anonymous mappings that hold them);
* fixes malloc's mmap threshold (``MMAP_THRESHOLD``): glibc moves it up to the size of each large
  block freed, so that after a while the worker's large, short-lived blocks (frames between the
  stages, fetch responses, changelog batches: hundreds of KiB each) come from the heap, whose top
  cannot shrink past the blocks still alive above their holes;
* returns free memory to the system every ``TRIM_SECONDS`` and after a bulk restore
  (``malloc_trim(0)``, which also gives back the free pages inside an arena, not only its top);
* bounds the bulk restore consumer's prefetch (``RESTORE_CONSUMER_BOUNDS``: librdkafka's default
  queue holds up to 64 MiB and 100,000 messages a partition ahead of the reader, with fetches of
  up to 64 MiB on top).

On a C library other than glibc the malloc calls do nothing.

To find what a worker's Python code keeps, ``TRACEMALLOC_DUMP_MINUTES=N`` in its environment (not a
FRAUD_ setting, so that ``fraud soak`` passes it to its workers) starts tracemalloc once the worker
has warmed up (``TRACEMALLOC_DELAY_SECONDS``, 200) and logs, every N minutes, the allocations
alive that grew most since the first look, with malloc's and /proc's figures (``AllocationProbe``).
It slows the worker and costs memory of its own: for diagnosis only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MIB = 1024 * 1024

ARENA_MAX = 1
"""malloc arenas of the worker process (glibc's default on 64-bit: 8 per core): one, shared by
every thread (the module's doc)."""
TRIM_SECONDS = 60.0
"""How often the worker gives free malloc memory back to the system."""
RESTORE_CONSUMER_BOUNDS: dict[str, Any] = {
    "fetch.max.bytes": 16 * MIB,
    "max.partition.fetch.bytes": 4 * MIB,
    "queued.max.messages.kbytes": 16 * 1024,
    "queued.min.messages": 10_000,
}
"""librdkafka settings of the bulk restore consumer (pipeline/worker/bulk_restore.py): at most
about 16 MiB queued ahead of the restore and 16 MiB in one fetch."""

MMAP_THRESHOLD = 128 * 1024
"""Allocations from this size up get pages of their own, given back when freed (glibc's starting
value, set so that it stays: glibc raises it to the size of every such block freed, up to 32 MiB,
after which the frames, fetch responses and record batches of a few hundred KiB that the worker
frees all the time are cut from the heap and leave it fragmented)."""

_M_ARENA_MAX = -8
_M_MMAP_THRESHOLD = -3


def _glibc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 - glibc only
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


_LIBC = _glibc()


def limit_arenas(arenas: int = ARENA_MAX, mmap_threshold: int | None = MMAP_THRESHOLD) -> bool:
    """Cap glibc's malloc arenas (before threads are started) and fix its mmap threshold (None:
    glibc's moving one); False when not glibc."""
    if _LIBC is None:
        return False
    if mmap_threshold is not None and not _LIBC.mallopt(_M_MMAP_THRESHOLD, mmap_threshold):
        return False
    return bool(_LIBC.mallopt(_M_ARENA_MAX, arenas))


def release_free_memory() -> float | None:
    """Give the free memory of every malloc arena back to the system; the milliseconds it took
    (None when not glibc)."""
    if _LIBC is None:
        return None
    started = time.perf_counter()
    _LIBC.malloc_trim(0)
    return (time.perf_counter() - started) * 1000


def restore_consumer_config(config: dict[str, Any]) -> dict[str, Any]:
    """The bulk restore consumer's librdkafka settings: ``config`` with its buffers bounded."""
    return {**config, **RESTORE_CONSUMER_BOUNDS}


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def malloc_info() -> dict[str, int] | None:
    """glibc's figures for the process's malloc (``mallinfo2``), in bytes: ``in_use`` (allocated
    from the arenas), ``free`` (held by the arenas for later allocations: fragmentation and what a
    trim has not returned yet) and ``mmapped`` (large blocks mapped on their own); None when not
    glibc."""
    if _LIBC is None or not hasattr(_LIBC, "mallinfo2"):
        return None
    _LIBC.mallinfo2.restype = _MallInfo2
    info = _LIBC.mallinfo2()
    return {"in_use": info.uordblks, "free": info.fordblks, "mmapped": info.hblkhd, "arena": info.arena}


def malloc_figures() -> str:
    """The main malloc arena's size, in use and free (glibc's mallinfo2), in MiB."""
    info = malloc_info()
    if info is None:
        return "mallinfo2 not available"
    return (
        f"main arena {info['arena'] / MIB:.1f} MiB (in use {info['in_use'] / MIB:.1f}, "
        f"free {info['free'] / MIB:.1f}), mmapped {info['mmapped'] / MIB:.1f} MiB"
    )


def rss_by_mapping(pid: int | str = "self", top: int = 6) -> str:
    """Resident MiB by kind of mapping ([heap], [anon], each file), largest first."""
    kinds: dict[str, int] = {}
    name = "?"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if parts and not parts[0].endswith(":"):
            name = parts[5] if len(parts) > 5 else "[anon]"
            name = name if name.startswith("[") else os.path.basename(name)
        elif parts and parts[0] == "Rss:":
            kinds[name] = kinds.get(name, 0) + int(parts[1])
    largest = sorted(kinds.items(), key=lambda kv: -kv[1])[:top]
    return ", ".join(f"{kind} {kb / 1024:.0f}" for kind, kb in largest)


class AllocationProbe:
    """tracemalloc started after a warm-up, its growth logged every ``minutes`` (see the module doc)."""

    def __init__(self, minutes: float, delay_seconds: float = 200.0, frames: int = 5, top: int = 15) -> None:
        self.every, self.delay, self.frames, self.top = minutes * 60, delay_seconds, frames, top
        self._stop = threading.Event()

    @classmethod
    def from_environment(cls) -> AllocationProbe | None:
        minutes = os.environ.get("TRACEMALLOC_DUMP_MINUTES")
        if not minutes:
            return None
        return cls(float(minutes), float(os.environ.get("TRACEMALLOC_DELAY_SECONDS", "200")))

    def start(self) -> None:
        threading.Thread(target=self._run, name="allocation-probe", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        if self._stop.wait(self.delay):
            return
        tracemalloc.start(self.frames)
        first = None
        while not self._stop.wait(self.every):
            snapshot = tracemalloc.take_snapshot()
            traced, _ = tracemalloc.get_traced_memory()
            lines = [
                f"allocations: traced {traced / MIB:.1f} MiB; {malloc_figures()}; "
                f"RSS MiB by mapping: {rss_by_mapping()}"
            ]
            if first is None:
                first = snapshot
                stats = [(s.size, s.size, s.traceback) for s in snapshot.statistics("traceback")[: self.top]]
            else:
                stats = [
                    (s.size_diff, s.size, s.traceback)
                    for s in snapshot.compare_to(first, "traceback")[: self.top]
                ]
            for grew, size, traceback in stats:
                where = " <- ".join(f"{os.path.basename(f.filename)}:{f.lineno}" for f in traceback)
                lines.append(f"  {grew / MIB:+8.2f} MiB (now {size / MIB:7.2f}) {where}")
            log.warning("\n".join(lines))
        tracemalloc.stop()
