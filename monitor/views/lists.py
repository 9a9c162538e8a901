"""The monitor's "Block and allow lists" section: current entries, and a form for analysts.

The entries come from a ``monitor.state.shared_lists.SharedLists`` (filled by
``monitor.lists_feed.ListFeed`` from the compacted list-updates topic). ``change_list`` is the
server-side path the Dash callback calls: ``monitor.list_changes.build_list_update`` refuses
anyone but an analyst (viewers are refused whatever their browser sends) and a value that looks
like a card number (cards are listed by token), and the change is published before it is shown.
Like the verdict buttons, the form goes through Dash's callback route: a JSON POST that needs the
session cookie (HttpOnly, SameSite=Lax), which another site cannot send.

Card tokens are shown shortened, and the page never holds them whole: the entry to remove is
chosen by an opaque id (``entry_id``) that the server maps back to the entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from monitor.auth import current_user
from monitor.formatting import format_time, shorten_token
from monitor.list_changes import (
    InvalidListChangeError,
    ListChangeNotAllowedError,
    build_list_update,
    check_may_edit_lists,
)
from monitor.state.shared_lists import SharedLists, entry_id
from monitor.users import User
from monitor.views.shared import BUTTON_STYLE, CELL_STYLE, ERROR_STYLE, OK_STYLE
from pipeline.detection.entity_lists import ENTITY_KINDS, LIST_NAMES, TRANSACTION_FIELD, ListEntry

logger = logging.getLogger(__name__)

LISTS_SECTION_ID = "lists-section"
LISTS_TABLE_ID = "lists-table"
LISTS_RENDERED_ID = "lists-rendered"
LIST_NAME_ID = "list-name"
LIST_KIND_ID = "list-kind"
LIST_VALUE_ID = "list-value"
LIST_FROM_ALERT_ID = "list-from-alert"
LIST_REASON_ID = "list-reason"
LIST_ADD_ID = "list-add"
LIST_REMOVE_SELECT_ID = "list-remove-select"
LIST_REMOVE_ID = "list-remove"
LIST_STATUS_ID = "list-status"
LIST_NOTE_ID = "list-note"

LIST_LABELS = {"block": "Block list", "allow": "Allow list"}
KIND_LABELS = {"card": "Card (token)", "device": "Device", "merchant": "Merchant"}
REMOVED_REASON = "Removed in the monitor"

PublishList = Callable[[str, Mapping[str, Any]], None]
"""Publishes one list update under its key (``ListPublisher.publish``); raises on failure."""
AlertLookup = Callable[[str], Mapping[str, Any] | None]
"""The alert with a transaction id (``AlertStore.get``), or None."""
ALERT_CHOICES = 100


def shown_value(entry: ListEntry) -> str:
    """The entry's value as the page shows it: card tokens shortened."""
    return shorten_token(entry.value) if entry.kind == "card" else entry.value


def _entity_of_alert(transaction_id: str, kind: str | None, lookup: AlertLookup | None) -> str:
    """The card token, device id or merchant id of an alert the monitor keeps."""
    alert = lookup(transaction_id) if lookup is not None else None
    if alert is None:
        raise InvalidListChangeError(f"alert {transaction_id} is no longer kept by the monitor")
    if kind not in ENTITY_KINDS:
        raise InvalidListChangeError("choose card, device or merchant")
    entity = alert.get(TRANSACTION_FIELD[kind])
    if not isinstance(entity, str) or not entity:
        raise InvalidListChangeError(f"alert {transaction_id} has no {kind}")
    return entity


class ListFeedback(NamedTuple):
    text: str
    style: dict[str, str]


def change_list(
    lists: SharedLists,
    publish: PublishList,
    user: User | None,
    action: str,
    *,
    list_name: str | None = None,
    kind: str | None = None,
    value: str | None = None,
    reason: str | None = None,
    remove_id: str | None = None,
    from_alert: str | None = None,
    alert_lookup: AlertLookup | None = None,
    now: datetime | None = None,
) -> ListFeedback:
    """Add an entry (``action`` add: list, kind, value, reason) or remove one (``remove``: the
    entry chosen by ``remove_id``), publish it and show it. The server-side check is here.

    Without a typed ``value``, an add takes the card, device or merchant of alert ``from_alert``
    (the page shows card tokens shortened, so an analyst blocks an alert's card this way)."""
    when = now or datetime.now(UTC)
    try:
        check_may_edit_lists(user)
        if action == "add" and not (value or "").strip() and from_alert:
            value = _entity_of_alert(from_alert, kind, alert_lookup)
        if action == "remove":
            entry = lists.find(remove_id or "")
            if entry is None:
                raise InvalidListChangeError("choose an entry to remove")
            list_name, kind, value = entry.list, entry.kind, entry.value
            reason = (reason or "").strip() or REMOVED_REASON
        elif action != "add":
            raise InvalidListChangeError(f"unknown action {action!r}")
        key, message = build_list_update(
            user=user, action=action, list_name=list_name, kind=kind, value=value, reason=reason, now=when
        )
    except ListChangeNotAllowedError as exc:
        logger.warning("list change refused: %s", exc)
        return ListFeedback(f"Not allowed: {exc}.", ERROR_STYLE)
    except InvalidListChangeError as exc:
        return ListFeedback(f"Not sent: {exc}.", ERROR_STYLE)
    try:
        publish(key, message)
    except Exception as exc:  # the publisher's error says why; the analyst must see it
        logger.error("list change by %s not published: %s", message["who"], exc)
        return ListFeedback(f"Not recorded: {exc}", ERROR_STYLE)
    lists.apply(key, message)
    shown = shorten_token(message["value"]) if kind == "card" else message["value"]
    done = "added to" if action == "add" else "removed from"
    text = f"Recorded: {kind} {shown} {done} the {list_name} list by {message['who']}."
    return ListFeedback(text, OK_STYLE)


# --- the page ------------------------------------------------------------------------------------
LIST_COLUMNS = ("List", "Kind", "Value", "Reason", "By", "Since (UTC)")


def list_rows(entries: Sequence[ListEntry]) -> list[html.Thead | html.Tbody]:
    """Header and rows of the lists table (card tokens shortened)."""
    header = html.Thead(html.Tr([html.Th(c, style=CELL_STYLE) for c in LIST_COLUMNS]))
    if not entries:
        empty = html.Td("No entries from the monitor yet.", colSpan=len(LIST_COLUMNS), style=CELL_STYLE)
        return [header, html.Tbody([html.Tr([empty])])]
    rows = [
        html.Tr(
            [
                html.Td(text, style=CELL_STYLE)
                for text in (
                    entry.list,
                    entry.kind,
                    shown_value(entry),
                    entry.reason,
                    entry.who,
                    format_time(entry.at),
                )
            ]
        )
        for entry in entries
    ]
    return [header, html.Tbody(rows)]


def remove_options(entries: Sequence[ListEntry]) -> list[dict[str, str]]:
    """Options of the 'entry to remove' chooser: readable labels, opaque values."""
    return [
        {"label": f"{entry.list} · {entry.kind} · {shown_value(entry)}", "value": entry_id(entry.key)}
        for entry in entries
    ]


def lists_section() -> html.Div:
    """The section's components (filled by the callbacks)."""
    return html.Div(
        [
            html.H2("Block and allow lists", style={"fontSize": "18px"}),
            html.P(
                "Entries apply to the next transactions on every pipeline worker, without a restart. "
                "A block wins over an allow; the rule file's lists stay in force.",
                style={"fontSize": "12px", "color": "#666"},
            ),
            html.Div(id=LISTS_TABLE_ID),
            html.Div(
                [
                    dcc.RadioItems(
                        id=LIST_NAME_ID,
                        options=[{"label": LIST_LABELS[n], "value": n} for n in LIST_NAMES],
                        value="block",
                        inline=True,
                    ),
                    dcc.RadioItems(
                        id=LIST_KIND_ID,
                        options=[{"label": KIND_LABELS[k], "value": k} for k in ENTITY_KINDS],
                        value="card",
                        inline=True,
                    ),
                    html.Div(
                        [
                            dcc.Input(
                                id=LIST_VALUE_ID,
                                type="text",
                                placeholder="tok_… / device id / merchant id",
                                maxLength=64,
                                autoComplete="off",
                                style={"width": "260px"},
                            ),
                            html.Span("or that of alert", style={"fontSize": "13px"}),
                            dcc.Dropdown(
                                id=LIST_FROM_ALERT_ID,
                                options=[],
                                placeholder="Choose an alert",
                                clearable=True,
                                style={"minWidth": "320px"},
                            ),
                        ],
                        style={"display": "flex", "gap": "8px", "alignItems": "center", "margin": "6px 0"},
                    ),
                    dcc.Input(
                        id=LIST_REASON_ID,
                        type="text",
                        placeholder="Reason (shown with the decisions)",
                        maxLength=500,
                        style={"width": "320px", "marginRight": "8px"},
                    ),
                    html.Button(
                        "Add to list",
                        id=LIST_ADD_ID,
                        disabled=True,
                        style={**BUTTON_STYLE, "background": "#2c3e50", "color": "#fff"},
                    ),
                    html.Div(
                        [
                            dcc.Dropdown(
                                id=LIST_REMOVE_SELECT_ID,
                                options=[],
                                placeholder="Entry to remove",
                                clearable=True,
                                style={"minWidth": "360px"},
                            ),
                            html.Button("Remove", id=LIST_REMOVE_ID, disabled=True, style=BUTTON_STYLE),
                        ],
                        style={"display": "flex", "gap": "8px", "alignItems": "center", "marginTop": "8px"},
                    ),
                    html.Div(id=LIST_STATUS_ID, role="status"),
                    html.Div(
                        id=LIST_NOTE_ID, style={"fontSize": "12px", "color": "#666", "marginTop": "6px"}
                    ),
                ],
                style={"marginTop": "10px"},
            ),
            dcc.Store(id=LISTS_RENDERED_ID),
        ],
        id=LISTS_SECTION_ID,
        style={"borderTop": "1px solid #ddd", "marginTop": "16px", "paddingTop": "8px"},
    )


def access_view(user: User | None) -> tuple[str, bool, bool]:
    """(note, add disabled, remove disabled): the form is for analysts only."""
    if user is not None and user.role == "analyst":
        return "", False, False
    who = f"a {user.role}" if user is not None else "not logged in"
    return f"You are {who}: only analysts can change the lists.", True, True


def alert_choices(alerts: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Options of the 'that of alert' chooser: 'tx · decision · card tok_4f9a…3e'."""
    choices = []
    for alert in alerts:
        tx = alert.get("transaction_id")
        if tx:
            card = shorten_token(alert.get("card_token"))
            choices.append({"label": f"{tx} · {alert.get('decision', '')} · card {card}", "value": str(tx)})
    return choices


def table_view(
    lists: SharedLists, rendered: Any, alerts: Any = None
) -> tuple[list[Any], list[dict[str, str]], list[dict[str, str]], str]:
    """Rows, remove options, alert choices and the key of what they show; PreventUpdate when
    neither the lists nor the alerts (an ``AlertStore``) changed."""
    key = f"{lists.version}/{alerts.version if alerts is not None else '-'}"
    if key == rendered:
        raise PreventUpdate
    entries = lists.entries()
    table = html.Table(list_rows(entries), style={"borderCollapse": "collapse", "fontSize": "13px"})
    choices = alert_choices(alerts.newest(ALERT_CHOICES)) if alerts is not None else []
    return [table], remove_options(entries), choices, key


def register_list_callbacks(
    app: Dash,
    lists: SharedLists,
    publish: PublishList,
    *,
    refresh_id: str,
    url_id: str,
    alerts: Any = None,
) -> None:
    """Wire the section to ``lists`` and ``publish`` (``refresh_id``: the page's interval;
    ``alerts``: the monitor's ``AlertStore``, to list an alert's card, device or merchant)."""
    lookup: AlertLookup | None = alerts.get if alerts is not None else None

    @app.callback(
        Output(LIST_NOTE_ID, "children"),
        Output(LIST_ADD_ID, "disabled"),
        Output(LIST_REMOVE_ID, "disabled"),
        Input(url_id, "pathname"),
    )
    def _access(_path: str | None) -> tuple[str, bool, bool]:
        return access_view(current_user())

    @app.callback(
        Output(LISTS_TABLE_ID, "children"),
        Output(LIST_REMOVE_SELECT_ID, "options"),
        Output(LIST_FROM_ALERT_ID, "options"),
        Output(LISTS_RENDERED_ID, "data"),
        Input(refresh_id, "n_intervals"),
        State(LISTS_RENDERED_ID, "data"),
    )
    def _table(_n: int | None, rendered: Any) -> tuple[Any, ...]:
        return table_view(lists, rendered, alerts)

    @app.callback(
        Output(LIST_STATUS_ID, "children"),
        Output(LIST_STATUS_ID, "style"),
        Output(LIST_VALUE_ID, "value"),
        Input(LIST_ADD_ID, "n_clicks"),
        Input(LIST_REMOVE_ID, "n_clicks"),
        State(LIST_NAME_ID, "value"),
        State(LIST_KIND_ID, "value"),
        State(LIST_VALUE_ID, "value"),
        State(LIST_REASON_ID, "value"),
        State(LIST_REMOVE_SELECT_ID, "value"),
        State(LIST_FROM_ALERT_ID, "value"),
        prevent_initial_call=True,
    )
    def _change(
        _add: int | None,
        _remove: int | None,
        list_name: str | None,
        kind: str | None,
        value: str | None,
        reason: str | None,
        remove_id: str | None,
        from_alert: str | None,
    ) -> tuple[Any, ...]:
        if ctx.triggered_id not in (LIST_ADD_ID, LIST_REMOVE_ID):
            raise PreventUpdate
        action = "add" if ctx.triggered_id == LIST_ADD_ID else "remove"
        feedback = change_list(
            lists,
            publish,
            current_user(),
            action,
            list_name=list_name,
            kind=kind,
            value=value,
            reason=reason if action == "add" else None,
            remove_id=remove_id,
            from_alert=from_alert,
            alert_lookup=lookup,
        )
        # once recorded, the value leaves the page (it may be a whole card token)
        cleared = "" if action == "add" and feedback.style == OK_STYLE else no_update
        return feedback.text, feedback.style, cleared
