"""The monitor's "Block and allow lists" section: current entries, and a form for analysts.

Everything here but ``register_list_callbacks`` is plain Python over a ``SharedLists`` (filled by
``monitor.lists_feed.ListFeed`` from the compacted list-updates topic) and a publish function.
``change_list`` is the server-side path the Dash callback calls: only analysts may change a list
(viewers are refused whatever their browser sends), a value that looks like a card number is
refused (cards are listed by token), and the change is published before it is shown. Like the
verdict buttons, the form goes through Dash's callback route: a JSON POST that needs the session
cookie (HttpOnly, SameSite=Lax), which another site cannot send.

Card tokens are shown shortened, and the page never holds them whole: the entry to remove is
chosen by an opaque id that the server maps back to the entry.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from monitor.auth import current_user
from monitor.formatting import format_time, shorten_token
from monitor.users import User
from pipeline.contracts.json_schemas import SchemaViolation, validator
from pipeline.contracts.validation import text_has_card_number
from pipeline.detection.entity_lists import (
    ENTITY_KINDS,
    LIST_NAMES,
    TRANSACTION_FIELD,
    EntityLists,
    ListEntry,
    list_key,
)
from pipeline.kafka.list_topic import Record, apply_records

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
_CELL = {"borderBottom": "1px solid #eee", "padding": "4px 8px", "textAlign": "left"}
_BUTTON = {"padding": "6px 14px", "marginRight": "8px", "border": "0", "borderRadius": "4px"}
OK_STYLE: dict[str, str] = {"color": "#1e8449", "fontWeight": "bold", "marginTop": "8px"}
ERROR_STYLE: dict[str, str] = {"color": "#c0392b", "fontWeight": "bold", "marginTop": "8px"}

PublishList = Callable[[str, Mapping[str, Any]], None]
"""Publishes one list update under its key (``ListPublisher.publish``); raises on failure."""
AlertLookup = Callable[[str], Mapping[str, Any] | None]
"""The alert with a transaction id (``AlertStore.get``), or None."""
ALERT_CHOICES = 100


class ListChangeNotAllowedError(PermissionError):
    """The user may not change the lists (not logged in, or a viewer)."""


class InvalidListChangeError(ValueError):
    """The change cannot be expressed as a valid list update."""


def entry_id(key: str) -> str:
    """An opaque, stable id of an entry for the page (its key holds a whole card token)."""
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def shown_value(entry: ListEntry) -> str:
    """The entry's value as the page shows it: card tokens shortened."""
    return shorten_token(entry.value) if entry.kind == "card" else entry.value


class SharedLists:
    """Thread-safe lists for the monitor: the feed thread writes, callbacks read snapshots."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lists = EntityLists()
        self._version = 0

    @property
    def version(self) -> int:
        return self._version

    def apply_records(self, records: Sequence[Record], max_bytes: int) -> None:
        with self._lock:
            if apply_records(self._lists, list(records), max_bytes, None):
                self._version += 1

    def rebuild(self, records: Sequence[Record], max_bytes: int) -> None:
        """Replace everything by the state ``records`` (the whole topic) give."""
        fresh = EntityLists()
        apply_records(fresh, list(records), max_bytes, None)
        with self._lock:
            self._lists = fresh
            self._version += 1

    def apply(self, key: str, message: Mapping[str, Any], max_bytes: int = 64 * 1024) -> None:
        """Apply a change this monitor published (the feed reads it back too: no harm)."""
        self.apply_records([Record(key.encode(), _dumps(message), -1, -1)], max_bytes)

    def entries(self) -> list[ListEntry]:
        """Every entry: block before allow, then by kind and newest first."""
        with self._lock:
            entries = list(self._lists)
        order = {name: i for i, name in enumerate(LIST_NAMES)} | {k: i for i, k in enumerate(ENTITY_KINDS)}
        entries.sort(key=lambda e: e.at, reverse=True)
        entries.sort(key=lambda e: (order[e.list], order[e.kind]))
        return entries

    def find(self, opaque_id: str) -> ListEntry | None:
        return next((e for e in self.entries() if entry_id(e.key) == opaque_id), None)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return self._lists.counts()


def _dumps(message: Mapping[str, Any]) -> bytes:
    return orjson.dumps(dict(message))


def check_may_edit_lists(user: User | None) -> User:
    """``user`` when it is an analyst; raises ListChangeNotAllowedError otherwise."""
    if user is None:
        raise ListChangeNotAllowedError("log in to change the lists")
    if user.role != "analyst":
        raise ListChangeNotAllowedError(f"{user.name} is a {user.role}: only analysts may change the lists")
    return user


def build_list_update(
    *,
    user: User | None,
    action: str,
    list_name: str | None,
    kind: str | None,
    value: str | None,
    reason: str | None,
    now: datetime,
) -> tuple[str, dict[str, Any]]:
    """(key, ``list_update.v1`` message) of ``user``'s change.

    Raises ListChangeNotAllowedError unless ``user`` is an analyst, InvalidListChangeError when the
    change is not valid (unknown list or kind, a card number instead of a token, no reason, ...).
    The error texts never repeat the value (it might be a card number).
    """
    analyst = check_may_edit_lists(user)
    if list_name not in LIST_NAMES:
        raise InvalidListChangeError("choose the block list or the allow list")
    if kind not in ENTITY_KINDS:
        raise InvalidListChangeError("choose card, device or merchant")
    text = (value or "").strip()
    why = (reason or "").strip()
    if not text:
        raise InvalidListChangeError(f"enter the {kind}'s {'token' if kind == 'card' else 'id'}")
    if text_has_card_number(text) or text_has_card_number(why):
        raise InvalidListChangeError(
            "that looks like a card number: list cards by their token (tok_…), never by the number"
        )
    if not why:
        raise InvalidListChangeError("say why (the reason is shown with every decision it causes)")
    message = {
        "schema_version": 1,
        "action": action,
        "list": list_name,
        "entity_kind": kind,
        "value": text,
        "reason": why,
        "who": analyst.name,
        "at": now.astimezone(UTC).isoformat(timespec="milliseconds"),
    }
    try:
        validator("list_update")(message)
    except SchemaViolation as exc:
        field = ".".join(str(part) for part in exc.path[1:])
        if field == "value":
            expected = (
                "a token tok_ and 8 to 64 letters or digits"
                if kind == "card"
                else "1 to 64 of A-Z a-z 0-9 _ . : -"
            )
            raise InvalidListChangeError(
                f"not a valid {kind} {'token' if kind == 'card' else 'id'}: expected {expected}"
            ) from None
        raise InvalidListChangeError(f"not a valid list change: {exc.message}") from None
    return list_key(list_name, kind, text), message


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
    header = html.Thead(html.Tr([html.Th(c, style=_CELL) for c in LIST_COLUMNS]))
    if not entries:
        empty = html.Td("No entries from the monitor yet.", colSpan=len(LIST_COLUMNS), style=_CELL)
        return [header, html.Tbody([html.Tr([empty])])]
    rows = [
        html.Tr(
            [
                html.Td(text, style=_CELL)
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
                        style={**_BUTTON, "background": "#2c3e50", "color": "#fff"},
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
                            html.Button("Remove", id=LIST_REMOVE_ID, disabled=True, style=_BUTTON),
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
