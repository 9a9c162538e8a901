"""The Dash app: layout, callbacks wired to the shared state, ``/metrics`` and ``/healthz``."""

from __future__ import annotations

from typing import Any

import flask
from dash import Dash, Input, Output, State
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor import callbacks
from monitor.aggregation import MonitorState
from monitor.layout import (
    ALERT_QUEUE_ID,
    ALERT_RATE_ID,
    ALERTS_RENDERED_ID,
    BLOCKED_ID,
    FRAUD_TYPE_ID,
    GRAPH_ID,
    GRAPH_RENDERED_ID,
    OUTCOMES_ID,
    REFRESH_ID,
    STALENESS_ID,
    TITLE,
    TPS_ID,
    build_layout,
)
from monitor.metrics import MonitorMetrics
from pipeline.config import FRAUD_TYPE_NAMES, Settings


def create_app(
    feed_state: MonitorState,
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    stale_after_seconds: float = callbacks.STALE_AFTER_SECONDS,
    alert_rows: int = callbacks.ALERT_ROWS,
) -> Dash:
    """The dashboard over ``feed_state`` (filled by a ``KafkaFeed``); serves ``registry`` at /metrics.

    Without a registry a fresh one with the monitor's metrics (all zero) is served.
    """
    if registry is None:
        registry = MonitorMetrics().registry
    app = Dash(__name__, title=TITLE, update_title=None)
    app.layout = build_layout(settings)
    _register_callbacks(app, feed_state, stale_after_seconds, alert_rows)
    _add_routes(app.server, registry, feed_state)
    return app


def _register_callbacks(app: Dash, state: MonitorState, stale_after: float, alert_rows: int) -> None:
    @app.callback(
        Output(GRAPH_ID, "figure"),
        Output(GRAPH_RENDERED_ID, "data"),
        Input(REFRESH_ID, "n_intervals"),
        Input(FRAUD_TYPE_ID, "value"),
        State(GRAPH_RENDERED_ID, "data"),
    )
    def _graph(_n: int | None, fraud_type_name: str | None, rendered: Any) -> tuple[Any, str]:
        return callbacks.update_graph(state, fraud_type_name, rendered)

    @app.callback(
        Output(TPS_ID, "children"),
        Output(OUTCOMES_ID, "children"),
        Output(ALERT_RATE_ID, "children"),
        Output(BLOCKED_ID, "children"),
        Output(STALENESS_ID, "children"),
        Output(STALENESS_ID, "style"),
        Input(REFRESH_ID, "n_intervals"),
    )
    def _headline(_n: int | None) -> tuple[Any, ...]:
        return tuple(callbacks.update_headline(state, stale_after))

    @app.callback(
        Output(ALERT_QUEUE_ID, "children"),
        Output(ALERTS_RENDERED_ID, "data"),
        Input(REFRESH_ID, "n_intervals"),
        State(ALERTS_RENDERED_ID, "data"),
    )
    def _alerts(_n: int | None, rendered: Any) -> tuple[Any, int]:
        return callbacks.update_alert_queue(state, rendered, alert_rows)


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

    def healthz() -> flask.Response:
        return flask.Response("ok", status=200, mimetype="text/plain")

    server.add_url_rule("/metrics", "metrics", metrics)
    server.add_url_rule("/healthz", "healthz", healthz)
    server.add_url_rule("/api/summary", "api_summary", api_summary)
