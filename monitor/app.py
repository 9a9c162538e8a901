"""The Dash app: layout, login, callbacks wired to the shared state, ``/metrics`` and ``/healthz``.

The callbacks only wire: the work is in ``callbacks`` (pure over the state), ``reports`` and
``verdicts`` (pure builders), ``feedback`` and ``consumer`` (the Kafka edges), ``auth`` (login).
"""

from __future__ import annotations

from typing import Any, Protocol

import flask
from dash import ALL, ClientsideFunction, Dash, Input, Output, State, ctx
from dash.exceptions import PreventUpdate
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor import callbacks
from monitor.aggregation import MonitorState
from monitor.auth import PUBLIC_PATHS, current_user, install_login
from monitor.feedback import LabelPublisher
from monitor.layout import (
    ALERT_DETAIL_ID,
    ALERT_QUEUE_ID,
    ALERT_RATE_ID,
    ALERT_ROW_TYPE,
    ALERT_SELECT_ID,
    ALERTS_RENDERED_ID,
    AT_RISK_ID,
    BLOCKED_ID,
    CONFIRM_ID,
    DETAIL_RENDERED_ID,
    DOWNLOAD_ID,
    EXPORT_EXCEL_ID,
    EXPORT_PDF_ID,
    FRAUD_TYPE_ID,
    GRAPH_ID,
    GRAPH_RENDERED_ID,
    LEGITIMATE_ID,
    OUTCOMES_ID,
    PAGE_ID,
    QUEUE_DECISION_ID,
    QUEUE_MIN_SCORE_ID,
    QUEUE_NEXT_ID,
    QUEUE_PAGE_ID,
    QUEUE_PAGE_INFO_ID,
    QUEUE_PAGE_SIZE_ID,
    QUEUE_PAGES_ID,
    QUEUE_PREV_ID,
    QUEUE_TYPE_ID,
    RANGE_END_ID,
    RANGE_ERROR_ID,
    RANGE_START_ID,
    REFRESH_ID,
    RISK_RENDERED_ID,
    STALENESS_ID,
    THEME_ID,
    THEME_TOGGLE_ID,
    TIME_RANGE_ID,
    TITLE,
    TPS_ID,
    URL_ID,
    USER_INFO_ID,
    VERDICT_COMMENT_ID,
    VERDICT_NOTE_ID,
    VERDICT_STATUS_ID,
    VERDICT_TYPE_ID,
    VIEW_RANGE_ID,
    build_layout,
)
from monitor.lists_feed import ListPublisher
from monitor.lists_view import PublishList, SharedLists, register_list_callbacks
from monitor.metrics import MonitorMetrics
from monitor.users import Accounts
from pipeline.config import FRAUD_TYPE_NAMES, Settings

READYZ_PATH = "/readyz"


def create_app(
    feed_state: MonitorState,
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    stale_after_seconds: float = callbacks.STALE_AFTER_SECONDS,
    publish: callbacks.Publish | None = None,
    accounts: Accounts | None = None,
    feed: FeedStatus | None = None,
    metrics: MonitorMetrics | None = None,
    lists: SharedLists | None = None,
    publish_list: PublishList | None = None,
) -> Dash:
    """The dashboard over ``feed_state`` (filled by a ``KafkaFeed``); serves ``registry`` at /metrics.

    Without a registry a fresh one with the monitor's metrics (all zero) is served. Verdicts go
    through ``publish`` (default: a ``LabelPublisher`` on ``settings.topic_labels``). Every page
    and Dash route needs a login (``accounts``, default from the settings); /healthz, /readyz,
    /metrics and /api/summary do not. With a ``feed``, /healthz fails once its thread has died and
    /readyz answers 200 only once it has caught up; ``metrics`` also counts the active sessions.
    """
    if registry is None:
        registry = metrics.registry if metrics is not None else MonitorMetrics().registry
    if publish is None:
        publish = LabelPublisher(settings).publish
    app = Dash(__name__, title=TITLE, update_title=None)
    app.layout = build_layout(settings)
    install_login(
        app.server,
        settings,
        accounts or Accounts.from_settings(settings),
        public_paths=PUBLIC_PATHS | {READYZ_PATH},
    )
    if metrics is not None:
        _track_sessions(app.server, metrics)
    _register_callbacks(app, feed_state, stale_after_seconds)
    _register_view_callbacks(app, feed_state)
    _register_feedback_callbacks(app, feed_state, publish)
    # Block/allow lists (monitor/lists_view.py): ``lists`` is fed by a ListFeed (monitor/lists_feed.py).
    if publish_list is None:
        publish_list = ListPublisher(settings).publish
    lists = SharedLists() if lists is None else lists
    register_list_callbacks(
        app, lists, publish_list, refresh_id=REFRESH_ID, url_id=URL_ID, alerts=feed_state.alerts
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


def _is_dark(theme: Any) -> bool:
    return isinstance(theme, dict) and theme.get("dark") is True


def _register_callbacks(app: Dash, state: MonitorState, stale_after: float) -> None:
    @app.callback(
        Output(GRAPH_ID, "figure"),
        Output(GRAPH_RENDERED_ID, "data"),
        Input(REFRESH_ID, "n_intervals"),
        Input(FRAUD_TYPE_ID, "value"),
        Input(VIEW_RANGE_ID, "data"),
        Input(THEME_ID, "data"),
        State(GRAPH_RENDERED_ID, "data"),
    )
    def _graph(
        _n: int | None, fraud_type_name: str | None, range_data: Any, theme: Any, rendered: Any
    ) -> tuple[Any, str]:
        return callbacks.update_graph(state, fraud_type_name, rendered, range_data, _is_dark(theme))

    @app.callback(
        Output(URL_ID, "search"),
        Output(FRAUD_TYPE_ID, "value"),
        Output(TIME_RANGE_ID, "value"),
        Output(RANGE_START_ID, "value"),
        Output(RANGE_END_ID, "value"),
        Input(URL_ID, "search"),
        Input(FRAUD_TYPE_ID, "value"),
        Input(TIME_RANGE_ID, "value"),
        Input(RANGE_START_ID, "value"),
        Input(RANGE_END_ID, "value"),
    )
    def _url(search: str | None, *controls: Any) -> tuple[Any, ...]:
        url_changed = ctx.triggered_id in (None, URL_ID)
        return callbacks.sync_url(search, callbacks.ViewControls(*controls), url_changed=url_changed)

    @app.callback(
        Output(TPS_ID, "children"),
        Output(OUTCOMES_ID, "children"),
        Output(ALERT_RATE_ID, "children"),
        Output(BLOCKED_ID, "children"),
        Output(STALENESS_ID, "children"),
        Output(STALENESS_ID, "style"),
        Input(REFRESH_ID, "n_intervals"),
        Input(VIEW_RANGE_ID, "data"),
    )
    def _headline(_n: int | None, range_data: Any) -> tuple[Any, ...]:
        within, _ = callbacks.view_range(state, range_data)
        return tuple(callbacks.update_headline(state, stale_after, within))

    @app.callback(
        Output(QUEUE_PAGE_ID, "data"),
        Input(QUEUE_PREV_ID, "n_clicks"),
        Input(QUEUE_NEXT_ID, "n_clicks"),
        Input(VIEW_RANGE_ID, "data"),
        Input(QUEUE_TYPE_ID, "value"),
        Input(QUEUE_DECISION_ID, "value"),
        Input(QUEUE_MIN_SCORE_ID, "value"),
        Input(QUEUE_PAGE_SIZE_ID, "value"),
        State(QUEUE_PAGE_ID, "data"),
        State(QUEUE_PAGES_ID, "data"),
        prevent_initial_call=True,
    )
    def _turn_page(*args: Any) -> int:
        page, pages = args[-2:]
        return callbacks.turn_page(set(ctx.triggered_prop_ids.values()), page, pages)

    # The page is an input here, never a state: a refresh cannot answer with the page it had before.
    @app.callback(
        Output(ALERT_QUEUE_ID, "children"),
        Output(ALERT_SELECT_ID, "options"),
        Output(ALERTS_RENDERED_ID, "data"),
        Output(QUEUE_PAGES_ID, "data"),
        Output(QUEUE_PAGE_INFO_ID, "children"),
        Output(QUEUE_PREV_ID, "disabled"),
        Output(QUEUE_NEXT_ID, "disabled"),
        Input(REFRESH_ID, "n_intervals"),
        Input(VIEW_RANGE_ID, "data"),
        Input(QUEUE_TYPE_ID, "value"),
        Input(QUEUE_DECISION_ID, "value"),
        Input(QUEUE_MIN_SCORE_ID, "value"),
        Input(QUEUE_PAGE_SIZE_ID, "value"),
        Input(QUEUE_PAGE_ID, "data"),
        State(ALERTS_RENDERED_ID, "data"),
    )
    def _alerts(
        _n: int | None,
        range_data: Any,
        fraud_type: Any,
        decision: Any,
        min_score: Any,
        page_size: Any,
        page: Any,
        rendered: Any,
    ) -> tuple[Any, ...]:
        request = callbacks.QueueRequest(fraud_type, decision, min_score, page_size, page)
        view = callbacks.update_queue_page(state, request, rendered, range_data)
        return (
            view.children,
            view.options,
            view.key,
            view.pages,
            view.page_info,
            view.newer_disabled,
            view.older_disabled,
        )


def _register_view_callbacks(app: Dash, state: MonitorState) -> None:
    @app.callback(
        Output(VIEW_RANGE_ID, "data"),
        Output(RANGE_ERROR_ID, "children"),
        Input(TIME_RANGE_ID, "value"),
        Input(RANGE_START_ID, "value"),
        Input(RANGE_END_ID, "value"),
    )
    def _range(choice: str | None, start: str | None, end: str | None) -> tuple[Any, str]:
        return callbacks.update_view_range(choice, start, end)

    @app.callback(
        Output(AT_RISK_ID, "children"),
        Output(RISK_RENDERED_ID, "data"),
        Input(REFRESH_ID, "n_intervals"),
        Input(VIEW_RANGE_ID, "data"),
        State(RISK_RENDERED_ID, "data"),
    )
    def _risk(_n: int | None, range_data: Any, rendered: Any) -> tuple[Any, str]:
        return callbacks.update_at_risk(state, range_data, rendered)

    # The theme lives in the browser (localStorage), so it is switched without a server round trip.
    app.clientside_callback(
        ClientsideFunction(namespace="monitor", function_name="theme"),
        Output(THEME_ID, "data"),
        Output(PAGE_ID, "className"),
        Output(THEME_TOGGLE_ID, "children"),
        Input(THEME_TOGGLE_ID, "n_clicks"),
        State(THEME_ID, "data"),
    )


def _register_feedback_callbacks(app: Dash, state: MonitorState, publish: callbacks.Publish) -> None:
    @app.callback(
        Output(USER_INFO_ID, "children"),
        Output(VERDICT_NOTE_ID, "children"),
        Input(URL_ID, "pathname"),
    )
    def _header(_path: str | None) -> tuple[Any, str]:
        return callbacks.header_view(current_user())

    @app.callback(
        Output(ALERT_SELECT_ID, "value"),
        Input({"type": ALERT_ROW_TYPE, "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def _row_clicked(_clicks: list[int | None]) -> str:
        triggered = ctx.triggered
        if len(triggered) != 1:  # rows re-rendered, not a click
            raise PreventUpdate
        return callbacks.clicked_alert(ctx.triggered_id, triggered[0].get("value"))

    @app.callback(
        Output(ALERT_DETAIL_ID, "children"),
        Output(CONFIRM_ID, "disabled"),
        Output(LEGITIMATE_ID, "disabled"),
        Output(VERDICT_TYPE_ID, "value"),
        Output(DETAIL_RENDERED_ID, "data"),
        Input(ALERT_SELECT_ID, "value"),
        Input(REFRESH_ID, "n_intervals"),
        State(DETAIL_RENDERED_ID, "data"),
    )
    def _detail(transaction_id: str | None, _n: int | None, rendered: Any) -> tuple[Any, ...]:
        changed = ctx.triggered_id == ALERT_SELECT_ID
        return tuple(callbacks.update_detail(state, current_user(), transaction_id, rendered, changed))

    @app.callback(
        Output(VERDICT_STATUS_ID, "children"),
        Output(VERDICT_STATUS_ID, "style"),
        Input(CONFIRM_ID, "n_clicks"),
        Input(LEGITIMATE_ID, "n_clicks"),
        State(ALERT_SELECT_ID, "value"),
        State(VERDICT_TYPE_ID, "value"),
        State(VERDICT_COMMENT_ID, "value"),
        prevent_initial_call=True,
    )
    def _verdict(
        _confirm: int | None,
        _legitimate: int | None,
        transaction_id: str | None,
        fraud_type_name: str | None,
        comment: str | None,
    ) -> tuple[Any, ...]:
        if ctx.triggered_id not in (CONFIRM_ID, LEGITIMATE_ID):
            raise PreventUpdate
        action: callbacks.Action = "confirm" if ctx.triggered_id == CONFIRM_ID else "legitimate"
        return tuple(
            callbacks.give_verdict(
                state, publish, current_user(), transaction_id, action, fraud_type_name, comment
            )
        )

    @app.callback(
        Output(DOWNLOAD_ID, "data"),
        Input(EXPORT_EXCEL_ID, "n_clicks"),
        Input(EXPORT_PDF_ID, "n_clicks"),
        State(VIEW_RANGE_ID, "data"),
        prevent_initial_call=True,
    )
    def _export(_excel: int | None, _pdf: int | None, range_data: Any) -> dict[str, Any]:
        if ctx.triggered_id not in (EXPORT_EXCEL_ID, EXPORT_PDF_ID):
            raise PreventUpdate
        kind = "xlsx" if ctx.triggered_id == EXPORT_EXCEL_ID else "pdf"
        return callbacks.export_report(state, kind, current_user(), range_data=range_data)


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
