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

from monitor.aggregation import DECISIONS, FLAGGED_DECISIONS, AlertFilter, MonitorState, Verdict
from monitor.feedback import FeedbackError
from monitor.figures import all_types_figure, fraud_rate_figure
from monitor.formatting import fraud_type_name
from monitor.layout import (
    ALL_TYPES_NAME,
    ANY,
    DEFAULT_PAGE_SIZE,
    ERROR_STYLE,
    FRAUD_TYPE_CODES,
    FRESH_STYLE,
    OK_STYLE,
    PAGE_SIZES,
    QUEUE_NEXT_ID,
    QUEUE_PREV_ID,
    STALE_STYLE,
    alert_detail,
    alert_options,
    alert_table,
    format_amounts,
    risk_table,
    user_info,
)
from monitor.reports import build_excel, build_pdf, collect_report, report_filename
from monitor.timerange import (
    CUSTOM,
    DEFAULT_RANGE,
    EVERYTHING,
    RANGE_LABELS,
    InvalidRangeError,
    RangeSpec,
    TimeRange,
    floor_range,
)
from monitor.users import User
from monitor.verdicts import InvalidVerdictError, VerdictNotAllowedError, build_label

logger = logging.getLogger(__name__)

STALE_AFTER_SECONDS = 30.0
CARD_ALERTS = 10
URL_TYPE_PARAM = "type"
URL_RANGE_PARAM = "range"
URL_FROM_PARAM = "from"
URL_TO_PARAM = "to"

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


def view_range(state: MonitorState, range_data: Any) -> tuple[TimeRange, str]:
    """The range of the ``view-range`` store resolved at the state's clock, and a key of it that
    changes at most once a minute for the sliding ranges."""
    spec = RangeSpec.from_data(range_data)
    rng = spec.resolve(state.decisions.now())
    return rng, f"{spec.choice}:{floor_range(rng)}"


def update_graph(
    state: MonitorState,
    fraud_type_name: str | None,
    rendered: Any,
    range_data: Any = None,
    dark: bool = False,
) -> tuple[go.Figure, str]:
    """The fraud-rate figure of the chosen type (or of all three overlaid) and the key of what it shows.

    Raises PreventUpdate when the type is unknown or neither it, the range, the theme nor the data
    changed since ``rendered`` (the key returned last time, kept in a ``dcc.Store`` per browser tab).
    """
    all_types = fraud_type_name == ALL_TYPES_NAME
    code = "all" if all_types else FRAUD_TYPE_CODES.get(fraud_type_name or "")
    if code is None:
        raise PreventUpdate
    rng, range_key = view_range(state, range_data)
    key = f"{code}@{state.decisions.version}@{range_key}@{'dark' if dark else 'light'}"
    if key == rendered:
        raise PreventUpdate
    if all_types:
        series = {c: state.decisions.fraud_rate_series(c, within=rng) for c in FRAUD_TYPE_CODES.values()}
        return all_types_figure(series, dark=dark), key
    return fraud_rate_figure(state.decisions.fraud_rate_series(code, within=rng), code, dark=dark), key


def update_view_range(choice: str | None, start_text: str | None, end_text: str | None) -> tuple[Any, str]:
    """The ``view-range`` store's data from the range controls, and an error text ('' when fine).

    A custom range that cannot be read leaves the store as it was (``no_update``) and says why.
    """
    try:
        spec = RangeSpec.build(choice, start_text, end_text)
    except InvalidRangeError as exc:
        return no_update, str(exc)
    return spec.to_data(), ""


def update_at_risk(state: MonitorState, range_data: Any, rendered: Any) -> tuple[Any, str]:
    """The at-risk table of the range and its key; PreventUpdate when nothing changed."""
    rng, range_key = view_range(state, range_data)
    key = f"{state.decisions.version}@{range_key}"
    if key == rendered:
        raise PreventUpdate
    return risk_table(state.decisions.at_risk(rng)), key


def update_headline(
    state: MonitorState, stale_after: float = STALE_AFTER_SECONDS, within: TimeRange = EVERYTHING
) -> HeadlineView:
    """Headline texts over ``within``; the time since the last decision turns red past ``stale_after``
    seconds (transactions per second and staleness are always the latest, whatever the range)."""
    h = state.decisions.headline(within)
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
    """0 for the newest alerts; past the last page, the last page is shown."""


class QueuePage(NamedTuple):
    """Outputs of the paginated queue."""

    children: list[html.Thead | html.Tbody]
    options: list[dict[str, str]]
    key: str
    page: int
    """The page shown (0 = newest), ``QueueRequest.page`` kept within the pages there are."""
    pages: int
    page_info: str
    newer_disabled: bool
    older_disabled: bool


def turn_page(triggered: set[Any], page: Any, pages: Any) -> int:
    """The queue's page after the controls in ``triggered`` (component ids) changed.

    'Newer'/'Older' step back/forward within ``pages``; a changed filter, page size or range goes
    back to the first (newest) page.
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
    """The ``AlertFilter`` of the queue's controls; values the page cannot send are ignored."""
    fraud_type = request.fraud_type if request.fraud_type in FRAUD_TYPE_CODES.values() else None
    decision = request.decision if request.decision in FLAGGED_DECISIONS else None
    score = request.min_score
    min_score = (
        float(score) if isinstance(score, int | float) and not isinstance(score, bool) and score > 0 else None
    )
    return AlertFilter(fraud_type=fraud_type, decision=decision, min_score=min_score, within=within)


def update_queue_page(
    state: MonitorState, request: QueueRequest, rendered: Any, range_data: Any = None
) -> QueuePage:
    """One page of the filtered queue (newest first), with the pager's text and buttons.

    Raises PreventUpdate when no alert, verdict, filter, page or range changed since ``rendered``.
    """
    size = request.page_size if request.page_size in PAGE_SIZES else DEFAULT_PAGE_SIZE
    page = request.page if isinstance(request.page, int) and request.page >= 0 else 0
    rng, range_key = view_range(state, range_data)
    alert_filter = queue_filter(request, rng)
    total = state.alerts.query(alert_filter, limit=0).total
    pages = max(1, -(-total // size))
    page = min(max(page, 0), pages - 1)
    key = f"{queue_key(state)}|{alert_filter.fraud_type}|{alert_filter.decision}|{alert_filter.min_score}"
    key += f"|{range_key}|{page}|{size}"
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
    state: MonitorState,
    kind: Literal["xlsx", "pdf"],
    user: User | None,
    now: datetime | None = None,
    range_data: Any = None,
) -> dict[str, Any]:
    """The report of the chosen time range as ``dcc.Download`` data (an Excel workbook or a PDF)."""
    spec = RangeSpec.from_data(range_data)
    data = collect_report(
        state,
        generated_by=user.name if user else "unknown",
        now=now,
        within=spec.resolve(state.decisions.now()),
        range_text=spec.describe(),
    )
    content = build_excel(data) if kind == "xlsx" else build_pdf(data)
    mime = (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        if kind == "xlsx"
        else "application/pdf"
    )
    return dcc.send_bytes(content, report_filename(data, kind), type=mime)


class ViewControls(NamedTuple):
    """The controls the URL keeps: fraud type (display name), range choice, custom bounds as typed."""

    fraud_type: Any
    range_choice: Any = DEFAULT_RANGE
    start: Any = ""
    end: Any = ""


_TYPE_CHOICES = frozenset(FRAUD_TYPE_CODES) | {ALL_TYPES_NAME}


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
