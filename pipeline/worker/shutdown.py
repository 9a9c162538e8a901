"""A worker asked to stop gets a bounded time to do it when Kafka is gone.

Faust's shutdown commits offsets and flushes its producers; with the broker gone each of those
waits for it (SIGTERM was ignored for minutes). Once a stop is asked, a watchdog waits
``grace_seconds``; if the worker still runs and the cluster does not answer, it says so in one line
and ends the process. Nothing is lost: offsets are committed only after everything before them was
acknowledged, so what the worker did since its last commit is processed again by the next worker
(docs/reliability.md).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import faust

from pipeline.config import Settings
from pipeline.kafka.admin import BrokerUnavailableError, check_broker

log = logging.getLogger(__name__)

EXIT_WITHOUT_KAFKA = 3
"""The exit code of a worker that stopped without reaching Kafka."""


class StopWatchdog:
    """Ends the process ``grace_seconds`` after ``start`` if Kafka does not answer by then."""

    def __init__(
        self,
        settings: Settings,
        grace_seconds: float = 7.0,
        probe_seconds: float = 1.0,
        exit_process: Callable[[int], Any] = os._exit,
    ) -> None:
        self.settings = settings
        self.grace_seconds = grace_seconds
        self.probe_seconds = probe_seconds
        self._exit = exit_process
        self._started = threading.Event()

    def start(self) -> None:
        """Start watching (once; later calls do nothing)."""
        if not self._started.is_set():
            self._started.set()
            threading.Thread(target=self._watch, name="stop-watchdog", daemon=True).start()

    def _watch(self) -> None:
        time.sleep(self.grace_seconds)
        try:
            check_broker(self.settings, timeout=self.probe_seconds)
        except BrokerUnavailableError as exc:
            line = (
                f"fraud worker: stopping without Kafka after {self.grace_seconds:g} s ({exc}); the "
                "offsets since the last commit are not committed: a worker processes those messages again"
            )
            log.error(line)
            print(line, file=sys.stderr, flush=True)
            self._exit(EXIT_WITHOUT_KAFKA)
        else:
            log.info("still stopping after %g s; Kafka answers, so the stop goes on", self.grace_seconds)


class BoundedStopWorker(faust.Worker):
    """Faust's worker whose stop on SIGTERM or SIGINT is watched by a ``StopWatchdog``."""

    def __init__(self, app: faust.App, *services: Any, watchdog: StopWatchdog, **kwargs: Any) -> None:
        self.stop_watchdog = watchdog
        super().__init__(app, *services, **kwargs)

    def _schedule_shutdown(self, signal: Any) -> None:
        self.stop_watchdog.start()
        super()._schedule_shutdown(signal)
