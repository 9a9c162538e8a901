"""The pages: the sections put together, and what spans sections (the URL, the header).

Two pages share the header (toolbar, title, navigation): the dashboard at ``/`` (any other path
too) and the model health at ``/model-health`` (``model_health.HEALTH_PATH``). The URL's path
chooses (``route``): on the model-health page the dashboard's sections are hidden and their refresh
stops, and the model-health components are put in only while that page is shown.
The URL's query keeps the chart's fraud type and the time range (a shared link opens the same view); the
header callback fills in who is signed in (the toolbar) and why the verdict buttons are off (the
detail panel). ``register_callbacks`` wires every section.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from monitor.auth import current_user
from monitor.rules_file import RulesFile
from monitor.state import MonitorState
from monitor.state.shared_lists import SharedLists
from monitor.timerange import CUSTOM, DEFAULT_RANGE, RANGE_LABELS
from monitor.users import User
from monitor.views import (
    alert_detail,
    alert_queue,
    at_risk,
    audit,
    headline,
    lists,
    model_health,
    rates,
    rule_whatif,
    time_range,
    toolbar,
)
from monitor.views.shared import (
    FRAUD_TYPE_CODES,
    PAGE_ID,
    REFRESH_ID,
    REFRESH_MS,
    THEME_ID,
    URL_ID,
)
from pipeline.config import Settings

TITLE = "Fraud Detection Dashboard"
MAIN_PAGE_ID = "main-page"
"""The dashboard's sections (hidden on the other pages)."""
HEALTH_PAGE_ID = "model-health-page"
"""Where the model-health page's components go when its URL is open."""
NAV_ID = "nav"
DASHBOARD_PATH = "/"
NAV_LINKS = (("Dashboard", DASHBOARD_PATH), ("Model health", model_health.HEALTH_PATH))
URL_TYPE_PARAM = "type"
URL_RANGE_PARAM = "range"
URL_FROM_PARAM = "from"
URL_TO_PARAM = "to"


def _link_id(path: str) -> str:
    return f"nav-{path.strip('/') or 'dashboard'}"


def navigation() -> html.Nav:
    """Links to the pages (in the browser: no reload, the router shows the page)."""
    return html.Nav(
        [dcc.Link(name, href=path, id=_link_id(path)) for name, path in NAV_LINKS],
        id=NAV_ID,
        style={"display": "flex", "gap": "16px", "fontSize": "14px", "marginBottom": "8px"},
    )


def build_layout(settings: Settings) -> html.Div:
    """Both pages (the model-health page's components are put in by the router); the callbacks fill
    the dashboard in on every ``refresh`` tick."""
    return html.Div(
        [
            dcc.Location(id=URL_ID, refresh=False),
            toolbar.toolbar(),
            html.H1(TITLE),
            navigation(),
            html.Div(_dashboard(settings), id=MAIN_PAGE_ID),
            html.Div(id=HEALTH_PAGE_ID),
            dcc.Interval(id=REFRESH_ID, interval=REFRESH_MS),
            dcc.Store(id=rates.GRAPH_RENDERED_ID),
            dcc.Store(id=alert_queue.ALERTS_RENDERED_ID),
            dcc.Store(id=alert_detail.DETAIL_RENDERED_ID),
            dcc.Store(id=time_range.VIEW_RANGE_ID, data={"range": DEFAULT_RANGE, "from": "", "to": ""}),
            dcc.Store(id=at_risk.RISK_RENDERED_ID),
            dcc.Store(id=alert_queue.QUEUE_PAGE_ID, data=0),
            dcc.Store(id=alert_queue.QUEUE_PAGES_ID, data=1),
            dcc.Store(id=THEME_ID, storage_type="local"),
        ],
        id=PAGE_ID,
        className="theme-light",
        style={"fontFamily": "sans-serif", "padding": "16px", "minHeight": "100vh"},
    )


def validation_layout(settings: Settings) -> html.Div:
    """Every component any page may show, for Dash's check of the callbacks."""
    return html.Div([build_layout(settings), model_health.health_page()])


def _dashboard(settings: Settings) -> list[Any]:
    """The dashboard's sections."""
    return [
        headline.headline_row(),
        *rates.type_chooser(),
        time_range.range_selector(),
        rates.rate_graph(),
        *at_risk.at_risk_section(),
        *alert_queue.queue_heading(),
        html.Div(
            [alert_queue.queue_table(), alert_detail.detail_panel()],
            style={"display": "flex", "gap": "16px", "flexWrap": "wrap"},
        ),
        html.P(
            f"Reading topics {settings.topic_decisions!r}, {settings.topic_alerts!r} and "
            f"{settings.topic_labels!r} from {settings.bootstrap_servers}; "
            f"history {settings.monitor_history_minutes} min. Verdicts go to {settings.topic_labels!r}.",
            style={"fontSize": "11px", "color": "#888"},
        ),
        lists.lists_section(),
        rule_whatif.whatif_section(),
        audit.audit_section(),
    ]


# --- the router ------------------------------------------------------------------------------------
CURRENT_LINK_STYLE = {"fontWeight": "bold", "textDecoration": "none", "color": "inherit"}


class Route(NamedTuple):
    """What a URL path shows: the dashboard's style, the model-health page's components, whether
    the dashboard's refresh is off, and the navigation links' styles (the current page's bold)."""

    dashboard_style: dict[str, str]
    health_page: Any
    refresh_disabled: bool
    link_styles: tuple[dict[str, str], ...]


def route(pathname: str | None) -> Route:
    """The model-health page at ``HEALTH_PATH`` (a trailing slash too), the dashboard elsewhere."""
    if (pathname or "").rstrip("/") == model_health.HEALTH_PATH:
        return Route({"display": "none"}, model_health.health_page(), True, ({}, CURRENT_LINK_STYLE))
    return Route({}, None, False, (CURRENT_LINK_STYLE, {}))


# --- the header ------------------------------------------------------------------------------------
def header_view(user: User | None) -> tuple[list[Any], str]:
    """The 'signed in as' text and the verdict note."""
    name, role = (user.name, user.role) if user else (None, None)
    return toolbar.user_info(name, role), alert_detail.verdict_note(user)


# --- the URL ---------------------------------------------------------------------------------------
class ViewControls(NamedTuple):
    """The controls the URL keeps: fraud type (display name), range choice, custom bounds as typed."""

    fraud_type: Any
    range_choice: Any = DEFAULT_RANGE
    start: Any = ""
    end: Any = ""


_TYPE_CHOICES = frozenset(FRAUD_TYPE_CODES) | {rates.ALL_TYPES_NAME}


def type_from_search(search: str | None) -> str | None:
    """The fraud type display name in a query string ('?type=Identity+Theft'), None when absent or unknown."""
    values = parse_qs((search or "").lstrip("?")).get(URL_TYPE_PARAM, [])
    return values[0] if values and values[0] in _TYPE_CHOICES else None


def controls_from_search(search: str | None) -> ViewControls:
    """What a URL asks for: unknown or absent type -> None; absent or unknown range -> the default."""
    query = parse_qs((search or "").lstrip("?"))

    def first(name: str) -> str:
        values = query.get(name, [])
        return values[0] if values else ""

    choice = first(URL_RANGE_PARAM)
    choice = choice if choice in RANGE_LABELS else DEFAULT_RANGE
    bounds = (first(URL_FROM_PARAM), first(URL_TO_PARAM)) if choice == CUSTOM else ("", "")
    return ViewControls(type_from_search(search), choice, *bounds)


def search_for(controls: ViewControls) -> str:
    """'?type=Identity+Theft&range=1h' (the range only when it is not the default)."""
    params = {URL_TYPE_PARAM: controls.fraud_type}
    if controls.range_choice in RANGE_LABELS and controls.range_choice != DEFAULT_RANGE:
        params[URL_RANGE_PARAM] = controls.range_choice
        if controls.range_choice == CUSTOM:
            for name, value in ((URL_FROM_PARAM, controls.start), (URL_TO_PARAM, controls.end)):
                if isinstance(value, str) and value.strip():
                    params[name] = value.strip()
    return "?" + urlencode(params)


def sync_url(search: str | None, controls: ViewControls, url_changed: bool) -> tuple[Any, ...]:
    """Keep the URL and the controls (type, range, custom bounds) in step.

    Returns (new search, type, range, start, end), ``no_update`` for what stays. When the page
    loads or the URL changes (back/forward, a shared link), the URL wins; when a control changes,
    the URL follows. Raises PreventUpdate when both already agree or the URL names no known type.
    """
    wanted = controls_from_search(search)
    if url_changed:
        if wanted.fraud_type is None:
            raise PreventUpdate
        current = ViewControls(*(c if c is not None else "" for c in controls))
        changes = [w if w != c else no_update for w, c in zip(wanted, current, strict=True)]
        if wanted.range_choice != CUSTOM:
            changes[2:] = [no_update, no_update]  # keep what was typed for a later custom range
        if all(c is no_update for c in changes):
            raise PreventUpdate
        return (no_update, *changes)
    if controls.fraud_type not in _TYPE_CHOICES:
        raise PreventUpdate
    new = search_for(controls)
    if parse_qs(new.lstrip("?")) == parse_qs((search or "").lstrip("?")):
        raise PreventUpdate
    return new, no_update, no_update, no_update, no_update


# --- wiring ----------------------------------------------------------------------------------------
def register_callbacks(
    app: Dash,
    state: MonitorState,
    *,
    stale_after: float,
    publish: alert_detail.Publish,
    lists_state: SharedLists,
    publish_list: lists.PublishList,
    rules: RulesFile,
) -> None:
    """Wire every section of the page to ``state`` (the lists section to ``lists_state``, the rule
    what-if to ``rules``)."""
    rates.register_rates_callbacks(app, state)
    _register_router(app)
    _register_dashboard_link(app)
    _register_url_callback(app)
    headline.register_headline_callbacks(app, state, stale_after)
    alert_queue.register_alert_queue_callbacks(app, state)
    time_range.register_time_range_callbacks(app)
    at_risk.register_at_risk_callbacks(app, state)
    toolbar.register_toolbar_callbacks(app, state)
    _register_header_callback(app)
    alert_detail.register_alert_detail_callbacks(app, state, publish)
    # Block/allow lists: ``lists_state`` is fed by a ListFeed (monitor/lists_feed.py).
    lists.register_list_callbacks(
        app, lists_state, publish_list, refresh_id=REFRESH_ID, url_id=URL_ID, alerts=state.alerts
    )
    rule_whatif.register_whatif_callbacks(app, state.scored, rules, url_id=URL_ID)
    model_health.register_health_callbacks(app, state)
    audit.register_audit_callbacks(app, state.audit)


def _register_router(app: Dash) -> None:
    @app.callback(
        Output(MAIN_PAGE_ID, "style"),
        Output(HEALTH_PAGE_ID, "children"),
        Output(REFRESH_ID, "disabled"),
        *(Output(_link_id(path), "style") for _, path in NAV_LINKS),
        Input(URL_ID, "pathname"),
    )
    def _route(pathname: str | None) -> tuple[Any, ...]:
        page, health, disabled, links = route(pathname)
        return (page, health, disabled, *links)


def dashboard_href(search: str | None) -> str:
    """Where the navigation's "Dashboard" link goes: the dashboard as last seen (its type and range)."""
    query = (search or "").lstrip("?")
    return f"{DASHBOARD_PATH}?{query}" if query else DASHBOARD_PATH


def _register_dashboard_link(app: Dash) -> None:
    @app.callback(
        Output(_link_id(DASHBOARD_PATH), "href"),
        Input(URL_ID, "search"),
        State(URL_ID, "pathname"),
    )
    def _dashboard_link(search: str | None, pathname: str | None) -> str:
        if route(pathname).health_page is not None:  # the model-health page's URL has no query
            raise PreventUpdate
        return dashboard_href(search)


def _register_url_callback(app: Dash) -> None:
    @app.callback(
        Output(URL_ID, "search"),
        Output(rates.FRAUD_TYPE_ID, "value"),
        Output(time_range.TIME_RANGE_ID, "value"),
        Output(time_range.RANGE_START_ID, "value"),
        Output(time_range.RANGE_END_ID, "value"),
        Input(URL_ID, "search"),
        Input(rates.FRAUD_TYPE_ID, "value"),
        Input(time_range.TIME_RANGE_ID, "value"),
        Input(time_range.RANGE_START_ID, "value"),
        Input(time_range.RANGE_END_ID, "value"),
    )
    def _url(search: str | None, *controls: Any) -> tuple[Any, ...]:
        url_changed = ctx.triggered_id in (None, URL_ID)
        return sync_url(search, ViewControls(*controls), url_changed=url_changed)


def _register_header_callback(app: Dash) -> None:
    @app.callback(
        Output(toolbar.USER_INFO_ID, "children"),
        Output(alert_detail.VERDICT_NOTE_ID, "children"),
        Input(URL_ID, "pathname"),
    )
    def _header(_path: str | None) -> tuple[Any, str]:
        return header_view(current_user())
