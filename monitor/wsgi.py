"""The monitor as a WSGI application for a production server (gunicorn).

    gunicorn --workers 1 --threads 8 --bind 0.0.0.0:8050 'monitor.wsgi:create_server()'

Gunicorn calls ``create_server`` once in each worker process (do not use ``--preload``: the feed's
thread would start in the master and not survive the fork), so every worker runs one Kafka feed
in the background and its request threads only read the shared state. Logins, sessions and the
login rate limits are kept in the worker's memory: run one worker and scale with ``--threads``.
"""

from __future__ import annotations

import atexit
import logging

import flask

from monitor.aggregation import MonitorState
from monitor.app import create_app
from monitor.consumer import KafkaFeed
from monitor.feedback import LabelPublisher
from monitor.lists_feed import ListFeed, ListPublisher
from monitor.metrics import MonitorMetrics
from monitor.server import default_registry
from monitor.users import Accounts, demo_notice
from pipeline.config import Settings, load_settings

logger = logging.getLogger(__name__)


def create_server(settings: Settings | None = None) -> flask.Flask:
    """Build the dashboard over a started ``KafkaFeed``; returns the Flask (WSGI) app.

    The feed and the label publisher are stopped when the process exits.
    """
    if not logging.getLogger().handlers:  # gunicorn sets up only its own loggers
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings if settings is not None else load_settings()
    metrics = MonitorMetrics(default_registry())
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
    )
    if accounts.demo:
        logger.warning(demo_notice())
    if settings.monitor_secret_key is None:
        logger.info("no FRAUD_MONITOR_SECRET_KEY: a random session key, logins end when the monitor stops")
    feed.start()
    list_feed.start()

    def stop() -> None:
        feed.stop()
        list_feed.stop()
        publisher.close()
        list_publisher.close()

    atexit.register(stop)
    logger.info("fraud monitor (WSGI) reading %s", ", ".join(feed.topics))
    return app.server
