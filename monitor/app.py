"""The Dash app: the page, login, the sections' callbacks wired to the shared state, ``/metrics``,
``/healthz``, ``/readyz`` and ``/api/summary``.

The page and its callbacks are in ``monitor.views`` (one module per section); the work is in the
state (``monitor.state``), the pure builders (``reports``, ``verdict_labels``, ``list_changes``),
the Kafka edges (``feedback``, ``lists_feed``, ``consumer``) and ``auth`` (login).
"""

from __future__ import annotations

from typing import Any, Protocol

import flask
from dash import Dash
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.audit import Audit
from monitor.auth import PUBLIC_PATHS, current_user, install_login
from monitor.feedback import LabelPublisher
from monitor.lists_feed import ListPublisher
from monitor.metrics import MonitorMetrics
from monitor.rules_file import RulesFile
from monitor.state import MonitorState
from monitor.state.shared_lists import SharedLists
from monitor.users import Accounts
from monitor.views.alert_detail import Publish
from monitor.views.headline import STALE_AFTER_SECONDS
from monitor.views.lists import PublishList
from monitor.views.page import TITLE, build_layout, register_callbacks, validation_layout
from pipeline.config import FRAUD_TYPE_NAMES, Settings

READYZ_PATH = "/readyz"


def create_app(
    feed_state: MonitorState,
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    stale_after_seconds: float = STALE_AFTER_SECONDS,
    publish: Publish | None = None,
    accounts: Accounts | None = None,
    feed: FeedStatus | None = None,
    metrics: MonitorMetrics | None = None,
    lists: SharedLists | None = None,
    publish_list: PublishList | None = None,
    rules: RulesFile | None = None,
    audit: Audit | None = None,
) -> Dash:
    """The dashboard over ``feed_state`` (filled by a ``KafkaFeed``); serves ``registry`` at /metrics.

    Without a registry a fresh one with the monitor's metrics (all zero) is served. Verdicts go
    through ``publish`` (default: a ``LabelPublisher`` on ``settings.topic_labels``). Every page
    and Dash route needs a login (``accounts``, default from the settings); /healthz, /readyz,
    /metrics and /api/summary do not. With a ``feed``, /healthz fails once its thread has died and
    /readyz answers 200 only once it has caught up; ``metrics`` also counts the active sessions.
    Rules enabled in the rule what-if go to ``rules`` (default: ``settings.rules_file``, the file
    the workers reload). With an ``audit``, every verdict, list change and rule enabled is also
    an audit event (monitor/audit.py; the monitor process always has one).
    """
    if registry is None:
        registry = metrics.registry if metrics is not None else MonitorMetrics().registry
    if publish is None:
        publish = LabelPublisher(settings).publish
    app = Dash(__name__, title=TITLE, update_title=None)
    app.layout = build_layout(settings)
    app.validation_layout = validation_layout(settings)  # the model-health page's components too
    install_login(
        app.server,
        settings,
        accounts or Accounts.from_settings(settings),
        public_paths=PUBLIC_PATHS | {READYZ_PATH},
    )
    if metrics is not None:
        _track_sessions(app.server, metrics)
    if publish_list is None:
        publish_list = ListPublisher(settings).publish
    lists_state = SharedLists() if lists is None else lists
    rules_file = RulesFile(settings.rules_file) if rules is None else rules
    if audit is not None:
        publish = audit.verdicts(publish, feed_state.verdicts)
        publish_list = audit.lists(publish_list, lists_state)
        rules_file = audit.rules(rules_file)
    register_callbacks(
        app,
        feed_state,
        stale_after=stale_after_seconds,
        publish=publish,
        lists_state=lists_state,
        publish_list=publish_list,
        rules=rules_file,
    )
    _add_routes(app.server, registry, feed_state)
    _add_health_routes(app.server, feed)
    return app


class FeedStatus(Protocol):
    """What the health endpoints read of the feed (``monitor.consumer.KafkaFeed``)."""

    @property
    def running(self) -> bool: ...

    @property
    def ready(self) -> bool: ...

    @property
    def failure(self) -> BaseException | None: ...


def _track_sessions(server: flask.Flask, metrics: MonitorMetrics) -> None:
    """Every request of a logged-in browser session marks it active (runs after the login check)."""

    def seen() -> None:
        session_id = flask.session.get("sid")
        if session_id and current_user() is not None:
            metrics.sessions.seen(session_id)

    server.before_request(seen)


def _add_health_routes(server: flask.Flask, feed: FeedStatus | None) -> None:
    def healthz() -> flask.Response:
        if feed is not None and feed.failure is not None:
            return flask.Response(f"feed stopped: {feed.failure}", status=503, mimetype="text/plain")
        return flask.Response("ok", status=200, mimetype="text/plain")

    def readyz() -> flask.Response:
        if feed is None:
            return flask.jsonify({"ready": True, "feed": None})
        ready = feed.ready
        body = {"ready": ready, "feed": "caught up" if ready else "running" if feed.running else "stopped"}
        return flask.make_response(flask.jsonify(body), 200 if ready else 503)

    server.add_url_rule("/healthz", "healthz", healthz)
    server.add_url_rule(READYZ_PATH, "readyz", readyz)


def summary(state: MonitorState) -> dict[str, Any]:
    """Headline figures as JSON-ready data (served at /api/summary for scripts and tests)."""
    headline = state.decisions.headline()
    return {
        "as_of": headline.as_of.isoformat(),
        "transactions": headline.total,
        "outcomes": dict(headline.outcomes),
        "flagged_by_type": {FRAUD_TYPE_NAMES[k]: v for k, v in headline.flagged_by_type.items()},
        "fraud_rate_by_type": {
            FRAUD_TYPE_NAMES[k]: (v / headline.total if headline.total else 0.0)
            for k, v in headline.flagged_by_type.items()
        },
        "alert_rate": headline.alert_rate,
        "transactions_per_second": headline.tx_per_second,
        "seconds_since_last_decision": headline.seconds_since_last_decision,
        "alerts_queued": len(state.alerts),
    }


def _add_routes(server: flask.Flask, registry: CollectorRegistry, state: MonitorState) -> None:
    def api_summary() -> flask.Response:
        return flask.jsonify(summary(state))

    def metrics() -> flask.Response:
        return flask.Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    server.add_url_rule("/metrics", "metrics", metrics)
    server.add_url_rule("/api/summary", "api_summary", api_summary)
