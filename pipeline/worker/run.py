"""Running one worker process until SIGINT/SIGTERM."""

from __future__ import annotations

import gc

from pipeline.config import Settings
from pipeline.detection.states import compile_walks
from pipeline.worker.faust_app import FraudPipeline
from pipeline.worker.process_memory import AllocationProbe, limit_arenas
from pipeline.worker.shutdown import BoundedStopWorker, StopWatchdog
from pipeline.worker.topics import ensure_topics

# The malloc arena cap holds only for threads that allocate after it: glibc gives a thread an arena
# of the free list first (those of exited threads), whatever the cap. `fraud worker` imports this
# module before its broker check; with the cap in run_worker (4f9d6df), that check's librdkafka
# threads had left five arenas, which the worker's threads then took in turn (process_memory.py).
limit_arenas()


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Create the topics if needed, build the app and run it until SIGINT/SIGTERM."""
    if (probe := AllocationProbe.from_environment()) is not None:
        probe.start()  # diagnosis only: TRACEMALLOC_DUMP_MINUTES
    ensure_topics(settings)
    compile_walks()  # before the first batch (numba compiles them once, then loads them from its cache)
    pipeline = FraudPipeline(settings)
    pipeline.worker_dir.mkdir(parents=True, exist_ok=True)
    pipeline.recovery.start()  # logs and exposes the tables' recovery while Faust runs it
    # With Kafka gone, Faust's own stop would wait for it: a watchdog bounds it (shutdown.py).
    worker = BoundedStopWorker(pipeline.app, loglevel=loglevel, quiet=True, watchdog=StopWatchdog(settings))
    # The cyclic garbage collector walks every live object each time a generation fills; the
    # worker keeps many long-lived ones (models, indexes, buffers), so collect less often and
    # leave what exists at start-up out of it.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    # Faust's terminal spinner (on at warning level) sets the root logger to DEBUG so that it spins
    # on every record: each debug call of aiokafka and Faust then builds a log record (~5% CPU).
    worker.spinner = None
    worker.execute_from_commandline()
