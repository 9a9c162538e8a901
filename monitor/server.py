"""Run the monitor: the Kafka feed in the background, the Dash app in the foreground."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dash import Dash
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from monitor.app import create_app
from monitor.audit import Audit, AuditPublisher
from monitor.consumer import KafkaFeed
from monitor.feedback import LabelPublisher
from monitor.lists_feed import ListFeed, ListPublisher
from monitor.metrics import MonitorMetrics
from monitor.state import MonitorState
from monitor.users import Accounts, demo_notice
from pipeline.config import Settings
from pipeline.detection.rules import seed_rules_file

logger = logging.getLogger(__name__)


def monitor_url(settings: Settings) -> str:
    """Where the dashboard can be opened."""
    host = "127.0.0.1" if settings.monitor_host in ("0.0.0.0", "") else settings.monitor_host
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{settings.monitor_port}/"


QUIET_PATHS = ("/metrics",)
"""Paths whose requests the server does not log: Prometheus scrapes them every few seconds."""


class QuietScrapes(logging.Filter):
    """Drops the access-log line of a request for one of ``QUIET_PATHS`` (werkzeug logs every
    request as ``"GET /metrics HTTP/1.1" 200 -``, its request line the record's first argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.args, tuple) or not record.args:
            return True
        words = str(record.args[0]).split()
        return len(words) < 2 or words[1].split("?", 1)[0] not in QUIET_PATHS


def default_registry() -> CollectorRegistry:
    """A fresh registry with the process, platform and GC collectors."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


@dataclass
class MonitorProcess:
    """Everything one monitor process runs: the Dash app over a Kafka feed of the decisions, alerts
    and labels, a feed of the block/allow lists, and the publishers of verdicts and list changes."""

    app: Dash
    feed: KafkaFeed
    list_feed: ListFeed
    publisher: LabelPublisher
    list_publisher: ListPublisher
    accounts: Accounts

    @classmethod
    def build(cls, settings: Settings, registry: CollectorRegistry | None = None) -> MonitorProcess:
        if settings.rules_file_seed:  # the rule what-if enables rules in the file the workers read
            seed_rules_file(settings.rules_file)
        metrics = MonitorMetrics(registry if registry is not None else default_registry())
        state = MonitorState.from_settings(settings)
        feed = KafkaFeed(settings, state=state, metrics=metrics)
        publisher = LabelPublisher(settings)
        list_feed, list_publisher = ListFeed(settings), ListPublisher(settings)
        accounts = Accounts.from_settings(settings)
        app = create_app(
            state,
            settings,
            registry=metrics.registry,
            publish=publisher.publish,
            accounts=accounts,
            feed=feed,
            metrics=metrics,
            lists=list_feed.lists,
            publish_list=list_publisher.publish,
            audit=Audit(AuditPublisher(settings).publish),
        )
        if accounts.demo:
            logger.warning(demo_notice())
        else:
            logger.info("monitor users: %s", ", ".join(accounts.names))
        if settings.monitor_secret_key is None:
            logger.info(
                "no FRAUD_MONITOR_SECRET_KEY: a random session key, logins end when the monitor stops"
            )
        return cls(app, feed, list_feed, publisher, list_publisher, accounts)

    def start(self) -> None:
        self.feed.start()
        self.list_feed.start()

    def stop(self) -> None:
        self.feed.stop()
        self.list_feed.stop()
        self.publisher.close()
        self.list_publisher.close()


def run_monitor(
    settings: Settings, debug: bool = False, *, registry: CollectorRegistry | None = None
) -> None:
    """Serve the dashboard on ``settings.monitor_host:monitor_port`` until interrupted.

    Starts the feeds first and stops them when the server returns.
    """
    monitor = MonitorProcess.build(settings, registry)
    url = monitor_url(settings)
    if monitor.accounts.demo:
        print(demo_notice(), flush=True)
        if settings.monitor_host not in ("127.0.0.1", "localhost", "::1"):
            logger.warning(
                "the demo logins are served on %s, not only on this machine", settings.monitor_host
            )
    monitor.start()
    logging.getLogger("werkzeug").addFilter(QuietScrapes())
    try:
        logger.info("fraud monitor at %s (metrics at %smetrics)", url, url)
        print(f"Fraud monitor: {url}  (Prometheus metrics: {url}metrics)", flush=True)
        # No reloader: it would run this function twice, with two feeds.
        monitor.app.run(
            host=settings.monitor_host, port=settings.monitor_port, debug=debug, use_reloader=False
        )
    finally:
        monitor.stop()
