"""Prometheus metrics of the monitor, registered in an injectable registry."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

ACTIVE_SESSION_SECONDS = 60.0  # an open dashboard refreshes every 2 s


class ActiveSessions:
    """Logged-in sessions that made a request in the last ``window_seconds`` (thread-safe)."""

    def __init__(
        self, window_seconds: float = ACTIVE_SESSION_SECONDS, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_seconds = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._last_seen: dict[str, float] = {}

    def seen(self, session_id: str) -> None:
        """Record a request of ``session_id``."""
        with self._lock:
            self._last_seen[session_id] = self._clock()

    def count(self) -> int:
        """Sessions seen within the window; older ones are forgotten."""
        cutoff = self._clock() - self.window_seconds
        with self._lock:
            for sid in [sid for sid, at in self._last_seen.items() if at < cutoff]:
                del self._last_seen[sid]
            return len(self._last_seen)


class MonitorMetrics:
    """The monitor's own metrics; pass a fresh ``CollectorRegistry`` per app (tests do)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.messages_consumed = Counter(
            "fraud_monitor_messages_consumed",
            "Messages read from Kafka, by topic (malformed ones included).",
            ["topic"],
            registry=self.registry,
        )
        self.malformed_messages = Counter(
            "fraud_monitor_malformed_messages",
            "Messages that were not valid JSON or lacked a field the monitor needs.",
            registry=self.registry,
        )
        self.ignored_messages = Counter(
            "fraud_monitor_ignored_messages",
            "Valid messages not counted: redeliveries (duplicate) or older than the history (too_old).",
            ["topic", "reason"],
            registry=self.registry,
        )
        self.last_decision_timestamp = Gauge(
            "fraud_monitor_last_decision_timestamp_seconds",
            "decided_at of the newest decision seen, in Unix seconds (0 before the first).",
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "fraud_monitor_consumer_lag_messages",
            "Messages in a partition the monitor has not read yet: end offset minus the feed's position.",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.feed_ready = Gauge(
            "fraud_monitor_feed_ready",
            "1 once the feed has read every partition up to the end offsets it saw at start (/readyz).",
            registry=self.registry,
        )
        self.analyst_verdicts = Gauge(
            "fraud_monitor_analyst_verdicts",
            "Analysts' verdicts on alerts the monitor holds, by outcome (fraud, legitimate).",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in ("fraud", "legitimate"):
            self.analyst_verdicts.labels(outcome)
        self.alert_precision = Gauge(
            "fraud_monitor_alert_precision",
            "Live alert precision: confirmed frauds among the alerts analysts judged (NaN before any).",
            registry=self.registry,
        )
        self.alert_precision.set(float("nan"))
        self.sessions = ActiveSessions()
        self.active_sessions = Gauge(
            "fraud_monitor_active_sessions",
            f"Logged-in browser sessions with a request in the last {ACTIVE_SESSION_SECONDS:.0f} s.",
            registry=self.registry,
        )
        self.active_sessions.set_function(self.sessions.count)

    def show_verdicts(self, fraud: int, legitimate: int) -> None:
        """The analysts' verdicts and the alert precision they give."""
        self.analyst_verdicts.labels("fraud").set(fraud)
        self.analyst_verdicts.labels("legitimate").set(legitimate)
        total = fraud + legitimate
        self.alert_precision.set(fraud / total if total else float("nan"))
