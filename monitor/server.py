"""Run the monitor: the Kafka feed in the background, the Dash app in the foreground."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from monitor.aggregation import MonitorState
from monitor.app import create_app
from monitor.consumer import KafkaFeed
from monitor.metrics import MonitorMetrics
from pipeline.config import Settings

logger = logging.getLogger(__name__)


def monitor_url(settings: Settings) -> str:
    """Where the dashboard can be opened."""
    host = "127.0.0.1" if settings.monitor_host in ("0.0.0.0", "") else settings.monitor_host
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{settings.monitor_port}/"


def default_registry() -> CollectorRegistry:
    """A fresh registry with the process, platform and GC collectors."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def run_monitor(
    settings: Settings, debug: bool = False, *, registry: CollectorRegistry | None = None
) -> None:
    """Serve the dashboard on ``settings.monitor_host:monitor_port`` until interrupted.

    Starts a ``KafkaFeed`` first and stops it when the server returns.
    """
    metrics = MonitorMetrics(registry if registry is not None else default_registry())
    state = MonitorState.from_settings(settings)
    feed = KafkaFeed(settings, state=state, metrics=metrics)
    app = create_app(state, settings, registry=metrics.registry)
    url = monitor_url(settings)
    feed.start()
    try:
        logger.info("fraud monitor at %s (metrics at %smetrics)", url, url)
        print(f"Fraud monitor: {url}  (Prometheus metrics: {url}metrics)", flush=True)
        # No reloader: it would run this function twice, with two feeds.
        app.run(host=settings.monitor_host, port=settings.monitor_port, debug=debug, use_reloader=False)
    finally:
        feed.stop()
