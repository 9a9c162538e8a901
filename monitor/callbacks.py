"""Callback bodies as plain functions: read the shared state, call the pure builders.

``monitor.app`` wires them to Dash; tests call them directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qs, urlencode

import plotly.graph_objects as go
from dash import dcc, html, no_update
from dash.exceptions import PreventUpdate

from monitor.aggregation import DECISIONS, MonitorState
from monitor.feedback import FeedbackError
from monitor.figures import fraud_rate_figure
from monitor.formatting import fraud_type_name
from monitor.layout import (
    ERROR_STYLE,
    FRAUD_TYPE_CODES,
    FRESH_STYLE,
    OK_STYLE,
    STALE_STYLE,
    alert_detail,
    alert_options,
    alert_table,
    format_amounts,
    user_info,
)
from monitor.reports import build_excel, build_pdf, collect_report, report_filename
from monitor.users import User
from monitor.verdicts import InvalidVerdictError, VerdictNotAllowedError, build_label

logger = logging.getLogger(__name__)

STALE_AFTER_SECONDS = 30.0
ALERT_ROWS = 100
CARD_ALERTS = 10
URL_TYPE_PARAM = "type"

Publish = Callable[[Mapping[str, Any]], None]
"""Publishes one label message (``LabelPublisher.publish``); raises FeedbackError on failure."""


class HeadlineView(NamedTuple):
    """Texts of the headline row (the outputs of ``update_headline``, in order)."""

    tx_per_second: str
    outcomes: str
    alert_rate: str
    blocked_amount: str
    staleness: str
    staleness_style: dict[str, str]


def update_graph(state: MonitorState, fraud_type_name: str | None, rendered: Any) -> tuple[go.Figure, str]:
    """The fraud-rate figure of the chosen type and the key of what it shows.

    Raises PreventUpdate when the type is unknown or neither it nor the data changed since
    ``rendered`` (the key returned last time, kept in a ``dcc.Store`` per browser tab).
    """
    code = FRAUD_TYPE_CODES.get(fraud_type_name or "")
    if code is None:
        raise PreventUpdate
    key = f"{code}@{state.decisions.version}"
    if key == rendered:
        raise PreventUpdate
    return fraud_rate_figure(state.decisions.fraud_rate_series(code), code), key


def update_headline(state: MonitorState, stale_after: float = STALE_AFTER_SECONDS) -> HeadlineView:
    """Headline texts; the time since the last decision turns red past ``stale_after`` seconds."""
    h = state.decisions.headline()
    age = h.seconds_since_last_decision
    if age is None:
        staleness, stale = "no decisions yet", True
    else:
        staleness, stale = f"{age:.0f} s", age > stale_after
    return HeadlineView(
        tx_per_second=f"{h.tx_per_second:.1f}",
        outcomes=" · ".join(f"{d} {h.outcomes[d]:,}" for d in DECISIONS),
        alert_rate=f"{h.alert_rate:.2%} ({h.flagged:,} of {h.total:,})",
        blocked_amount=format_amounts(h.blocked_amount),
        staleness=staleness,
        staleness_style=STALE_STYLE if stale else FRESH_STYLE,
    )


class QueueView(NamedTuple):
    """The alert queue's rows, the alert chooser's options, and the key of what they show."""

    children: list[html.Thead | html.Tbody]
    options: list[dict[str, str]]
    key: str


def queue_key(state: MonitorState) -> str:
    """Changes whenever an alert or a verdict arrives."""
    return f"{state.alerts.version}/{state.verdicts.version}"


def update_alert_queue(state: MonitorState, rendered: Any, limit: int = ALERT_ROWS) -> QueueView:
    """Rows of the newest ``limit`` alerts (with verdicts), the chooser's options, and their key.

    Raises PreventUpdate when no alert and no verdict arrived since key ``rendered``.
    """
    key = queue_key(state)
    if key == rendered:
        raise PreventUpdate
    alerts = state.alerts.newest(limit)
    verdicts = {}
    for alert in alerts:
        tx = str(alert.get("transaction_id", ""))
        verdict = state.verdicts.get(tx)
        if verdict is not None:
            verdicts[tx] = verdict
    return QueueView(alert_table(alerts, verdicts), alert_options(alerts), key)


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


def header_view(user: User | None) -> tuple[list[Any], str]:
    """The 'signed in as' text and the verdict note."""
    return user_info(user.name if user else None, user.role if user else None), verdict_note(user)


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


def export_report(
    state: MonitorState, kind: Literal["xlsx", "pdf"], user: User | None, now: datetime | None = None
) -> dict[str, Any]:
    """The report as ``dcc.Download`` data (an Excel workbook or a PDF)."""
    data = collect_report(state, generated_by=user.name if user else "unknown", now=now)
    content = build_excel(data) if kind == "xlsx" else build_pdf(data)
    mime = (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        if kind == "xlsx"
        else "application/pdf"
    )
    return dcc.send_bytes(content, report_filename(data, kind), type=mime)


def type_from_search(search: str | None) -> str | None:
    """The fraud type display name in a query string ('?type=Identity+Theft'), None when absent or unknown."""
    values = parse_qs((search or "").lstrip("?")).get(URL_TYPE_PARAM, [])
    return values[0] if values and values[0] in FRAUD_TYPE_CODES else None


def search_for_type(fraud_type_name_chosen: str) -> str:
    """'?type=Identity+Theft'."""
    return "?" + urlencode({URL_TYPE_PARAM: fraud_type_name_chosen})


def sync_url(search: str | None, chosen: str | None, url_changed: bool) -> tuple[Any, Any]:
    """Keep the URL's ``?type=`` and the fraud-type dropdown in step: (new search, new dropdown value).

    When the page loads or the URL changes (back/forward), the URL wins; when the dropdown
    changes, the URL follows (``no_update`` for the side that stays). Raises PreventUpdate when
    both already agree, or the URL names no known type.
    """
    from_url = type_from_search(search)
    if url_changed:
        if from_url is None or from_url == chosen:
            raise PreventUpdate
        return no_update, from_url
    if chosen not in FRAUD_TYPE_CODES or chosen == from_url:
        raise PreventUpdate
    return search_for_type(chosen), no_update
