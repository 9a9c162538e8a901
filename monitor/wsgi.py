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
from gunicorn.errors import AppImportError

from monitor.server import MonitorProcess
from pipeline.config import ConfigurationError, Settings, load_settings
from pipeline.kafka.admin import BrokerUnavailableError, check_broker

logger = logging.getLogger(__name__)


def create_server(settings: Settings | None = None) -> flask.Flask:
    """Build the dashboard over a started ``KafkaFeed``; returns the Flask (WSGI) app.

    Checks the settings and the broker first, as ``fraud monitor`` does: an invalid setting or a
    cluster that does not answer within ``FRAUD_KAFKA_CONNECT_TIMEOUT_SECONDS`` stops gunicorn with
    one line on stderr (gunicorn prints an ``AppImportError`` alone and exits with code 4). The
    feed and the label publisher are stopped when the process exits.
    """
    if not logging.getLogger().handlers:  # gunicorn sets up only its own loggers
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings if settings is not None else load_settings()
        check_broker(settings)
    except ConfigurationError as exc:
        raise AppImportError(f"fraud: configuration error: {exc}") from None
    except BrokerUnavailableError as exc:
        raise AppImportError(f"fraud: {exc}") from None
    monitor = MonitorProcess.build(settings)
    monitor.start()
    atexit.register(monitor.stop)
    logger.info("fraud monitor (WSGI) reading %s", ", ".join(monitor.feed.topics))
    return monitor.app.server
