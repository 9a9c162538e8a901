"""The page: component ids in one place, the layout, and pure data-to-component helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

from dash import dcc, html

from monitor.aggregation import InvalidRecordError, RateSeries, parse_timestamp
from monitor.figures import fraud_rate_figure
from pipeline.config import FRAUD_TYPE_NAMES, FRAUD_TYPES, Settings

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

REFRESH_MS = 2000
DEFAULT_FRAUD_TYPE_NAME = FRAUD_TYPE_NAMES["unauthorized_transactions"]
FRAUD_TYPE_CODES: dict[str, str] = {name: code for code, name in FRAUD_TYPE_NAMES.items()}
"""Display name (the dropdown's value) -> fraud type code."""

ALERT_COLUMNS = ("Transaction", "Event time (UTC)", "Type", "Decision", "Score", "Amount", "Card", "Reasons")

_CARD_STYLE = {
    "border": "1px solid #ddd",
    "borderRadius": "6px",
    "padding": "8px 14px",
    "minWidth": "150px",
}
_CELL_STYLE = {"borderBottom": "1px solid #eee", "padding": "4px 8px", "textAlign": "left"}
STALE_STYLE: dict[str, str] = {"color": "red", "fontWeight": "bold"}
FRESH_STYLE: dict[str, str] = {"color": "inherit"}


def _headline_card(label: str, value_id: str) -> html.Div:
    return html.Div(
        [html.Div(label, style={"fontSize": "12px", "color": "#666"}), html.Div("–", id=value_id)],
        style=_CARD_STYLE,
    )


def build_layout(settings: Settings) -> html.Div:
    """The whole page; the callbacks fill it in on every ``refresh`` tick."""
    default_code = FRAUD_TYPE_CODES[DEFAULT_FRAUD_TYPE_NAME]
    return html.Div(
        [
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
                options=[{"label": FRAUD_TYPE_NAMES[c], "value": FRAUD_TYPE_NAMES[c]} for c in FRAUD_TYPES],
                value=DEFAULT_FRAUD_TYPE_NAME,
                clearable=False,
                style={"maxWidth": "360px"},
            ),
            dcc.Graph(id=GRAPH_ID, figure=fraud_rate_figure(RateSeries([], []), default_code)),
            html.H2("Alert queue (newest first)", style={"fontSize": "18px"}),
            html.Table(id=ALERT_QUEUE_ID, style={"borderCollapse": "collapse", "fontSize": "13px"}),
            html.P(
                f"Reading topics {settings.topic_decisions!r} and {settings.topic_alerts!r} "
                f"from {settings.bootstrap_servers}; history {settings.monitor_history_minutes} min.",
                style={"fontSize": "11px", "color": "#888"},
            ),
            dcc.Interval(id=REFRESH_ID, interval=REFRESH_MS),
            dcc.Store(id=GRAPH_RENDERED_ID),
            dcc.Store(id=ALERTS_RENDERED_ID),
        ],
        style={"fontFamily": "sans-serif", "margin": "16px"},
    )


# --- pure formatting helpers ---------------------------------------------------------------------
def shorten_token(token: Any) -> str:
    """'tok_4f9a2c1b7d3e' -> 'tok_4f9a…3e': enough to compare cards, too little to copy one."""
    if not isinstance(token, str):
        return ""
    head, body = ("tok_", token[4:]) if token.startswith("tok_") else ("", token)
    if len(body) <= 6:
        return token
    return f"{head}{body[:4]}…{body[-2:]}"


def format_time(value: Any) -> str:
    """An ISO-8601 timestamp as 'YYYY-MM-DD HH:MM:SS' in UTC ('' when unreadable)."""
    try:
        return parse_timestamp(value, "time").astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    except InvalidRecordError:
        return ""


def format_amount(amount: Any, currency: Any = "") -> str:
    """'1,234.50 EUR' ('' when the amount is not a number)."""
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return ""
    return f"{amount:,.2f} {currency if isinstance(currency, str) else ''}".strip()


def format_amounts(amounts: Mapping[str, float]) -> str:
    """Amounts per currency ('1,234.50 EUR · 9.00 USD'), '0' when empty."""
    return " · ".join(format_amount(a, c) for c, a in amounts.items()) or "0"


def alert_cells(alert: Mapping[str, Any]) -> list[str]:
    """The table cells of one alert, in ``ALERT_COLUMNS`` order."""
    score = alert.get("score")
    reasons = alert.get("reasons")
    fraud_type = alert.get("fraud_type")
    return [
        str(alert.get("transaction_id", "")),
        format_time(alert.get("event_time")),
        FRAUD_TYPE_NAMES.get(fraud_type, str(fraud_type or "")) if isinstance(fraud_type, str) else "",
        str(alert.get("decision", "")),
        f"{score:.2f}" if isinstance(score, int | float) and not isinstance(score, bool) else "",
        format_amount(alert.get("amount"), alert.get("currency", "")),
        shorten_token(alert.get("card_token")),
        "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else "",
    ]


def alert_table(alerts: Sequence[Mapping[str, Any]]) -> list[html.Thead | html.Tbody]:
    """Header and rows of the alert queue (children of the ``alert-queue`` table)."""
    header = html.Thead(html.Tr([html.Th(c, style=_CELL_STYLE) for c in ALERT_COLUMNS]))
    if not alerts:
        empty = html.Td("No alerts yet.", colSpan=len(ALERT_COLUMNS), style=_CELL_STYLE)
        return [header, html.Tbody([html.Tr([empty])])]
    rows = []
    for alert in alerts:
        color = "#fdecea" if alert.get("decision") == "block" else "#fff8e1"
        cells = [html.Td(text, style=_CELL_STYLE) for text in alert_cells(alert)]
        rows.append(html.Tr(cells, style={"backgroundColor": color}))
    return [header, html.Tbody(rows)]
