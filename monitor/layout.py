"""The page: component ids in one place, the layout, and pure data-to-component helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dash import dcc, html

from monitor.aggregation import AtRisk, RateSeries, RiskFigures, Verdict
from monitor.figures import fraud_rate_figure
from monitor.formatting import (
    format_amount,
    format_amounts,
    format_time,
    fraud_type_name,
    shorten_token,
    verdict_short,
    verdict_text,
)
from monitor.lists_view import lists_section
from monitor.timerange import DEFAULT_RANGE, RANGE_LABELS
from pipeline.config import FRAUD_TYPE_NAMES, FRAUD_TYPES, Settings

__all__ = [  # the formatting helpers are re-exported for the callers that import them from here
    "format_amount",
    "format_amounts",
    "format_time",
    "shorten_token",
]

TITLE = "Fraud Detection Dashboard"
FRAUD_TYPE_LABEL = "Select fraud type:"

GRAPH_ID = "fraud-graph"
FRAUD_TYPE_ID = "fraud-type"
REFRESH_ID = "refresh"
ALERT_QUEUE_ID = "alert-queue"
TPS_ID = "headline-tps"
OUTCOMES_ID = "headline-outcomes"
ALERT_RATE_ID = "headline-alert-rate"
BLOCKED_ID = "headline-blocked"
STALENESS_ID = "headline-staleness"
GRAPH_RENDERED_ID = "graph-rendered"
ALERTS_RENDERED_ID = "alerts-rendered"
URL_ID = "url"
USER_INFO_ID = "user-info"
EXPORT_EXCEL_ID = "export-excel"
EXPORT_PDF_ID = "export-pdf"
DOWNLOAD_ID = "report-download"
ALERT_SELECT_ID = "alert-select"
ALERT_DETAIL_ID = "alert-detail"
DETAIL_RENDERED_ID = "detail-rendered"
VERDICT_TYPE_ID = "verdict-fraud-type"
VERDICT_COMMENT_ID = "verdict-comment"
CONFIRM_ID = "confirm-fraud"
LEGITIMATE_ID = "mark-legitimate"
VERDICT_STATUS_ID = "verdict-status"
VERDICT_NOTE_ID = "verdict-note"
PAGE_ID = "page"
TIME_RANGE_ID = "time-range"
RANGE_START_ID = "range-start"
RANGE_END_ID = "range-end"
RANGE_ERROR_ID = "range-error"
VIEW_RANGE_ID = "view-range"
AT_RISK_ID = "at-risk"
RISK_RENDERED_ID = "risk-rendered"
QUEUE_TYPE_ID = "queue-type"
QUEUE_DECISION_ID = "queue-decision"
QUEUE_MIN_SCORE_ID = "queue-min-score"
QUEUE_PAGE_SIZE_ID = "queue-page-size"
QUEUE_PREV_ID = "queue-prev"
QUEUE_NEXT_ID = "queue-next"
QUEUE_PAGE_ID = "queue-page"
QUEUE_PAGES_ID = "queue-pages"
QUEUE_PAGE_INFO_ID = "queue-page-info"
THEME_ID = "theme"
THEME_TOGGLE_ID = "theme-toggle"
ALERT_ROW_TYPE = "alert-row"
"""Pattern-matching id type of the queue's rows: {"type": "alert-row", "index": transaction id}."""

REFRESH_MS = 2000
DEFAULT_FRAUD_TYPE_NAME = FRAUD_TYPE_NAMES["unauthorized_transactions"]
FRAUD_TYPE_CODES: dict[str, str] = {name: code for code, name in FRAUD_TYPE_NAMES.items()}
"""Display name (the dropdown's value) -> fraud type code."""
ALL_TYPES_NAME = "All types"
"""The fraud-type choice that overlays the three types on one chart."""
ANY = "any"
"""The queue filters' value for "no condition"."""
PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25

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

_CARD_STYLE = {
    "border": "1px solid #ddd",
    "borderRadius": "6px",
    "padding": "8px 14px",
    "minWidth": "150px",
}
_CELL_STYLE = {"borderBottom": "1px solid #eee", "padding": "4px 8px", "textAlign": "left"}
_BUTTON_STYLE = {"padding": "6px 14px", "marginRight": "8px", "border": "0", "borderRadius": "4px"}
STALE_STYLE: dict[str, str] = {"color": "red", "fontWeight": "bold"}
FRESH_STYLE: dict[str, str] = {"color": "inherit"}
OK_STYLE: dict[str, str] = {"color": "#1e8449", "fontWeight": "bold", "marginTop": "8px"}
ERROR_STYLE: dict[str, str] = {"color": "#c0392b", "fontWeight": "bold", "marginTop": "8px"}


def _headline_card(label: str, value_id: str) -> html.Div:
    return html.Div(
        [html.Div(label, style={"fontSize": "12px", "color": "#666"}), html.Div("–", id=value_id)],
        style=_CARD_STYLE,
    )


def _detail_panel() -> html.Div:
    return html.Div(
        [
            html.H2("Alert detail", style={"fontSize": "18px", "marginTop": "0"}),
            html.Label("Alert:", htmlFor=ALERT_SELECT_ID),
            dcc.Dropdown(
                id=ALERT_SELECT_ID,
                options=[],
                placeholder="Click a row of the queue or choose an alert",
                clearable=True,
            ),
            html.Div(
                html.P("No alert selected.", style={"color": "#888"}),
                id=ALERT_DETAIL_ID,
                style={"marginTop": "10px"},
            ),
            html.Div(
                [
                    html.Label("Fraud type of a confirmed fraud:", htmlFor=VERDICT_TYPE_ID),
                    dcc.RadioItems(
                        id=VERDICT_TYPE_ID,
                        options=[
                            {"label": FRAUD_TYPE_NAMES[c], "value": FRAUD_TYPE_NAMES[c]} for c in FRAUD_TYPES
                        ],
                        value=DEFAULT_FRAUD_TYPE_NAME,
                        labelStyle={"display": "block"},
                    ),
                    dcc.Input(
                        id=VERDICT_COMMENT_ID,
                        type="text",
                        placeholder="Comment (optional)",
                        maxLength=2000,
                        style={"width": "100%", "margin": "8px 0", "boxSizing": "border-box"},
                    ),
                    html.Button(
                        "Confirm fraud",
                        id=CONFIRM_ID,
                        disabled=True,
                        style={**_BUTTON_STYLE, "background": "#c0392b", "color": "#fff"},
                    ),
                    html.Button(
                        "Mark legitimate",
                        id=LEGITIMATE_ID,
                        disabled=True,
                        style={**_BUTTON_STYLE, "background": "#1e8449", "color": "#fff"},
                    ),
                    html.Div(id=VERDICT_STATUS_ID, role="status"),
                    html.Div(
                        id=VERDICT_NOTE_ID, style={"fontSize": "12px", "color": "#666", "marginTop": "6px"}
                    ),
                ],
                style={"borderTop": "1px solid #ddd", "marginTop": "12px", "paddingTop": "8px"},
            ),
        ],
        style={
            "flex": "2 1 380px",
            "border": "1px solid #ddd",
            "borderRadius": "6px",
            "padding": "12px",
            "alignSelf": "flex-start",
        },
    )


def build_layout(settings: Settings) -> html.Div:
    """The whole page; the callbacks fill it in on every ``refresh`` tick."""
    default_code = FRAUD_TYPE_CODES[DEFAULT_FRAUD_TYPE_NAME]
    return html.Div(
        [
            dcc.Location(id=URL_ID, refresh=False),
            html.Div(
                [
                    html.Span(id=USER_INFO_ID, style={"marginRight": "16px", "fontSize": "13px"}),
                    html.Button("Export Excel", id=EXPORT_EXCEL_ID, style=_BUTTON_STYLE),
                    html.Button("Export PDF", id=EXPORT_PDF_ID, style=_BUTTON_STYLE),
                    html.Button("Dark mode", id=THEME_TOGGLE_ID, style=_BUTTON_STYLE),
                    dcc.Download(id=DOWNLOAD_ID),
                ],
                style={"float": "right", "display": "flex", "alignItems": "center"},
            ),
            html.H1(TITLE),
            html.Div(
                [
                    _headline_card("Transactions/s (last minute)", TPS_ID),
                    _headline_card("Decisions by outcome", OUTCOMES_ID),
                    _headline_card("Alert rate", ALERT_RATE_ID),
                    _headline_card("Blocked amount", BLOCKED_ID),
                    _headline_card("Since last decision", STALENESS_ID),
                ],
                style={"display": "flex", "gap": "12px", "flexWrap": "wrap", "marginBottom": "16px"},
            ),
            html.Label(FRAUD_TYPE_LABEL, htmlFor=FRAUD_TYPE_ID),
            dcc.Dropdown(
                id=FRAUD_TYPE_ID,
                options=[{"label": FRAUD_TYPE_NAMES[c], "value": FRAUD_TYPE_NAMES[c]} for c in FRAUD_TYPES]
                + [{"label": ALL_TYPES_NAME, "value": ALL_TYPES_NAME}],
                value=DEFAULT_FRAUD_TYPE_NAME,
                clearable=False,
                style={"maxWidth": "360px"},
            ),
            _range_selector(),
            dcc.Graph(id=GRAPH_ID, figure=fraud_rate_figure(RateSeries([], []), default_code)),
            html.H2("At risk in the time range", style={"fontSize": "18px"}),
            html.Div(id=AT_RISK_ID),
            html.H2("Alert queue (newest first; click a row for its detail)", style={"fontSize": "18px"}),
            _queue_filters(),
            html.Div(
                [
                    html.Div(
                        [
                            html.Table(
                                id=ALERT_QUEUE_ID, style={"borderCollapse": "collapse", "fontSize": "13px"}
                            ),
                            _queue_pager(),
                        ],
                        style={"flex": "3 1 600px", "maxHeight": "640px", "overflow": "auto"},
                    ),
                    _detail_panel(),
                ],
                style={"display": "flex", "gap": "16px", "flexWrap": "wrap"},
            ),
            html.P(
                f"Reading topics {settings.topic_decisions!r}, {settings.topic_alerts!r} and "
                f"{settings.topic_labels!r} from {settings.bootstrap_servers}; "
                f"history {settings.monitor_history_minutes} min. Verdicts go to {settings.topic_labels!r}.",
                style={"fontSize": "11px", "color": "#888"},
            ),
            lists_section(),
            dcc.Interval(id=REFRESH_ID, interval=REFRESH_MS),
            dcc.Store(id=GRAPH_RENDERED_ID),
            dcc.Store(id=ALERTS_RENDERED_ID),
            dcc.Store(id=DETAIL_RENDERED_ID),
            dcc.Store(id=VIEW_RANGE_ID, data={"range": DEFAULT_RANGE, "from": "", "to": ""}),
            dcc.Store(id=RISK_RENDERED_ID),
            dcc.Store(id=QUEUE_PAGE_ID, data=0),
            dcc.Store(id=QUEUE_PAGES_ID, data=1),
            dcc.Store(id=THEME_ID, storage_type="local"),
        ],
        id=PAGE_ID,
        className="theme-light",
        style={"fontFamily": "sans-serif", "padding": "16px", "minHeight": "100vh"},
    )


def _range_selector() -> html.Div:
    """Time range: all history, the last 15 min / 1 h / 24 h, or custom UTC bounds."""
    text_input = {"width": "215px", "marginRight": "8px"}
    return html.Div(
        [
            html.Label("Time range:", htmlFor=TIME_RANGE_ID, style={"marginRight": "8px"}),
            dcc.RadioItems(
                id=TIME_RANGE_ID,
                options=[{"label": label, "value": value} for value, label in RANGE_LABELS.items()],
                value=DEFAULT_RANGE,
                inline=True,
                inputStyle={"marginRight": "4px"},
                labelStyle={"marginRight": "12px"},
            ),
            dcc.Input(
                id=RANGE_START_ID,
                type="text",
                placeholder="from YYYY-MM-DD HH:MM",
                debounce=True,
                style=text_input,
            ),
            dcc.Input(
                id=RANGE_END_ID,
                type="text",
                placeholder="to YYYY-MM-DD HH:MM",
                debounce=True,
                style=text_input,
            ),
            html.Span(id=RANGE_ERROR_ID, role="alert", style=ERROR_STYLE | {"marginTop": "0"}),
        ],
        style={
            "display": "flex",
            "alignItems": "center",
            "flexWrap": "wrap",
            "gap": "4px",
            "margin": "10px 0",
        },
    )


def _queue_filters() -> html.Div:
    """Filters of the alert queue (the time range above applies too)."""
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


def _queue_pager() -> html.Div:
    return html.Div(
        [
            html.Button("‹ Newer", id=QUEUE_PREV_ID, disabled=True, style=_BUTTON_STYLE),
            html.Span("–", id=QUEUE_PAGE_INFO_ID, style={"margin": "0 10px", "fontSize": "13px"}),
            html.Button("Older ›", id=QUEUE_NEXT_ID, disabled=True, style=_BUTTON_STYLE),
        ],
        style={"display": "flex", "alignItems": "center", "marginTop": "8px"},
    )


# --- pure data-to-component helpers --------------------------------------------------------------
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
    header = html.Thead(html.Tr([html.Th(c, style=_CELL_STYLE) for c in ALERT_COLUMNS]))
    if not alerts:
        empty = html.Td(empty_text, colSpan=len(ALERT_COLUMNS), style=_CELL_STYLE)
        return [header, html.Tbody([html.Tr([empty])])]
    rows = []
    for alert in alerts:
        tx = str(alert.get("transaction_id", ""))
        verdict = verdicts.get(tx)
        cells = [html.Td(text, style=_CELL_STYLE) for text in alert_cells(alert, verdict)]
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


def _field_table(rows: Sequence[tuple[str, str]], table_id: str | None = None) -> html.Table:
    body = [
        html.Tr([html.Th(name, style={**_CELL_STYLE, "color": "#555"}), html.Td(value, style=_CELL_STYLE)])
        for name, value in rows
    ]
    props: dict[str, Any] = {"id": table_id} if table_id else {}
    return html.Table(html.Tbody(body), style={"borderCollapse": "collapse", "fontSize": "13px"}, **props)


def _number_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def transaction_fields(alert: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, text) of the transaction an alert is about; the card only as a shortened token."""
    score = alert.get("score")
    rule_hits = alert.get("rule_hits")
    return [
        ("Transaction", str(alert.get("transaction_id", ""))),
        ("Event time (UTC)", format_time(alert.get("event_time"))),
        ("Decided at (UTC)", format_time(alert.get("decided_at"))),
        ("Decision", str(alert.get("decision", ""))),
        ("Score", f"{score:.2f}" if isinstance(score, int | float) and not isinstance(score, bool) else ""),
        ("Fraud type", fraud_type_name(alert.get("fraud_type"))),
        ("Amount", format_amount(alert.get("amount"), alert.get("currency", ""))),
        ("Card", shorten_token(alert.get("card_token"))),
        ("Customer", str(alert.get("customer_id") or "")),
        ("Merchant", str(alert.get("merchant_id") or "")),
        ("Terminal", str(alert.get("terminal_id") or "")),
        ("Device", str(alert.get("device_id") or "–")),
        ("Channel", str(alert.get("channel") or "")),
        ("Country", str(alert.get("country") or "")),
        (
            "Rules fired",
            ", ".join(str(r) for r in rule_hits) if isinstance(rule_hits, list) and rule_hits else "–",
        ),
        ("Model version", str(alert.get("model_version") or "")),
    ]


def alert_detail(
    alert: Mapping[str, Any] | None,
    transaction_id: str,
    verdict: Verdict | None,
    card_alerts: Sequence[Mapping[str, Any]],
    verdicts: Mapping[str, Verdict],
) -> list[Any]:
    """Children of the detail panel: verdict, transaction fields, reasons, features, the card's alerts."""
    if alert is None:
        return [html.P(f"Alert {transaction_id} is no longer kept by the monitor.", style={"color": "#888"})]
    reasons = alert.get("reasons")
    features = alert.get("features")
    feature_rows = (
        [(name, _number_text(value)) for name, value in sorted(features.items())]
        if isinstance(features, Mapping)
        else []
    )
    verdict_style = {"fontWeight": "bold", "color": "#c0392b" if verdict and verdict.is_fraud else "#1e8449"}
    children: list[Any] = [
        html.H3(f"Alert {transaction_id}", style={"fontSize": "16px", "margin": "4px 0"}),
        html.P(
            verdict_text(verdict), id="alert-verdict", style=verdict_style if verdict else {"color": "#666"}
        ),
        _field_table(transaction_fields(alert), "alert-fields"),
        html.H4("Reasons", style={"margin": "10px 0 4px"}),
        html.Ul([html.Li(str(r)) for r in reasons] if isinstance(reasons, list) else [], id="alert-reasons"),
        html.H4("Features scored", style={"margin": "10px 0 4px"}),
        _field_table(feature_rows, "alert-features") if feature_rows else html.P("None."),
        html.H4("Other recent alerts of this card", style={"margin": "10px 0 4px"}),
    ]
    if card_alerts:
        header = html.Thead(
            html.Tr(
                [
                    html.Th(c, style=_CELL_STYLE)
                    for c in ("Transaction", "Event time", "Type", "Score", "Verdict")
                ]
            )
        )
        rows = []
        for other in card_alerts:
            cells = alert_cells(other, verdicts.get(str(other.get("transaction_id", ""))))
            rows.append(html.Tr([html.Td(cells[i], style=_CELL_STYLE) for i in (0, 1, 2, 4, 8)]))
        children.append(
            html.Table(
                [header, html.Tbody(rows)],
                id="card-alerts",
                style={"borderCollapse": "collapse", "fontSize": "12px"},
            )
        )
    else:
        children.append(html.P("None in the queue.", id="card-alerts", style={"color": "#888"}))
    return children


def user_info(name: str | None, role: str | None) -> list[Any]:
    """'Signed in as alice (analyst) · Log out'."""
    if name is None:
        return []
    return [f"Signed in as {name} ({role}) · ", html.A("Log out", href="/logout", id="logout-link")]


RISK_COLUMNS = ("Type", "Alerted", "Amount alerted", "Blocked", "Amount blocked")


def risk_cells(name: str, figures: RiskFigures) -> list[str]:
    """One row of the at-risk table, in ``RISK_COLUMNS`` order."""
    return [
        name,
        f"{figures.alerted:,}",
        format_amounts(figures.alerted_amount),
        f"{figures.blocked:,}",
        format_amounts(figures.blocked_amount),
    ]


def risk_table(risk: AtRisk) -> html.Table:
    """Counts and amounts of alerted (review or block) and blocked transactions by type, and in all."""
    rows = [risk_cells(FRAUD_TYPE_NAMES[c], risk.by_type[c]) for c in FRAUD_TYPES if c in risk.by_type]
    if None in risk.by_type:
        rows.append(risk_cells("No type", risk.by_type[None]))
    rows.append(risk_cells("All types", risk.total))
    header = html.Thead(html.Tr([html.Th(c, style=_CELL_STYLE) for c in RISK_COLUMNS]))
    body = html.Tbody(
        [
            html.Tr(
                [html.Td(text, style=_CELL_STYLE) for text in cells],
                style={"fontWeight": "bold"} if i == len(rows) - 1 else {},
            )
            for i, cells in enumerate(rows)
        ]
    )
    return html.Table(
        [header, body], id="at-risk-table", style={"borderCollapse": "collapse", "fontSize": "13px"}
    )
