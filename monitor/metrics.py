"""Prometheus metrics of the monitor, registered in an injectable registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


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
