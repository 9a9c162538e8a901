"""The console's view logic without a browser: time ranges, amounts at risk, the filtered and
paginated queue, the URL with type and range, and reports limited to the range."""

from __future__ import annotations

import base64
import io
from datetime import datetime, timedelta

import openpyxl
import pytest
from dash import no_update
from dash.exceptions import PreventUpdate
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from monitor.figures import ALL_TYPES_TITLE, all_types_figure
from monitor.state import MonitorState
from monitor.state.alerts import AlertFilter, AlertStore
from monitor.state.decisions import DecisionAggregator
from monitor.state.totals import at_risk
from monitor.timerange import EVERYTHING, InvalidRangeError, RangeSpec, TimeRange
from monitor.views.alert_queue import QueueRequest, queue_filter, turn_page, update_queue_page
from monitor.views.at_risk import RISK_COLUMNS, update_at_risk
from monitor.views.headline import update_headline
from monitor.views.page import ViewControls, controls_from_search, search_for, sync_url
from monitor.views.rates import update_graph
from monitor.views.time_range import update_view_range
from monitor.views.toolbar import export_report
from pipeline.config import FRAUD_TYPE_NAMES, FRAUD_TYPES
from tests.monitor.conftest import BASE_MINUTE, decision_record

NOW = BASE_MINUTE + timedelta(minutes=30, seconds=20)  # 09:30:20


def _t(minute: int, second: int = 0) -> datetime:
    return BASE_MINUTE + timedelta(minutes=minute, seconds=second)


@pytest.fixture
def state(make_decision, make_alert) -> MonitorState:
    """Alerts at minutes 0, 10, 20, 25 and 29 (one per type and decision mix) plus allowed traffic.

    minute 0:  u0 review unauthorized 10 EUR (score 0.6), 3 allowed
    minute 10: i10 block identity 200 EUR (0.95), 1 allowed
    minute 20: m20 review malicious 30 USD (0.6)
    minute 25: u25 block unauthorized 70 EUR (0.95), 1 allowed
    minute 29: i29 review identity 5 EUR (score 0.8)
    """
    st = MonitorState(DecisionAggregator(120, clock=NOW.timestamp), AlertStore(100))
    flagged = [
        make_decision("u0", decision="review", fraud_type="unauthorized_transactions", amount=10),
        make_decision("i10", minute=10, decision="block", fraud_type="identity_theft", amount=200),
        make_decision(
            "m20", minute=20, decision="review", fraud_type="malicious_behavior", amount=30, currency="USD"
        ),
        make_decision("u25", minute=25, decision="block", fraud_type="unauthorized_transactions", amount=70),
        make_decision("i29", minute=29, decision="review", fraud_type="identity_theft", amount=5, score=0.8),
    ]
    allowed = [make_decision(f"a{i}", second=10 + i, amount=1000) for i in range(3)]
    allowed += [make_decision("b10", minute=10, second=5), make_decision("c25", minute=25, second=5)]
    for record in flagged + allowed:
        assert st.decisions.add(record) == "added"
    for record in flagged:
        assert st.alerts.add(make_alert(record)) == "added"
    return st


# --- time ranges ------------------------------------------------------------------------------------
def test_relative_ranges_slide_with_the_clock() -> None:
    assert RangeSpec("15m").resolve(NOW) == TimeRange(NOW - timedelta(minutes=15), None)
    assert RangeSpec("1h").resolve(NOW).start == NOW - timedelta(hours=1)
    assert RangeSpec("24h").resolve(NOW).start == NOW - timedelta(hours=24)
    assert RangeSpec("all").resolve(NOW) == EVERYTHING


def test_custom_range_is_read_as_utc_and_checked() -> None:
    spec = RangeSpec.build("custom", "2026-11-28 09:05", "2026-11-28T09:20")
    assert spec.resolve(NOW) == TimeRange(_t(5), _t(20))
    assert spec.describe() == "2026-11-28 09:05 to 2026-11-28 09:20 UTC"
    assert RangeSpec.build("custom", "2026-11-28 10:05+01:00", "").start == _t(5), "offsets are honoured"
    assert (
        RangeSpec.build("custom", "", "2026-11-28 09:20").describe()
        == "the beginning to 2026-11-28 09:20 UTC"
    )
    assert RangeSpec.from_data(spec.to_data()) == spec
    for start, end, message in (
        ("yesterday", "", "start: 'yesterday' is not a time; type YYYY-MM-DD HH:MM (UTC)"),
        ("2026-11-28 09:20", "2026-11-28 09:20", "custom range: the end must be after the start"),
        ("", " ", "custom range: type a start or an end"),
    ):
        with pytest.raises(InvalidRangeError, match=message.replace("(", r"\(").replace(")", r"\)")):
            RangeSpec.build("custom", start, end)
    with pytest.raises(InvalidRangeError, match="unknown time range"):
        RangeSpec.build("7d")
    assert RangeSpec.from_data({"range": "7d"}) == RangeSpec(), "unreadable store data: all history"
    assert RangeSpec.from_data(None) == RangeSpec()


def test_range_controls_fill_the_store_or_say_what_is_wrong() -> None:
    assert update_view_range("1h", None, None) == ({"range": "1h", "from": "", "to": ""}, "")
    assert update_view_range("custom", "2026-11-28 09:05", None) == (
        {"range": "custom", "from": "2026-11-28 09:05", "to": ""},
        "",
    )
    data, error = update_view_range("custom", "9 o'clock", None)
    assert data is no_update
    assert error.startswith('start: "9 o\'clock" is not a time')


# --- figures over a range -----------------------------------------------------------------------------
def test_graph_honours_the_range(state) -> None:
    fig, key = update_graph(state, "Identity Theft", None, {"range": "15m"})
    [trace] = fig.data
    # 09:15:20 - : minutes 15..29 overlap; identity theft: minute 29 (1 of 1), nothing else flagged
    assert trace.x[0] == datetime(2026, 11, 28, 9, 20) and trace.x[-1] == datetime(2026, 11, 28, 9, 29)
    assert trace.y[-1] == 1.0 and sum(trace.y) == 1.0
    everything, all_key = update_graph(state, "Identity Theft", None, {"range": "all"})
    assert len(everything.data[0].x) == 30 and all_key != key
    with pytest.raises(PreventUpdate):
        update_graph(state, "Identity Theft", key, {"range": "15m"})
    dark, dark_key = update_graph(state, "Identity Theft", key, {"range": "15m"}, dark=True)
    assert (
        dark_key != key
        and dark.layout.template.layout.paper_bgcolor != fig.layout.template.layout.paper_bgcolor
    )


def test_all_types_overlays_the_three(state) -> None:
    fig, key = update_graph(state, "All types", None, {"range": "all"})
    assert fig.layout.title.text == ALL_TYPES_TITLE
    assert [t.name for t in fig.data] == [FRAUD_TYPE_NAMES[c] for c in FRAUD_TYPES]
    by_name = {t.name: list(t.y) for t in fig.data}
    assert by_name["Unauthorized Transactions"][0] == 0.25  # u0 of 4 transactions in minute 0
    assert by_name["Identity Theft"][10] == 0.5  # i10 of 2 in minute 10
    assert by_name["Malicious Behavior"][20] == 1.0
    assert fig.layout.showlegend is True and key.startswith("all@")
    empty = all_types_figure({})
    assert not empty.data and empty.layout.annotations[0].text == "Waiting for decisions…"


# --- headline and amounts at risk ---------------------------------------------------------------------
def test_headline_counts_only_the_range(state) -> None:
    everything = update_headline(state)
    assert everything.outcomes == "allow 5 · review 3 · block 2"
    last_15 = update_headline(state, within=RangeSpec("15m").resolve(NOW))
    assert last_15.outcomes == "allow 1 · review 2 · block 1"
    assert last_15.blocked_amount == "70.00 EUR"
    assert last_15.alert_rate == "75.00% (3 of 4)"


def test_amounts_at_risk_by_type(state) -> None:
    risk = state.decisions.at_risk()
    unauthorized = risk.by_type["unauthorized_transactions"]
    assert (unauthorized.alerted, unauthorized.blocked) == (2, 1)
    assert (dict(unauthorized.alerted_amount), dict(unauthorized.blocked_amount)) == (
        {"EUR": 80.0},
        {"EUR": 70.0},
    )
    assert dict(risk.by_type["malicious_behavior"].alerted_amount) == {"USD": 30.0}
    total = risk.total
    assert (total.alerted, total.blocked) == (5, 2)
    assert dict(total.alerted_amount) == {"EUR": 285.0, "USD": 30.0}
    assert dict(total.blocked_amount) == {"EUR": 270.0}
    assert None not in risk.by_type, "no flagged transaction without a type"
    # the last 15 minutes: m20, u25, i29
    recent = state.decisions.at_risk(RangeSpec("15m").resolve(NOW))
    assert (recent.total.alerted, recent.total.blocked) == (3, 1)
    assert dict(recent.by_type["identity_theft"].alerted_amount) == {"EUR": 5.0}
    assert at_risk([]).total.alerted == 0


def test_at_risk_table(state) -> None:
    table, key = update_at_risk(state, {"range": "all"}, None)
    header, body = table.children
    assert [th.children for th in header.children.children] == list(RISK_COLUMNS)
    rows = [[td.children for td in tr.children] for tr in body.children]
    assert rows[0] == ["Unauthorized Transactions", "2", "80.00 EUR", "1", "70.00 EUR"]
    assert rows[2] == ["Malicious Behavior", "1", "30.00 USD", "0", "0"]
    assert rows[-1] == ["All types", "5", "285.00 EUR · 30.00 USD", "2", "270.00 EUR"]
    with pytest.raises(PreventUpdate):
        update_at_risk(state, {"range": "all"}, key)


def test_a_flagged_decision_without_type_is_counted_apart(make_decision) -> None:
    agg = DecisionAggregator(10)
    agg.add(make_decision("x", decision="review", amount=3))
    risk = agg.at_risk()
    assert risk.by_type[None].alerted == 1 and risk.total.alerted == 1


# --- the queue ------------------------------------------------------------------------------------------
def _ids(page) -> list[str]:
    _header, body = page.children
    return [row.children[0].children for row in body.children]


def test_query_filters_newest_first(state) -> None:
    alerts = state.alerts
    assert [a["transaction_id"] for a in alerts.query().alerts] == ["i29", "u25", "m20", "i10", "u0"]
    by_type = alerts.query(AlertFilter(fraud_type="identity_theft"))
    assert ([a["transaction_id"] for a in by_type.alerts], by_type.total) == (["i29", "i10"], 2)
    blocks = alerts.query(AlertFilter(decision="block")).alerts
    assert [a["transaction_id"] for a in blocks] == ["u25", "i10"]
    scored = alerts.query(AlertFilter(min_score=0.7)).alerts
    assert [a["transaction_id"] for a in scored] == ["i29", "u25", "i10"]
    window = alerts.query(AlertFilter(within=TimeRange(_t(10), _t(25)))).alerts
    assert [a["transaction_id"] for a in window] == ["m20", "i10"], "start included, end excluded"
    page = alerts.query(offset=2, limit=2)
    assert ([a["transaction_id"] for a in page.alerts], page.total) == (["m20", "i10"], 5)


def test_queue_pages_forward_and_back(state) -> None:
    first = update_queue_page(state, QueueRequest(page_size=10), None)
    assert (first.page, first.newer_disabled, first.older_disabled) == (0, True, True)
    assert first.page_info == "1–5 of 5 alerts · page 1 of 1"
    # page size 10 is the smallest the page offers; 2 per page is refused and falls back to 25
    odd = update_queue_page(state, QueueRequest(page_size=2), None)
    assert odd.page_info == "1–5 of 5 alerts · page 1 of 1"


def test_queue_pagination_with_many_alerts(make_decision, make_alert) -> None:
    st = MonitorState(DecisionAggregator(120, clock=NOW.timestamp), AlertStore(100))
    for i in range(23):
        record = make_decision(f"t{i:02d}", minute=i, decision="review", fraud_type="identity_theft")
        st.decisions.add(record)
        st.alerts.add(make_alert(record))
    page1 = update_queue_page(st, QueueRequest(page_size=10), None)
    assert _ids(page1)[:2] == ["t22", "t21"] and len(_ids(page1)) == 10
    assert (page1.newer_disabled, page1.older_disabled) == (True, False)
    page2 = update_queue_page(st, QueueRequest(page_size=10, page=1), page1.key)
    assert _ids(page2)[0] == "t12" and page2.page == 1
    page3 = update_queue_page(st, QueueRequest(page_size=10, page=2), page2.key)
    assert _ids(page3) == ["t02", "t01", "t00"]
    assert page3.page_info == "21–23 of 23 alerts · page 3 of 3"
    assert (page3.newer_disabled, page3.older_disabled, page3.pages) == (False, True, 3)
    beyond = update_queue_page(st, QueueRequest(page_size=10, page=7), None)
    assert (beyond.page, _ids(beyond)) == (2, _ids(page3)), "past the last page: the last page"
    with pytest.raises(PreventUpdate):
        update_queue_page(st, QueueRequest(page_size=10, page=2), page3.key)


def test_turning_pages() -> None:
    assert turn_page({"queue-next"}, 0, 3) == 1
    assert turn_page({"queue-next"}, 2, 3) == 2, "no page past the last"
    assert turn_page({"queue-prev"}, 1, 3) == 0
    assert turn_page({"queue-prev"}, 0, 3) == 0
    assert turn_page({"queue-prev"}, 7, 3) == 1, "from beyond the last page (alerts left the range)"
    assert turn_page({"queue-type"}, 2, 3) == 0, "a filter goes back to the newest alerts"
    assert turn_page({"queue-next", "queue-page-size"}, 1, 3) == 0
    assert turn_page({"queue-order"}, 2, 3) == 0, "a new order starts at its first page"
    assert turn_page({"queue-next", "queue-prev"}, 1, 3) == 1
    assert turn_page({"queue-next"}, None, None) == 0
    assert turn_page({"queue-next"}, 4, None) == 4


def test_queue_filters_and_range(state) -> None:
    view = update_queue_page(state, QueueRequest(fraud_type="identity_theft", decision="block"), None)
    assert _ids(view) == ["i10"]
    view = update_queue_page(state, QueueRequest(min_score=0.9), None, {"range": "15m"})
    assert _ids(view) == ["u25"]
    none = update_queue_page(state, QueueRequest(fraud_type="malicious_behavior", decision="block"), None)
    assert _ids(none) == ["No alert matches the filters."] and none.page_info == "0 alerts"
    # values the page cannot send are ignored, never an error
    junk = update_queue_page(state, QueueRequest("phishing", "allow", "high", "x", -3), None)
    assert junk.page == 0
    assert _ids(junk) == ["i29", "u25", "m20", "i10", "u0"]


@pytest.mark.parametrize(
    ("value", "order"),
    [("newest", "newest"), ("score", "score"), (None, "newest"), ("oldest", "newest"), (["score"], "newest")],
)
def test_queue_filter_maps_the_order_control(value, order) -> None:
    """The order control's value; anything the page cannot send is newest first."""
    assert queue_filter(QueueRequest(order=value)).order == order
    within = TimeRange(_t(10), _t(20))
    mapped = queue_filter(QueueRequest("identity_theft", "block", 0.5, 10, 2, value), within)
    assert mapped == AlertFilter("identity_theft", "block", 0.5, within, order)


def test_queue_by_score_highest_first(state) -> None:
    newest = update_queue_page(state, QueueRequest(), None)
    assert newest.pager_labels == ("‹ Newer", "Older ›")
    view = update_queue_page(state, QueueRequest(order="score"), newest.key)
    assert _ids(view) == ["u25", "i10", "i29", "m20", "u0"], "ties (0.95, 0.6): newest first"
    assert [o["value"] for o in view.options] == _ids(view), "the detail's chooser follows the order"
    assert view.pager_labels == ("‹ Higher scores", "Lower scores ›")
    assert view.key != newest.key, "a new order is redrawn"
    with pytest.raises(PreventUpdate):
        update_queue_page(state, QueueRequest(order="score"), view.key)
    # the order combines with the filters, the range and the pages
    identity = update_queue_page(state, QueueRequest(fraud_type="identity_theft", order="score"), None)
    assert _ids(identity) == ["i10", "i29"]
    recent = update_queue_page(state, QueueRequest(order="score"), None, {"range": "15m"})
    assert _ids(recent) == ["u25", "i29", "m20"]
    unknown = update_queue_page(state, QueueRequest(order="loudest"), None)
    assert _ids(unknown) == _ids(newest) and unknown.key == newest.key


def test_queue_pages_by_score(make_decision, make_alert) -> None:
    st = MonitorState(DecisionAggregator(120, clock=NOW.timestamp), AlertStore(100))
    for i in range(23):  # scores rise and fall: 0.50, 0.53, ... then repeat; ties newest first
        record = make_decision(
            f"t{i:02d}", minute=i, decision="review", fraud_type="identity_theft", score=0.5 + (i % 12) * 0.03
        )
        st.decisions.add(record)
        st.alerts.add(make_alert(record))
    pages = [update_queue_page(st, QueueRequest(page_size=10, page=p, order="score"), None) for p in range(3)]
    shown = [tx for page in pages for tx in _ids(page)]
    expected = sorted((f"t{i:02d}" for i in range(23)), key=lambda tx: (-(int(tx[1:]) % 12), -int(tx[1:])))
    assert shown == expected and shown[:3] == ["t11", "t22", "t10"]
    assert [p.page_info for p in pages][-1] == "21–23 of 23 alerts · page 3 of 3"
    assert (pages[0].newer_disabled, pages[2].older_disabled) == (True, True)


# --- the URL ---------------------------------------------------------------------------------------------
def test_url_carries_type_and_range() -> None:
    controls = ViewControls("Identity Theft", "custom", "2026-11-28 09:05", "")
    search = search_for(controls)
    assert search == "?type=Identity+Theft&range=custom&from=2026-11-28+09%3A05"
    assert controls_from_search(search) == controls
    assert search_for(ViewControls("All types", "24h")) == "?type=All+types&range=24h"
    assert controls_from_search("?type=All+types&range=forever") == ViewControls("All types", "all", "", "")
    # a shared link restores type and range; the controls then agree and nothing moves
    restored = sync_url("?type=All+types&range=1h", ViewControls("Unauthorized Transactions"), True)
    assert restored == (no_update, "All types", "1h", no_update, no_update)
    with pytest.raises(PreventUpdate):
        sync_url("?type=All+types&range=1h", ViewControls("All types", "1h", None, None), False)
    # back to a link without a range: the range goes back to all history
    assert sync_url("?type=All+types", ViewControls("All types", "1h"), True) == (
        no_update,
        no_update,
        "all",
        no_update,
        no_update,
    )
    moved = sync_url("?type=All+types", ViewControls("All types", "15m"), False)
    assert moved == ("?type=All+types&range=15m", no_update, no_update, no_update, no_update)


# --- reports over the range ---------------------------------------------------------------------------
def test_report_is_limited_to_the_range(state) -> None:
    download = export_report(state, "xlsx", None, now=NOW, range_data={"range": "15m"})

    workbook = openpyxl.load_workbook(io.BytesIO(base64.b64decode(download["content"])))
    summary = {row[0]: row[1] for row in workbook["Summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["Time range"] == "Last 15 min"
    assert summary["Transactions"] == 4
    assert summary["Period"] == "2026-11-28 09:20 to 2026-11-28 09:30 UTC"
    assert [row[0] for row in workbook["Alerts"].iter_rows(min_row=2, values_only=True)] == [
        "u25",
        "i29",
        "m20",
    ], "highest score first"


def test_pdf_report_names_the_range(state) -> None:
    download = export_report(
        state, "pdf", None, now=NOW, range_data={"range": "custom", "from": "2026-11-28 09:05"}
    )
    reader = PdfReader(io.BytesIO(base64.b64decode(download["content"])))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Time range: 2026-11-28 09:05 to now UTC" in text
    assert "Period: 2026-11-28 09:10 to 2026-11-28 09:30 UTC" in text
    assert "i10" in text and "u0" not in text, "only the alerts of the range"


_RECORDS = st.lists(
    st.tuples(
        st.integers(0, 59),  # minute
        st.sampled_from(["allow", "review", "block"]),
        st.sampled_from([*FRAUD_TYPES, None]),
        st.floats(0, 10_000, allow_nan=False),
        st.sampled_from(["EUR", "USD"]),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(records=_RECORDS, start=st.integers(0, 60), length=st.integers(1, 61))
def test_amounts_at_risk_match_a_plain_sum(records, start, length) -> None:
    """at_risk over a range equals summing the flagged records of the minutes in it by hand."""
    agg = DecisionAggregator(120)
    for i, (minute, decision, fraud_type, amount, currency) in enumerate(records):
        record = decision_record(
            f"t{i}", minute=minute, decision=decision, fraud_type=fraud_type, amount=amount, currency=currency
        )
        agg.add(record)
    rng = TimeRange(_t(start), _t(start + length))
    risk = agg.at_risk(rng)
    kept = [r for r in records if start <= r[0] < start + length and r[1] != "allow"]
    for fraud_type in [*FRAUD_TYPES, None]:
        mine = [r for r in kept if r[2] == fraud_type]
        figures = risk.by_type.get(fraud_type)
        if figures is None:
            assert fraud_type is None and not mine
            continue
        assert figures.alerted == len(mine)
        assert figures.blocked == sum(1 for r in mine if r[1] == "block")
        for currency in ("EUR", "USD"):
            alerted = sum(r[3] for r in mine if r[4] == currency)
            blocked = sum(r[3] for r in mine if r[4] == currency and r[1] == "block")
            assert figures.alerted_amount.get(currency, 0.0) == pytest.approx(alerted)
            assert figures.blocked_amount.get(currency, 0.0) == pytest.approx(blocked)
    assert risk.total.alerted == len(kept)
