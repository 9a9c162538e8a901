"""The lists section without a broker: building list updates, the analyst-only server-side check,
card numbers refused, tokens shown shortened, and the Dash callback route (a fake publisher)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from dash.exceptions import PreventUpdate

from monitor.app import create_app
from monitor.list_changes import InvalidListChangeError, ListChangeNotAllowedError, build_list_update
from monitor.state import MonitorState
from monitor.state.alerts import AlertStore
from monitor.state.decisions import DecisionAggregator
from monitor.state.shared_lists import SharedLists, entry_id
from monitor.users import User
from monitor.views.lists import REMOVED_REASON, access_view, change_list, remove_options, table_view
from monitor.views.shared import ERROR_STYLE, OK_STYLE
from pipeline.config import load_settings
from pipeline.contracts.json_schemas import validator
from tests.monitor.logins import ANALYST, VIEWER, login_client, make_accounts

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
ALICE = User("alice", "analyst")
VICTOR = User("victor", "viewer")
TOKEN = "tok_4f9a2c1b7d3e"


class Published(list[tuple[str, dict[str, Any]]]):
    def __call__(self, key: str, message: Mapping[str, Any]) -> None:
        self.append((key, dict(message)))


def add(lists: SharedLists, publish: Published, user: User | None = ALICE, **fields: Any):
    values = {"list_name": "block", "kind": "card", "value": TOKEN, "reason": "stolen"} | fields
    return change_list(lists, publish, user, "add", now=NOW, **values)


def test_an_analyst_adds_an_entry_it_is_published_and_shown_shortened() -> None:
    lists, published = SharedLists(), Published()
    feedback = add(lists, published)
    assert feedback == ("Recorded: card tok_4f9a…3e added to the block list by alice.", OK_STYLE)
    [(key, message)] = published
    assert key == f"block:card:{TOKEN}"
    validator("list_update")(message)
    assert (message["action"], message["who"], message["reason"], message["at"]) == (
        "add", "alice", "stolen", "2026-11-29T10:00:00.000+00:00",
    )  # fmt: skip
    [entry] = lists.entries()
    assert entry.value == TOKEN
    children, options, _choices, version = table_view(lists, None)
    rendered = json.dumps(
        children[0].to_plotly_json(), default=lambda c: c.to_plotly_json(), ensure_ascii=False
    )
    assert "tok_4f9a…3e" in rendered and TOKEN not in rendered
    assert options == [{"label": "block · card · tok_4f9a…3e", "value": entry_id(key)}]
    assert TOKEN not in json.dumps(options), "the page never holds a whole token"
    with pytest.raises(PreventUpdate):
        table_view(lists, version)


def test_an_analyst_removes_an_entry_by_its_opaque_id() -> None:
    lists, published = SharedLists(), Published()
    add(lists, published, kind="merchant", value="m-00042", list_name="allow")
    [option] = remove_options(lists.entries())
    feedback = change_list(lists, published, ALICE, "remove", remove_id=option["value"], now=NOW)
    assert feedback == ("Recorded: merchant m-00042 removed from the allow list by alice.", OK_STYLE)
    key, message = published[-1]
    assert (key, message["action"], message["reason"]) == ("allow:merchant:m-00042", "remove", REMOVED_REASON)
    assert lists.entries() == []
    again = change_list(lists, published, ALICE, "remove", remove_id=option["value"], now=NOW)
    assert again == ("Not sent: choose an entry to remove.", ERROR_STYLE)


@pytest.mark.parametrize("user", [VICTOR, None])
def test_viewers_and_strangers_are_refused_and_nothing_is_published(user: User | None) -> None:
    lists, published = SharedLists(), Published()
    feedback = add(lists, published, user=user)
    assert feedback.style == ERROR_STYLE and feedback.text.startswith("Not allowed:")
    assert published == [] and lists.entries() == []
    with pytest.raises(ListChangeNotAllowedError):
        build_list_update(
            user=user, action="add", list_name="block", kind="card", value=TOKEN, reason="x", now=NOW
        )
    assert access_view(user)[1:] == (True, True)
    assert access_view(ALICE) == ("", False, False)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"value": "4111 1111 1111 1111"}, "that looks like a card number"),
        ({"value": "4111111111111111", "kind": "device"}, "that looks like a card number"),
        ({"reason": "card 4111111111111111 stolen"}, "that looks like a card number"),
        ({"value": "tok_4539148803436467"}, "that looks like a card number"),
        ({"value": "1234"}, "not a valid card token"),
        ({"value": "dev 1", "kind": "device"}, "not a valid device id"),
        ({"value": "  "}, "enter the card's token"),
        ({"reason": ""}, "say why"),
        ({"list_name": "deny"}, "choose the block list or the allow list"),
        ({"kind": "ip"}, "choose card, device or merchant"),
    ],
)
def test_invalid_changes_are_refused_without_repeating_the_value(
    fields: dict[str, Any], message: str
) -> None:
    lists, published = SharedLists(), Published()
    feedback = add(lists, published, **fields)
    assert feedback.style == ERROR_STYLE and message in feedback.text, feedback.text
    assert "4111" not in feedback.text and "4539" not in feedback.text
    assert published == []
    with pytest.raises(InvalidListChangeError):
        values = {"list_name": "block", "kind": "card", "value": TOKEN, "reason": "stolen"} | fields
        build_list_update(user=ALICE, action="add", now=NOW, **values)


def test_an_alerts_card_device_or_merchant_can_be_listed_without_typing_it(make_decision, make_alert) -> None:
    alerts = AlertStore(50)
    alerts.add(make_alert(make_decision("x1", decision="block", fraud_type="identity_theft")))
    lists, published = SharedLists(), Published()
    _, _, choices, key = table_view(lists, None, alerts)
    assert choices == [{"label": "x1 · block · card tok_4f9a…3e", "value": "x1"}]
    with pytest.raises(PreventUpdate):
        table_view(lists, key, alerts)

    def from_alert(kind: str, tx: str = "x1"):
        return change_list(lists, published, ALICE, "add", list_name="block", kind=kind, value="",
                           reason="seen in x1", from_alert=tx, alert_lookup=alerts.get, now=NOW)  # fmt: skip

    assert from_alert("card") == ("Recorded: card tok_4f9a…3e added to the block list by alice.", OK_STYLE)
    assert from_alert("merchant").text == "Recorded: merchant m-00042 added to the block list by alice."
    assert from_alert("device") == ("Not sent: alert x1 has no device.", ERROR_STYLE)
    assert from_alert("card", "gone") == (
        "Not sent: alert gone is no longer kept by the monitor.",
        ERROR_STYLE,
    )
    assert [key for key, _ in published] == ["block:card:tok_4f9a2c1b7d3e", "block:merchant:m-00042"]
    viewer = change_list(lists, published, VICTOR, "add", list_name="block", kind="card", reason="x",
                         from_alert="x1", alert_lookup=alerts.get, now=NOW)  # fmt: skip
    assert viewer.text.startswith("Not allowed:") and len(published) == 2


def test_a_failed_publication_is_reported_and_not_shown() -> None:
    def broken(_key: str, _message: Mapping[str, Any]) -> None:
        raise RuntimeError("broker down")

    lists = SharedLists()
    feedback = change_list(lists, broken, ALICE, "add", list_name="block", kind="card", value=TOKEN,
                           reason="stolen", now=NOW)  # fmt: skip
    assert feedback == ("Not recorded: broker down", ERROR_STYLE)
    assert lists.entries() == []


_FORGED_ADD = {
    "output": "..list-status.children...list-status.style...list-value.value..",
    "outputs": [
        {"id": "list-status", "property": "children"},
        {"id": "list-status", "property": "style"},
        {"id": "list-value", "property": "value"},
    ],
    "inputs": [
        {"id": "list-add", "property": "n_clicks", "value": 1},
        {"id": "list-remove", "property": "n_clicks", "value": None},
    ],
    "state": [
        {"id": "list-name", "property": "value", "value": "block"},
        {"id": "list-kind", "property": "value", "value": "card"},
        {"id": "list-value", "property": "value", "value": TOKEN},
        {"id": "list-reason", "property": "value", "value": "forged"},
        {"id": "list-remove-select", "property": "value", "value": None},
        {"id": "list-from-alert", "property": "value", "value": None},
    ],
    "changedPropIds": ["list-add.n_clicks"],
}


def test_the_callback_route_refuses_a_viewer_and_accepts_an_analyst() -> None:
    lists, published = SharedLists(), Published()
    app = create_app(
        MonitorState(DecisionAggregator(60), AlertStore(50)),
        load_settings(),
        publish=lambda _label: None,
        accounts=make_accounts(),
        lists=lists,
        publish_list=published,
    )
    anonymous = app.server.test_client()
    assert anonymous.post("/_dash-update-component", json=_FORGED_ADD).status_code == 401

    viewer = app.server.test_client()
    assert login_client(viewer, *VIEWER).status_code == 302
    answer = viewer.post("/_dash-update-component", json=_FORGED_ADD)
    assert answer.status_code == 200
    status = answer.get_json()["response"]["list-status"]["children"]
    assert status == "Not allowed: victor is a viewer: only analysts may change the lists."
    assert published == []

    analyst = app.server.test_client()
    assert login_client(analyst, *ANALYST).status_code == 302
    answer = analyst.post("/_dash-update-component", json=_FORGED_ADD)
    assert answer.get_json()["response"]["list-value"]["value"] == "", "the recorded value leaves the page"
    status = answer.get_json()["response"]["list-status"]["children"]
    assert status == "Recorded: card tok_4f9a…3e added to the block list by alice."
    assert [key for key, _ in published] == [f"block:card:{TOKEN}"]
