"""A worker's memory outside Python's objects and RocksDB's budget: glibc's malloc, and the buffers
of the consumer that restores tables in bulk (issue 18; docs/reliability.md, "The soak").

glibc gives each thread that allocates concurrently an arena of its own (up to 8 per core), and
keeps what is freed in an arena for that arena's next allocations instead of returning it: a
worker's threads (librdkafka's, RocksDB's flush and compaction, the bulk restore's, the event
loop's) each keep the high-water mark of what they once held. A bulk restore makes that mark
large: librdkafka fetches and queues up to hundreds of MiB of changelog, RocksDB fills and flushes
memtables, and all of it is freed within a minute but stays resident. So the worker

* caps the arenas at ``ARENA_MAX`` (``mallopt(M_ARENA_MAX)``, as the ``MALLOC_ARENA_MAX``
  environment variable would, set before the worker starts a thread), so that freed memory is
  shared by every thread rather than kept per thread;
* returns free memory to the system every ``TRIM_SECONDS`` and after a bulk restore
  (``malloc_trim(0)``, which also gives back the free pages inside an arena, not only its top);
* bounds the bulk restore consumer's prefetch (``RESTORE_CONSUMER_BOUNDS``: librdkafka's default
  queue holds up to 64 MiB and 100,000 messages a partition ahead of the reader, with fetches of
  up to 64 MiB on top).

On a C library other than glibc the malloc calls do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

MIB = 1024 * 1024

ARENA_MAX = 2
"""malloc arenas of the worker process (glibc's default on 64-bit: 8 per core)."""
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

_M_ARENA_MAX = -8


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


def limit_arenas(arenas: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas (before threads are started); False when not glibc."""
    return _LIBC is not None and bool(_LIBC.mallopt(_M_ARENA_MAX, arenas))


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
