"""Callback bodies, called directly on a state filled by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dash import html
from dash.exceptions import PreventUpdate

from monitor.formatting import shorten_token
from monitor.state import MonitorState
from monitor.state.alerts import AlertStore
from monitor.state.decisions import DecisionAggregator
from monitor.views.alert_queue import ALERT_COLUMNS, QueueRequest, alert_cells, update_queue_page
from monitor.views.headline import STALE_STYLE, update_headline
from monitor.views.rates import update_graph
from monitor.views.shared import FRAUD_TYPE_CODES
from pipeline.config import FRAUD_TYPE_NAMES

# minute 0: 10 transactions: 2 unauthorized (20 %), 1 identity theft (10 %), 0 malicious
# minute 1: 4 transactions: 1 malicious (25 %)
EXPECTED = {
    "Unauthorized Transactions": [0.2, 0.0],
    "Identity Theft": [0.1, 0.0],
    "Malicious Behavior": [0.0, 0.25],
}


@pytest.fixture
def clock_at(base_minute):
    now = {"t": (base_minute + timedelta(minutes=1, seconds=20)).timestamp()}

    def clock() -> float:
        return now["t"]

    clock.now = now  # type: ignore[attr-defined]
    return clock


@pytest.fixture
def state(make_decision, make_alert, clock_at) -> MonitorState:
    st = MonitorState(DecisionAggregator(60, clock=clock_at), AlertStore(100))
    flagged = [
        make_decision("u1", second=1, decision="review", fraud_type="unauthorized_transactions", amount=5),
        make_decision("u2", second=2, decision="block", fraud_type="unauthorized_transactions", amount=120),
        make_decision("i1", second=3, decision="review", fraud_type="identity_theft"),
        make_decision("m1", minute=1, second=4, decision="block", fraud_type="malicious_behavior", amount=1),
    ]
    allowed = [make_decision(f"a{i}", second=10 + i) for i in range(7)]
    allowed += [make_decision(f"b{i}", minute=1, second=i) for i in range(3)]
    for record in flagged + allowed:
        st.decisions.add(record)
    for record in flagged:
        st.alerts.add(make_alert(record))
    return st


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_fraud_type_gives_its_own_series(state, name, base_minute) -> None:
    fig, key = update_graph(state, name, None)
    [trace] = fig.data
    assert list(trace.y) == EXPECTED[name]
    assert len(trace.x) == 2
    assert trace.name == name
    assert name in fig.layout.title.text
    assert key.startswith(FRAUD_TYPE_CODES[name])


def test_graph_prevents_update_when_nothing_changed(state, make_decision) -> None:
    _, key = update_graph(state, "Identity Theft", None)
    with pytest.raises(PreventUpdate):
        update_graph(state, "Identity Theft", key)
    # another type redraws
    fig, other = update_graph(state, "Malicious Behavior", key)
    assert other != key
    # new data redraws
    state.decisions.add(
        make_decision("i2", minute=1, second=30, decision="review", fraud_type="identity_theft")
    )
    fig, newer = update_graph(state, "Identity Theft", key)
    assert newer != key
    assert list(fig.data[0].y) == [0.1, 0.2]


@pytest.mark.parametrize("value", [None, "", "identity_theft", "Phishing"])
def test_graph_ignores_unknown_dropdown_values(state, value) -> None:
    with pytest.raises(PreventUpdate):
        update_graph(state, value, None)


def test_graph_on_empty_state_waits(settings_free_state) -> None:
    fig, _ = update_graph(settings_free_state, "Unauthorized Transactions", None)
    assert fig.data == ()
    assert fig.layout.annotations[0].text == "Waiting for decisions…"


@pytest.fixture
def settings_free_state() -> MonitorState:
    return MonitorState(DecisionAggregator(10), AlertStore(10))


def test_headline(state) -> None:
    view = update_headline(state)
    assert view.tx_per_second == f"{4 / 60:.1f}"  # only minute 1 was decided in the last 60 s
    assert view.outcomes == "allow 10 · review 2 · block 2"
    assert view.alert_rate == "28.57% (4 of 14)"
    assert view.blocked_amount == "121.00 EUR"
    assert view.staleness == "16 s"  # last decision 09:01:04.020, now 09:01:20
    assert view.staleness_style != STALE_STYLE


def test_headline_turns_red_when_stale(state, clock_at) -> None:
    clock_at.now["t"] += 40
    view = update_headline(state)
    assert view.staleness == "56 s"
    assert view.staleness_style == STALE_STYLE
    assert update_headline(state, stale_after=60).staleness_style != STALE_STYLE


def test_headline_before_any_decision(settings_free_state) -> None:
    view = update_headline(settings_free_state)
    assert view.staleness == "no decisions yet"
    assert view.staleness_style == STALE_STYLE
    assert view.alert_rate.startswith("0.00%")
    assert view.blocked_amount == "0"


def _rows(children) -> list[list[str]]:
    _header, body = children
    return [[cell.children for cell in row.children] for row in body.children]


def test_alert_queue_newest_first_with_display_names(state) -> None:
    children, options, key, *_ = update_queue_page(state, QueueRequest(), None)
    header, _ = children
    assert [th.children for th in header.children.children] == list(ALERT_COLUMNS)
    rows = _rows(children)
    assert [r[0] for r in rows] == ["m1", "i1", "u2", "u1"]
    m1 = rows[0]
    assert m1[1] == "2026-11-28 09:01:04"
    assert m1[2] == FRAUD_TYPE_NAMES["malicious_behavior"]
    assert m1[3] == "block"
    assert m1[4] == "0.95"
    assert m1[5] == "1.00 EUR"
    assert m1[6] == "tok_4f9a…3e"
    assert m1[7] == "test reason"
    assert m1[8] == ""  # no verdict yet
    assert [o["value"] for o in options] == ["m1", "i1", "u2", "u1"]
    assert options[0]["label"] == "m1 · Malicious Behavior · block 0.95"
    assert key.startswith(f"{state.alerts.version}/{state.verdicts.version}|")
    with pytest.raises(PreventUpdate):
        update_queue_page(state, QueueRequest(), key)


def test_alert_queue_page_and_empty(state, settings_free_state) -> None:
    children = update_queue_page(state, QueueRequest(page_size=10), None).children
    assert [r[0] for r in _rows(children)] == ["m1", "i1", "u2", "u1"]
    empty = update_queue_page(settings_free_state, QueueRequest(), None)
    children, options = empty.children, empty.options
    assert _rows(children) == [["No alerts yet."]]
    assert (options, empty.page_info, empty.older_disabled) == ([], "0 alerts", True)
    assert isinstance(children[1], html.Tbody)


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        ("tok_4f9a2c1b7d3e", "tok_4f9a…3e"),
        ("tok_abcdef", "tok_abcdef"),
        (None, ""),
        ("abcdefghij", "abcd…ij"),
    ],
)
def test_shorten_token(token, shown) -> None:
    assert shorten_token(token) == shown


def test_alert_cells_tolerate_missing_fields() -> None:
    assert alert_cells({"alert_id": "x"}) == [""] * len(ALERT_COLUMNS)
