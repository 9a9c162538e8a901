"""The alert queue: filters, the order (newest first or highest score first), one page of alerts
with their verdicts, the pager.

A click on a row chooses that alert for the detail panel (``monitor.views.alert_detail``): the
chooser there (``ALERT_SELECT_ID``) lists the alerts of the page shown here.

The module is longer than 400 lines because it keeps the queue's layout and all its callbacks
together, as every section of the page does (monitor/views/).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from monitor.formatting import format_amount, format_time, fraud_type_name, shorten_token, verdict_short
from monitor.state import MonitorState
from monitor.state.alerts import AlertFilter, AlertOrder
from monitor.state.records import FLAGGED_DECISIONS
from monitor.state.verdicts import Verdict
from monitor.timerange import EVERYTHING, TimeRange
from monitor.views.shared import BUTTON_STYLE, CELL_STYLE, FRAUD_TYPE_CODES, REFRESH_ID
from monitor.views.time_range import VIEW_RANGE_ID, view_range
from pipeline.config import FRAUD_TYPE_NAMES, FRAUD_TYPES

ALERT_QUEUE_ID = "alert-queue"
ALERTS_RENDERED_ID = "alerts-rendered"
ALERT_SELECT_ID = "alert-select"
"""The detail panel's alert chooser: its options are the alerts of the page shown, a row click sets it."""
QUEUE_TYPE_ID = "queue-type"
QUEUE_DECISION_ID = "queue-decision"
QUEUE_MIN_SCORE_ID = "queue-min-score"
QUEUE_ORDER_ID = "queue-order"
QUEUE_PAGE_SIZE_ID = "queue-page-size"
QUEUE_PREV_ID = "queue-prev"
QUEUE_NEXT_ID = "queue-next"
QUEUE_PAGE_ID = "queue-page"
QUEUE_PAGES_ID = "queue-pages"
QUEUE_PAGE_INFO_ID = "queue-page-info"
ALERT_ROW_TYPE = "alert-row"
"""Pattern-matching id type of the queue's rows: {"type": "alert-row", "index": transaction id}."""

ANY = "any"
"""The queue filters' value for "no condition"."""
PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25
DEFAULT_ORDER: AlertOrder = "newest"
ORDER_LABELS: dict[AlertOrder, str] = {"newest": "Newest first", "score": "Highest score first"}
"""The order control's options; "score" ranks by the detector's calibrated fraud probability."""
PAGER_LABELS: dict[AlertOrder, tuple[str, str]] = {
    "newest": ("‹ Newer", "Older ›"),
    "score": ("‹ Higher scores", "Lower scores ›"),
}
"""The pager's buttons (back, forward) in each order."""

ALERT_COLUMNS = (
    "Transaction",
    "Event time (UTC)",
    "Type",
    "Decision",
    "Score",
    "Amount",
    "Card",
    "Reasons",
    "Verdict",
)


# --- layout ----------------------------------------------------------------------------------------
def queue_heading() -> list[Any]:
    """The heading and the filters of the queue (the time range above applies too)."""
    return [
        html.H2("Alert queue (click a row for its detail)", style={"fontSize": "18px"}),
        _queue_filters(),
    ]


def _queue_filters() -> html.Div:
    type_options = [{"label": "All types", "value": ANY}] + [
        {"label": FRAUD_TYPE_NAMES[c], "value": c} for c in FRAUD_TYPES
    ]
    return html.Div(
        [
            html.Label("Type:", htmlFor=QUEUE_TYPE_ID),
            dcc.Dropdown(
                id=QUEUE_TYPE_ID,
                options=type_options,
                value=ANY,
                clearable=False,
                style={"width": "240px"},
            ),
            html.Label("Decision:", htmlFor=QUEUE_DECISION_ID, style={"marginLeft": "12px"}),
            dcc.RadioItems(
                id=QUEUE_DECISION_ID,
                options=[{"label": d if d != ANY else "any", "value": d} for d in (ANY, "review", "block")],
                value=ANY,
                inline=True,
                inputStyle={"marginRight": "4px"},
                labelStyle={"marginRight": "10px"},
            ),
            html.Label("Min score:", htmlFor=QUEUE_MIN_SCORE_ID, style={"marginLeft": "12px"}),
            dcc.Input(
                id=QUEUE_MIN_SCORE_ID,
                type="number",
                min=0,
                max=1,
                step=0.05,
                placeholder="0",
                debounce=True,
                style={"width": "70px"},
            ),
            html.Label("Order:", htmlFor=QUEUE_ORDER_ID, style={"marginLeft": "12px"}),
            dcc.RadioItems(
                id=QUEUE_ORDER_ID,
                options=[{"label": label, "value": order} for order, label in ORDER_LABELS.items()],
                value=DEFAULT_ORDER,
                inline=True,
                inputStyle={"marginRight": "4px"},
                labelStyle={"marginRight": "10px"},
            ),
            html.Label("Per page:", htmlFor=QUEUE_PAGE_SIZE_ID, style={"marginLeft": "12px"}),
            dcc.Dropdown(
                id=QUEUE_PAGE_SIZE_ID,
                options=[{"label": str(n), "value": n} for n in PAGE_SIZES],
                value=DEFAULT_PAGE_SIZE,
                clearable=False,
                style={"width": "90px"},
            ),
        ],
        style={
            "display": "flex",
            "alignItems": "center",
            "flexWrap": "wrap",
            "gap": "6px",
            "margin": "8px 0",
        },
    )


def queue_table() -> html.Div:
    """The table (filled by the callbacks) and the pager below it."""
    return html.Div(
        [
            html.Table(id=ALERT_QUEUE_ID, style={"borderCollapse": "collapse", "fontSize": "13px"}),
            _queue_pager(),
        ],
        style={"flex": "3 1 600px", "maxHeight": "640px", "overflow": "auto"},
    )


def _queue_pager() -> html.Div:
    back, forward = PAGER_LABELS[DEFAULT_ORDER]
    return html.Div(
        [
            html.Button(back, id=QUEUE_PREV_ID, disabled=True, style=BUTTON_STYLE),
            html.Span("–", id=QUEUE_PAGE_INFO_ID, style={"margin": "0 10px", "fontSize": "13px"}),
            html.Button(forward, id=QUEUE_NEXT_ID, disabled=True, style=BUTTON_STYLE),
        ],
        style={"display": "flex", "alignItems": "center", "marginTop": "8px"},
    )


# --- data to components ------------------------------------------------------------------------------
def alert_cells(alert: Mapping[str, Any], verdict: Verdict | None = None) -> list[str]:
    """The table cells of one alert, in ``ALERT_COLUMNS`` order."""
    score = alert.get("score")
    reasons = alert.get("reasons")
    return [
        str(alert.get("transaction_id", "")),
        format_time(alert.get("event_time")),
        fraud_type_name(alert.get("fraud_type")),
        str(alert.get("decision", "")),
        f"{score:.2f}" if isinstance(score, int | float) and not isinstance(score, bool) else "",
        format_amount(alert.get("amount"), alert.get("currency", "")),
        shorten_token(alert.get("card_token")),
        "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else "",
        verdict_short(verdict),
    ]


def _row_color(alert: Mapping[str, Any], verdict: Verdict | None) -> str:
    if verdict is not None:
        return "#eeeeee" if not verdict.is_fraud else "#f5d5d0"
    return "#fdecea" if alert.get("decision") == "block" else "#fff8e1"


def _row_class(alert: Mapping[str, Any], verdict: Verdict | None) -> str:
    if verdict is not None:
        return "alert-row verdict-fraud" if verdict.is_fraud else "alert-row verdict-legitimate"
    return "alert-row decision-block" if alert.get("decision") == "block" else "alert-row decision-review"


def alert_table(
    alerts: Sequence[Mapping[str, Any]],
    verdicts: Mapping[str, Verdict] | None = None,
    empty_text: str = "No alerts yet.",
) -> list[html.Thead | html.Tbody]:
    """Header and rows of the alert queue (children of the ``alert-queue`` table).

    Each row is clickable: its id is ``{"type": ALERT_ROW_TYPE, "index": transaction id}``.
    """
    verdicts = verdicts or {}
    header = html.Thead(html.Tr([html.Th(c, style=CELL_STYLE) for c in ALERT_COLUMNS]))
    if not alerts:
        empty = html.Td(empty_text, colSpan=len(ALERT_COLUMNS), style=CELL_STYLE)
        return [header, html.Tbody([html.Tr([empty])])]
    rows = []
    for alert in alerts:
        tx = str(alert.get("transaction_id", ""))
        verdict = verdicts.get(tx)
        cells = [html.Td(text, style=CELL_STYLE) for text in alert_cells(alert, verdict)]
        rows.append(
            html.Tr(
                cells,
                id={"type": ALERT_ROW_TYPE, "index": tx},
                className=_row_class(alert, verdict),
                n_clicks=0,
                title="Open the detail of this alert",
                style={"backgroundColor": _row_color(alert, verdict), "cursor": "pointer"},
            )
        )
    return [header, html.Tbody(rows)]


def alert_options(alerts: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Options of the alert chooser: the visible alerts, labelled 'tx · type · decision score'."""
    options = []
    for alert in alerts:
        tx = str(alert.get("transaction_id", ""))
        score = alert.get("score")
        score_text = f" {score:.2f}" if isinstance(score, int | float) and not isinstance(score, bool) else ""
        label = f"{tx} · {fraud_type_name(alert.get('fraud_type'))} · {alert.get('decision', '')}{score_text}"
        options.append({"label": label, "value": tx})
    return options


# --- callback bodies -----------------------------------------------------------------------------------
def queue_key(state: MonitorState) -> str:
    """Changes whenever an alert or a verdict arrives."""
    return f"{state.alerts.version}/{state.verdicts.version}"


def _verdicts_of(state: MonitorState, alerts: list[Mapping[str, Any]]) -> dict[str, Verdict]:
    verdicts = {}
    for alert in alerts:
        tx = str(alert.get("transaction_id", ""))
        verdict = state.verdicts.get(tx)
        if verdict is not None:
            verdicts[tx] = verdict
    return verdicts


class QueueRequest(NamedTuple):
    """What the queue's controls ask for (raw values from the page)."""

    fraud_type: Any = ANY
    decision: Any = ANY
    min_score: Any = None
    page_size: Any = DEFAULT_PAGE_SIZE
    page: Any = 0
    """0 for the first page; past the last page, the last page is shown."""
    order: Any = DEFAULT_ORDER
    """"newest" or "score" (highest score first)."""


class QueuePage(NamedTuple):
    """Outputs of the paginated queue."""

    children: list[html.Thead | html.Tbody]
    options: list[dict[str, str]]
    key: str
    page: int
    """The page shown (0 = the first), ``QueueRequest.page`` kept within the pages there are."""
    pages: int
    page_info: str
    newer_disabled: bool
    older_disabled: bool
    pager_labels: tuple[str, str] = PAGER_LABELS[DEFAULT_ORDER]
    """The texts of the back and forward buttons (they name the order)."""


def turn_page(triggered: set[Any], page: Any, pages: Any) -> int:
    """The queue's page after the controls in ``triggered`` (component ids) changed.

    'Newer'/'Older' (or 'Higher scores'/'Lower scores') step back/forward within ``pages``; a changed
    filter, order, page size or range goes back to the first page.
    """
    page = page if isinstance(page, int) and not isinstance(page, bool) and page >= 0 else 0
    last = pages - 1 if isinstance(pages, int) and not isinstance(pages, bool) and pages >= 1 else page
    prev, older = QUEUE_PREV_ID in triggered, QUEUE_NEXT_ID in triggered
    if triggered - {QUEUE_PREV_ID, QUEUE_NEXT_ID}:
        return 0
    if older and not prev:
        return min(page + 1, last)
    if prev and not older:
        return max(0, min(page, last) - 1)
    return page


def queue_filter(request: QueueRequest, within: TimeRange = EVERYTHING) -> AlertFilter:
    """The ``AlertFilter`` of the queue's controls; values the page cannot send are ignored (an unknown
    order is newest first)."""
    fraud_type = request.fraud_type if request.fraud_type in FRAUD_TYPE_CODES.values() else None
    decision = request.decision if request.decision in FLAGGED_DECISIONS else None
    score = request.min_score
    min_score = (
        float(score) if isinstance(score, int | float) and not isinstance(score, bool) and score > 0 else None
    )
    order: AlertOrder = "score" if request.order == "score" else "newest"
    return AlertFilter(
        fraud_type=fraud_type, decision=decision, min_score=min_score, within=within, order=order
    )


def update_queue_page(
    state: MonitorState, request: QueueRequest, rendered: Any, range_data: Any = None
) -> QueuePage:
    """One page of the filtered queue in the chosen order, with the pager's text and buttons.

    Raises PreventUpdate when no alert, verdict, filter, order, page or range changed since ``rendered``.
    """
    size = request.page_size if request.page_size in PAGE_SIZES else DEFAULT_PAGE_SIZE
    page = request.page if isinstance(request.page, int) and request.page >= 0 else 0
    rng, range_key = view_range(state, range_data)
    alert_filter = queue_filter(request, rng)
    total = state.alerts.query(alert_filter, limit=0).total
    pages = max(1, -(-total // size))
    page = min(max(page, 0), pages - 1)
    key = f"{queue_key(state)}|{alert_filter.fraud_type}|{alert_filter.decision}|{alert_filter.min_score}"
    key += f"|{alert_filter.order}|{range_key}|{page}|{size}"
    if key == rendered:
        raise PreventUpdate
    alerts = state.alerts.query(alert_filter, offset=page * size, limit=size).alerts
    if total:
        first = page * size + 1
        info = f"{first}–{first + len(alerts) - 1} of {total:,} alerts · page {page + 1} of {pages}"
    else:
        info = "0 alerts"
    empty = "No alerts yet." if len(state.alerts) == 0 else "No alert matches the filters."
    return QueuePage(
        alert_table(alerts, _verdicts_of(state, alerts), empty_text=empty),
        alert_options(alerts),
        key,
        page,
        pages,
        info,
        page == 0,
        page >= pages - 1,
        PAGER_LABELS[alert_filter.order],
    )


def clicked_alert(triggered_id: Any, clicks: Any) -> str:
    """The transaction id of a clicked queue row.

    Raises PreventUpdate when the callback fired for another reason (rows re-rendered, no click).
    """
    if not isinstance(triggered_id, Mapping) or not clicks:
        raise PreventUpdate
    index = triggered_id.get("index")
    if not isinstance(index, str) or not index:
        raise PreventUpdate
    return index


def register_alert_queue_callbacks(app: Dash, state: MonitorState) -> None:
    """Wire the filters, the pager and the rows to ``state``'s alerts and verdicts."""

    @app.callback(
        Output(QUEUE_PAGE_ID, "data"),
        Input(QUEUE_PREV_ID, "n_clicks"),
        Input(QUEUE_NEXT_ID, "n_clicks"),
        Input(VIEW_RANGE_ID, "data"),
        Input(QUEUE_TYPE_ID, "value"),
        Input(QUEUE_DECISION_ID, "value"),
        Input(QUEUE_MIN_SCORE_ID, "value"),
        Input(QUEUE_ORDER_ID, "value"),
        Input(QUEUE_PAGE_SIZE_ID, "value"),
        State(QUEUE_PAGE_ID, "data"),
        State(QUEUE_PAGES_ID, "data"),
        prevent_initial_call=True,
    )
    def _turn_page(*args: Any) -> int:
        page, pages = args[-2:]
        return turn_page(set(ctx.triggered_prop_ids.values()), page, pages)

    # The page is an input here, never a state: a refresh cannot answer with the page it had before.
    @app.callback(
        Output(ALERT_QUEUE_ID, "children"),
        Output(ALERT_SELECT_ID, "options"),
        Output(ALERTS_RENDERED_ID, "data"),
        Output(QUEUE_PAGES_ID, "data"),
        Output(QUEUE_PAGE_INFO_ID, "children"),
        Output(QUEUE_PREV_ID, "disabled"),
        Output(QUEUE_NEXT_ID, "disabled"),
        Output(QUEUE_PREV_ID, "children"),
        Output(QUEUE_NEXT_ID, "children"),
        Input(REFRESH_ID, "n_intervals"),
        Input(VIEW_RANGE_ID, "data"),
        Input(QUEUE_TYPE_ID, "value"),
        Input(QUEUE_DECISION_ID, "value"),
        Input(QUEUE_MIN_SCORE_ID, "value"),
        Input(QUEUE_ORDER_ID, "value"),
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
        order: Any,
        page_size: Any,
        page: Any,
        rendered: Any,
    ) -> tuple[Any, ...]:
        request = QueueRequest(fraud_type, decision, min_score, page_size, page, order)
        view = update_queue_page(state, request, rendered, range_data)
        return (
            view.children,
            view.options,
            view.key,
            view.pages,
            view.page_info,
            view.newer_disabled,
            view.older_disabled,
            *view.pager_labels,
        )

    @app.callback(
        Output(ALERT_SELECT_ID, "value"),
        Input({"type": ALERT_ROW_TYPE, "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def _row_clicked(_clicks: list[int | None]) -> str:
        triggered = ctx.triggered
        if len(triggered) != 1:  # rows re-rendered, not a click
            raise PreventUpdate
        return clicked_alert(ctx.triggered_id, triggered[0].get("value"))
