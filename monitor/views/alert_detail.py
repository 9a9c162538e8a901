"""The alert detail panel: the chosen alert's transaction, reasons, the factors of its score (a bar
chart, alerts v2), features, the card's other alerts, and the verdict buttons ("Confirm fraud",
"Mark legitimate") for analysts.

``give_verdict`` is the server-side path of a verdict: ``monitor.verdict_labels.build_label``
refuses anyone but an analyst, whatever the page shows, and the label is published before the
verdict is recorded in the state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from monitor.auth import current_user
from monitor.feedback import FeedbackError
from monitor.figures import explanation_figure
from monitor.formatting import format_amount, format_time, fraud_type_name, shorten_token, verdict_text
from monitor.state import MonitorState
from monitor.state.alerts import alert_factors
from monitor.state.verdicts import Verdict
from monitor.users import User
from monitor.verdict_labels import InvalidVerdictError, VerdictNotAllowedError, build_label
from monitor.views.alert_queue import ALERT_SELECT_ID, alert_cells, queue_key
from monitor.views.shared import (
    BUTTON_STYLE,
    CELL_STYLE,
    DEFAULT_FRAUD_TYPE_NAME,
    ERROR_STYLE,
    FRAUD_TYPE_CODES,
    OK_STYLE,
    REFRESH_ID,
)
from pipeline.config import FRAUD_TYPE_NAMES, FRAUD_TYPES

logger = logging.getLogger(__name__)

ALERT_DETAIL_ID = "alert-detail"
DETAIL_RENDERED_ID = "detail-rendered"
VERDICT_TYPE_ID = "verdict-fraud-type"
VERDICT_COMMENT_ID = "verdict-comment"
CONFIRM_ID = "confirm-fraud"
LEGITIMATE_ID = "mark-legitimate"
VERDICT_STATUS_ID = "verdict-status"
VERDICT_NOTE_ID = "verdict-note"
EXPLANATION_ID = "alert-explanation"

CARD_ALERTS = 10

Publish = Callable[[Mapping[str, Any]], None]
"""Publishes one label message (``LabelPublisher.publish``); raises FeedbackError on failure."""


# --- layout ----------------------------------------------------------------------------------------
def detail_panel() -> html.Div:
    """The panel: the alert chooser, the detail (filled by the callback), the verdict form."""
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
                        style={**BUTTON_STYLE, "background": "#c0392b", "color": "#fff"},
                    ),
                    html.Button(
                        "Mark legitimate",
                        id=LEGITIMATE_ID,
                        disabled=True,
                        style={**BUTTON_STYLE, "background": "#1e8449", "color": "#fff"},
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


# --- data to components ------------------------------------------------------------------------------
def _field_table(rows: Sequence[tuple[str, str]], table_id: str | None = None) -> html.Table:
    body = [
        html.Tr([html.Th(name, style={**CELL_STYLE, "color": "#555"}), html.Td(value, style=CELL_STYLE)])
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


def explanation_section(alert: Mapping[str, Any]) -> html.Div:
    """What pushed the score up: the factors of the alert's explanation as a bar chart, or why
    there is none."""
    factors = alert_factors(alert)
    heading = html.H4("Why the model scored it", style={"margin": "10px 0 4px"})
    if not factors:
        note = "No explanation: an alert v1, or the model had not learnt enough labels to score yet."
        return html.Div([heading, html.P(note, style={"color": "#888"})], id=EXPLANATION_ID)
    graph = dcc.Graph(
        figure=explanation_figure(factors),
        config={"displayModeBar": False, "responsive": True},
        style={"width": "100%"},
    )
    return html.Div([heading, graph], id=EXPLANATION_ID)


def alert_detail(
    alert: Mapping[str, Any] | None,
    transaction_id: str,
    verdict: Verdict | None,
    card_alerts: Sequence[Mapping[str, Any]],
    verdicts: Mapping[str, Verdict],
) -> list[Any]:
    """Children of the detail panel: verdict, transaction fields, reasons, the factors of the score,
    features, the card's alerts."""
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
        explanation_section(alert),
        html.H4("Features scored", style={"margin": "10px 0 4px"}),
        _field_table(feature_rows, "alert-features") if feature_rows else html.P("None."),
        html.H4("Other recent alerts of this card", style={"margin": "10px 0 4px"}),
    ]
    if card_alerts:
        header = html.Thead(
            html.Tr(
                [
                    html.Th(c, style=CELL_STYLE)
                    for c in ("Transaction", "Event time", "Type", "Score", "Verdict")
                ]
            )
        )
        rows = []
        for other in card_alerts:
            cells = alert_cells(other, verdicts.get(str(other.get("transaction_id", ""))))
            rows.append(html.Tr([html.Td(cells[i], style=CELL_STYLE) for i in (0, 1, 2, 4, 8)]))
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


# --- callback bodies -----------------------------------------------------------------------------------
class DetailView(NamedTuple):
    """Outputs of the detail panel, in the order the app wires them."""

    children: list[Any]
    confirm_disabled: bool
    legitimate_disabled: bool
    verdict_type: Any
    """The alert's own fraud type when another alert was chosen, else ``no_update``."""
    key: str


def update_detail(
    state: MonitorState,
    user: User | None,
    transaction_id: str | None,
    rendered: Any,
    selection_changed: bool,
    card_alerts: int = CARD_ALERTS,
) -> DetailView:
    """The chosen alert's detail; the verdict buttons are enabled for analysts only.

    Raises PreventUpdate when neither the choice, the alerts, the verdicts nor the user changed.
    """
    role = user.role if user is not None else "-"
    key = f"{transaction_id}@{queue_key(state)}/{role}"
    if key == rendered and not selection_changed:
        raise PreventUpdate
    may_judge = user is not None and user.can_give_verdicts
    if not transaction_id:
        empty = [html.P("No alert selected.", style={"color": "#888"})]
        return DetailView(empty, True, True, no_update, key)
    alert = state.alerts.get(transaction_id)
    verdict = state.verdicts.get(transaction_id)
    others = []
    if alert is not None and isinstance(alert.get("card_token"), str):
        others = state.alerts.for_card(alert["card_token"], exclude=transaction_id, limit=card_alerts)
    verdicts = {
        str(o.get("transaction_id")): v
        for o in others
        if (v := state.verdicts.get(str(o.get("transaction_id", "")))) is not None
    }
    children = alert_detail(alert, transaction_id, verdict, others, verdicts)
    disabled = not (may_judge and alert is not None)
    verdict_type = no_update
    if selection_changed and alert is not None and alert.get("fraud_type") in FRAUD_TYPE_CODES.values():
        verdict_type = fraud_type_name(alert.get("fraud_type"))
    return DetailView(children, disabled, disabled, verdict_type, key)


def verdict_note(user: User | None) -> str:
    """Why the verdict buttons are off, for viewers."""
    if user is not None and not user.can_give_verdicts:
        return f"You are logged in as a {user.role}: only analysts can give verdicts."
    return ""


class VerdictFeedback(NamedTuple):
    """What the analyst is told after a verdict button: the text and its style."""

    text: str
    style: dict[str, str]


Action = Literal["confirm", "legitimate"]


def give_verdict(
    state: MonitorState,
    publish: Publish,
    user: User | None,
    transaction_id: str | None,
    action: Action,
    fraud_type_name_chosen: str | None,
    comment: str | None = None,
    now: datetime | None = None,
) -> VerdictFeedback:
    """Publish ``user``'s verdict on one alert as a label and record it in ``state``.

    Refused (and logged) unless ``user`` is an analyst: this is the server-side check, whatever
    the page shows. A failed delivery is reported to the user, never swallowed.
    """
    if not transaction_id:
        return VerdictFeedback("Choose an alert first.", ERROR_STYLE)
    alert = state.alerts.get(transaction_id)
    if alert is None:
        return VerdictFeedback(f"Alert {transaction_id} is no longer kept by the monitor.", ERROR_STYLE)
    is_fraud = action == "confirm"
    fraud_type = FRAUD_TYPE_CODES.get(fraud_type_name_chosen or "") if is_fraud else None
    try:
        label = build_label(
            alert,
            is_fraud=is_fraud,
            fraud_type=fraud_type,
            user=user,
            now=now or datetime.now(UTC),
            comment=comment,
        )
    except VerdictNotAllowedError as exc:
        logger.warning("verdict on %s refused: %s", transaction_id, exc)
        return VerdictFeedback(f"Not allowed: {exc}.", ERROR_STYLE)
    except InvalidVerdictError as exc:
        return VerdictFeedback(f"Not sent: {exc}.", ERROR_STYLE)
    try:
        publish(label)
    except FeedbackError as exc:
        logger.error("verdict on %s by %s not published: %s", transaction_id, label["analyst"], exc)
        return VerdictFeedback(f"Not recorded: {exc}", ERROR_STYLE)
    state.verdicts.add(label)
    what = f"confirmed as fraud ({fraud_type_name(fraud_type)})" if is_fraud else "marked legitimate"
    return VerdictFeedback(f"Recorded: {transaction_id} {what} by {label['analyst']}.", OK_STYLE)


def register_alert_detail_callbacks(app: Dash, state: MonitorState, publish: Publish) -> None:
    """Wire the panel to ``state`` and the verdict buttons to ``publish``."""

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
        return tuple(update_detail(state, current_user(), transaction_id, rendered, changed))

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
        fraud_type_chosen: str | None,
        comment: str | None,
    ) -> tuple[Any, ...]:
        if ctx.triggered_id not in (CONFIRM_ID, LEGITIMATE_ID):
            raise PreventUpdate
        action: Action = "confirm" if ctx.triggered_id == CONFIRM_ID else "legitimate"
        user = current_user()
        return tuple(give_verdict(state, publish, user, transaction_id, action, fraud_type_chosen, comment))
