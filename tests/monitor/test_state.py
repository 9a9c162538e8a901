"""The monitor's stores (monitor/state/): exact counts, deduplication, bounds, threads, and the one
timestamp rule they share with the pipeline."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.state import MonitorState
from monitor.state.alerts import AlertFilter, AlertStore
from monitor.state.decisions import DecisionAggregator, floor_minute
from monitor.state.records import InvalidRecordError, record_time
from monitor.timerange import TimeRange
from pipeline.config import FRAUD_TYPES, load_settings
from pipeline.detection.vocabulary import parse_timestamp
from tests.monitor.conftest import alert_record, decision_record


def fixed_clock(ts: datetime):
    return lambda: ts.timestamp()


def feed_minute_with_two_unauthorized(agg: DecisionAggregator, make_decision, minute: int = 0) -> None:
    """10 decisions: 2 flagged unauthorized, 1 flagged identity theft, 7 allowed."""
    records = [
        make_decision(f"m{minute}-u1", minute=minute, second=1, decision="review", fraud_type=FRAUD_TYPES[0]),
        make_decision(f"m{minute}-u2", minute=minute, second=2, decision="block", fraud_type=FRAUD_TYPES[0]),
        make_decision(f"m{minute}-i1", minute=minute, second=3, decision="review", fraud_type=FRAUD_TYPES[1]),
    ]
    records += [make_decision(f"m{minute}-a{i}", minute=minute, second=10 + i) for i in range(7)]
    for record in records:
        assert agg.add(record) == "added"


def test_rate_per_type_per_minute_is_exact(make_decision, base_minute) -> None:
    agg = DecisionAggregator(60)
    feed_minute_with_two_unauthorized(agg, make_decision)

    minutes, rates = agg.fraud_rate_series("unauthorized_transactions")
    assert minutes == [base_minute]
    assert rates == [pytest.approx(0.2)]
    assert agg.fraud_rate_series("identity_theft").rates == [pytest.approx(0.1)]
    assert agg.fraud_rate_series("malicious_behavior").rates == [0.0]

    [stats] = agg.minutes()
    assert stats.total == 10
    assert stats.flagged == 3
    assert dict(stats.outcomes) == {"allow": 7, "review": 2, "block": 1}
    assert dict(stats.flagged_by_type) == {
        "unauthorized_transactions": 2,
        "identity_theft": 1,
        "malicious_behavior": 0,
    }
    assert dict(stats.blocked_amount) == {"EUR": 10.0}


def test_minutes_are_utc_minutes_of_event_time(make_decision) -> None:
    agg = DecisionAggregator(60)
    record = make_decision("tx-1")
    record["event_time"] = "2026-11-28T10:00:59.999+01:00"  # 09:00:59.999 UTC
    agg.add(record)
    record = make_decision("tx-2", decision="block", fraud_type="malicious_behavior")
    record["event_time"] = "2026-11-28T09:01:00Z"
    agg.add(record)
    series = agg.fraud_rate_series("malicious_behavior")
    assert series.minutes == [
        datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
        datetime(2026, 11, 28, 9, 1, tzinfo=UTC),
    ]
    assert series.rates == [0.0, 1.0]


def test_gaps_between_minutes_are_zero_and_since_filters(make_decision, base_minute) -> None:
    agg = DecisionAggregator(60)
    agg.add(make_decision("a", minute=0, decision="block", fraud_type="identity_theft"))
    agg.add(make_decision("b", minute=3, decision="review", fraud_type="identity_theft"))
    agg.add(make_decision("c", minute=3))
    series = agg.fraud_rate_series("identity_theft")
    assert series.minutes == [base_minute + timedelta(minutes=m) for m in range(4)]
    assert series.rates == [1.0, 0.0, 0.0, 0.5]
    since = agg.fraud_rate_series("identity_theft", since=base_minute + timedelta(minutes=1, seconds=30))
    assert since.minutes == [base_minute + timedelta(minutes=3)]  # from the first minute with data
    assert since.rates == [0.5]
    assert agg.fraud_rate_series("identity_theft", since=base_minute).rates == [1.0, 0.0, 0.0, 0.5]


def test_duplicates_are_counted_once(make_decision) -> None:
    agg = DecisionAggregator(60)
    record = make_decision("tx-dup", decision="block", fraud_type="unauthorized_transactions", amount=99.5)
    assert agg.add(record) == "added"
    assert agg.add(dict(record)) == "duplicate"
    version = agg.version
    assert agg.add(record) == "duplicate"
    assert agg.version == version
    [stats] = agg.minutes()
    assert stats.total == 1
    assert stats.flagged_by_type["unauthorized_transactions"] == 1
    assert stats.blocked_amount == {"EUR": 99.5}
    assert agg.transaction_count == 1


def test_allow_with_a_fraud_type_is_not_flagged(make_decision) -> None:
    agg = DecisionAggregator(60)
    agg.add(make_decision("tx-1", decision="allow", fraud_type="malicious_behavior"))
    agg.add(make_decision("tx-2"))
    assert agg.fraud_rate_series("malicious_behavior").rates == [0.0]
    headline = agg.headline()
    assert headline.flagged == 0
    assert headline.flagged_by_type["malicious_behavior"] == 0
    assert headline.alert_rate == 0.0


def test_flagged_without_type_counts_as_flagged_but_in_no_type(make_decision) -> None:
    agg = DecisionAggregator(60)
    agg.add(make_decision("tx-1", decision="review", fraud_type=None))
    [stats] = agg.minutes()
    assert stats.flagged == 1
    assert sum(stats.flagged_by_type.values()) == 0


def test_history_bound_drops_old_minutes(make_decision, base_minute) -> None:
    agg = DecisionAggregator(3)
    for minute in range(5):
        agg.add(make_decision(f"tx-{minute}", minute=minute))
    assert [s.minute for s in agg.minutes()] == [base_minute + timedelta(minutes=m) for m in (2, 3, 4)]
    assert agg.transaction_count == 3
    # A redelivery of a dropped minute's transaction is no new count: a duplicate while its id is
    # remembered, older than the history otherwise.
    assert agg.add(make_decision("tx-0", minute=0)) == "duplicate"
    assert agg.add(make_decision("tx-never-seen", minute=0)) == "too_old"
    assert agg.add(make_decision("tx-late", minute=1)) == "too_old"
    assert agg.add(make_decision("tx-late", minute=2)) == "added"
    assert agg.headline().total == 4


def test_headline_figures(make_decision, base_minute) -> None:
    now = base_minute + timedelta(minutes=1, seconds=30)
    agg = DecisionAggregator(60, clock=fixed_clock(now))
    feed_minute_with_two_unauthorized(agg, make_decision, minute=0)  # 09:00:01..09:00:16
    agg.add(make_decision("late-1", minute=1, second=5, decision="block", fraud_type="malicious_behavior"))
    agg.add(make_decision("late-2", minute=1, second=6, currency="USD", amount=3.0, decision="block"))
    h = agg.headline()
    assert h.total == 12
    assert h.flagged == 5
    assert dict(h.outcomes) == {"allow": 7, "review": 2, "block": 3}
    assert h.alert_rate == pytest.approx(5 / 12)
    assert dict(h.blocked_amount) == {"EUR": 20.0, "USD": 3.0}
    # Only the two decided at 09:01 fall in (now - 60 s, now]; minute 0 ended by 09:00:16.
    assert h.tx_per_second == pytest.approx(2 / 60)
    assert h.last_decision_at == base_minute + timedelta(minutes=1, seconds=6, milliseconds=20)
    assert h.seconds_since_last_decision == pytest.approx(23.98)
    assert h.as_of == now


def test_tx_per_second_ignores_replayed_history(make_decision, base_minute) -> None:
    agg = DecisionAggregator(60, clock=fixed_clock(base_minute + timedelta(hours=2)))
    feed_minute_with_two_unauthorized(agg, make_decision)
    h = agg.headline()
    assert h.tx_per_second == 0.0
    assert h.total == 10
    assert h.seconds_since_last_decision is not None and h.seconds_since_last_decision > 7000


def test_empty_aggregator(base_minute) -> None:
    agg = DecisionAggregator(10, clock=fixed_clock(base_minute))
    assert agg.fraud_rate_series("identity_theft") == ([], [])
    h = agg.headline()
    assert (h.total, h.flagged, h.alert_rate, h.tx_per_second) == (0, 0, 0.0, 0.0)
    assert h.last_decision_at is None and h.seconds_since_last_decision is None


@pytest.mark.parametrize(
    "change",
    [
        {"transaction_id": ""},
        {"transaction_id": 7},
        {"event_time": "yesterday"},
        {"event_time": "2026-11-28T09:00:00"},  # no offset
        {"decided_at": None},
        {"decision": "deny"},
        {"fraud_type": "phishing"},
        {"amount": "12"},
        {"amount": True},
        {"amount": -1},
        {"amount": float("nan")},
    ],
)
def test_invalid_decisions_are_rejected(make_decision, change) -> None:
    agg = DecisionAggregator(10)
    with pytest.raises(InvalidRecordError):
        agg.add({**make_decision("tx-1"), **change})
    assert agg.transaction_count == 0


def test_not_a_mapping_is_rejected() -> None:
    with pytest.raises(InvalidRecordError):
        DecisionAggregator(10).add(["not", "a", "dict"])  # type: ignore[arg-type]


def test_unknown_fraud_type_in_query_raises() -> None:
    with pytest.raises(ValueError, match="unknown fraud type"):
        DecisionAggregator(10).fraud_rate_series("Unauthorized Transactions")


def test_thread_safety_smoke(make_decision) -> None:
    agg = DecisionAggregator(60)
    per_thread, threads_n = 500, 6
    types = [*FRAUD_TYPES, None]

    def writer(t: int) -> None:
        for i in range(per_thread):
            fraud_type = types[i % 4]
            decision = "allow" if fraud_type is None else ("review" if i % 2 else "block")
            # every thread also re-sends the ids of thread 0: duplicates across threads
            tx_id = f"t{t}-{i}" if i % 5 else f"t0-{i}"
            agg.add(
                make_decision(tx_id, minute=i % 7, second=i % 60, decision=decision, fraud_type=fraud_type)
            )

    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                for code in FRAUD_TYPES:
                    assert all(0.0 <= r <= 1.0 for r in agg.fraud_rate_series(code).rates)
                agg.headline()
            except BaseException as exc:  # surfaced below
                errors.append(exc)
                return

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(t,)) for t in range(threads_n)]
    for th in readers + writers:
        th.start()
    for th in writers:
        th.join()
    stop.set()
    for th in readers:
        th.join()
    assert not errors
    distinct = per_thread + (threads_n - 1) * (per_thread - per_thread // 5)
    assert agg.transaction_count == distinct
    assert agg.headline().total == distinct
    assert sum(s.total for s in agg.minutes()) == distinct


decision_strategy = st.tuples(
    st.text(alphabet="abcdef", min_size=1, max_size=3),  # small id space: many duplicates
    st.integers(min_value=0, max_value=9),  # minute
    st.sampled_from(["allow", "review", "block"]),
    st.sampled_from([*FRAUD_TYPES, None]),
    st.floats(min_value=0.01, max_value=1e6, allow_nan=False),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(decision_strategy, max_size=80), st.integers(min_value=1, max_value=12))
def test_rates_stay_in_unit_interval_and_flagged_within_total(make_decision, records, history) -> None:
    agg = DecisionAggregator(history)
    for tx_id, minute, decision, fraud_type, amount in records:
        agg.add(make_decision(tx_id, minute=minute, decision=decision, fraud_type=fraud_type, amount=amount))
    for stats in agg.minutes():
        assert sum(stats.flagged_by_type.values()) <= stats.flagged <= stats.total
        assert sum(stats.outcomes.values()) == stats.total
    for code in FRAUD_TYPES:
        series = agg.fraud_rate_series(code)
        assert len(series.minutes) == len(series.rates) <= history
        assert all(0.0 <= rate <= 1.0 for rate in series.rates)
    h = agg.headline()
    assert sum(h.flagged_by_type.values()) <= h.flagged <= h.total
    assert h.total == agg.transaction_count <= len({r[0] for r in records})
    assert 0.0 <= h.alert_rate <= 1.0


# --- alert store ---------------------------------------------------------------------------------
def test_alert_store_newest_first_deduplicated(make_decision, make_alert) -> None:
    store = AlertStore(10)
    alerts = [
        make_alert(make_decision(f"tx-{i}", second=s, decision="block", fraud_type="identity_theft"))
        for i, s in enumerate([5, 1, 9, 3])
    ]
    for alert in alerts:
        assert store.add(alert) == "added"
    assert store.add(dict(alerts[0])) == "duplicate"
    assert len(store) == 4
    assert [a["alert_id"] for a in store.newest()] == ["tx-2", "tx-0", "tx-3", "tx-1"]
    assert [a["alert_id"] for a in store.newest(2)] == ["tx-2", "tx-0"]
    assert store.newest(0) == []


def test_alert_store_is_bounded_and_keeps_the_newest(make_decision, make_alert) -> None:
    store = AlertStore(3)
    for i in range(6):
        store.add(
            make_alert(make_decision(f"tx-{i}", second=i, decision="review", fraud_type="identity_theft"))
        )
    assert [a["alert_id"] for a in store.newest()] == ["tx-5", "tx-4", "tx-3"]
    old = make_alert(make_decision("tx-old", second=0.5, decision="review", fraud_type="identity_theft"))
    assert store.add(old) == "too_old"
    assert len(store) == 3


def _scored_store(make_decision, make_alert) -> AlertStore:
    """a..f one second apart (f newest): scores 0.6, 0.9, 0.6, 0.99, none, 0.9; b and d blocked."""
    store = AlertStore(10)
    scores = {"a": 0.6, "b": 0.9, "c": 0.6, "d": 0.99, "e": None, "f": 0.9}
    for second, (tx, score) in enumerate(scores.items(), start=1):
        decision = "block" if tx in "bd" else "review"
        fraud_type = "identity_theft" if tx in "abc" else "malicious_behavior"
        alert = make_alert(make_decision(tx, second=second, decision=decision, fraud_type=fraud_type))
        alert["score"] = score
        if score is None:
            del alert["score"]
        store.add(alert)
    return store


def _tx(page) -> list[str]:
    return [a["transaction_id"] for a in page.alerts]


def test_alert_store_query_by_score_highest_first_ties_newest_first(make_decision, make_alert) -> None:
    store = _scored_store(make_decision, make_alert)
    assert _tx(store.query()) == ["f", "e", "d", "c", "b", "a"], "newest first by default"
    by_score = store.query(AlertFilter(order="score"))
    assert (_tx(by_score), by_score.total) == (["d", "f", "b", "c", "a", "e"], 6), "no score last"
    assert _tx(store.query(AlertFilter(order="newest"))) == _tx(store.query())
    assert store.newest()[0]["transaction_id"] == "f", "the store itself stays newest first"


def test_alert_store_pages_by_score(make_decision, make_alert) -> None:
    store = _scored_store(make_decision, make_alert)
    by_score = AlertFilter(order="score")
    pages = [store.query(by_score, offset=offset, limit=2) for offset in (0, 2, 4)]
    assert [_tx(p) for p in pages] == [["d", "f"], ["b", "c"], ["a", "e"]]
    assert {p.total for p in pages} == {6}
    assert store.query(by_score, limit=0) == ([], 6)
    assert store.query(by_score, offset=6, limit=2) == ([], 6)
    assert _tx(store.query(by_score, offset=5)) == ["e"]


def test_alert_store_filters_then_orders_by_score(make_decision, make_alert, base_minute) -> None:
    store = _scored_store(make_decision, make_alert)
    assert _tx(store.query(AlertFilter(decision="block", order="score"))) == ["d", "b"]
    assert _tx(store.query(AlertFilter(min_score=0.7, order="score"))) == ["d", "f", "b"]
    identity = store.query(AlertFilter(fraud_type="identity_theft", order="score"), limit=1)
    assert (_tx(identity), identity.total) == (["b"], 3)
    window = TimeRange(base_minute + timedelta(seconds=3), base_minute + timedelta(seconds=6))
    assert _tx(store.query(AlertFilter(within=window, order="score"))) == ["d", "c", "e"]


def test_alert_filter_refuses_an_unknown_order() -> None:
    with pytest.raises(ValueError, match="order must be one of"):
        AlertFilter(order="oldest")  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.sampled_from([0.05, 0.3, 0.5, 0.7, 0.95, None]), min_size=0, max_size=30),
    size=st.integers(min_value=1, max_value=7),
)
def test_alert_store_score_pages_are_the_newest_first_list_sorted_by_score(scores, size) -> None:
    store = AlertStore(100)
    for i, score in enumerate(scores):
        alert = alert_record(
            decision_record(f"t{i:02d}", second=i, decision="review", fraud_type="identity_theft")
        )
        alert["score"] = score
        store.add(alert)
    newest = store.query().alerts
    expected = sorted(newest, key=lambda a: (a["score"] is None, -(a["score"] or 0.0)))
    by_score = AlertFilter(order="score")
    pages = [store.query(by_score, offset=o, limit=size) for o in range(0, len(scores) + size, size)]
    assert [a for p in pages for a in p.alerts] == expected
    assert all(p.total == len(scores) for p in pages)


@pytest.mark.parametrize("change", [{"alert_id": ""}, {"alert_id": None}, {"event_time": "soon"}])
def test_alert_store_rejects_invalid(make_decision, make_alert, change) -> None:
    alert = make_alert(make_decision("tx-1", decision="review", fraud_type="identity_theft"))
    with pytest.raises(InvalidRecordError):
        AlertStore(10).add({**alert, **change})


def test_state_from_settings_uses_monitor_bounds() -> None:
    state = MonitorState.from_settings(load_settings(monitor_history_minutes=5, monitor_max_alerts=10))
    assert state.decisions.transaction_count == 0
    assert len(state.alerts) == 0


def test_floor_minute() -> None:
    ts = datetime(2026, 1, 1, 12, 34, 56, 789, tzinfo=UTC)
    assert floor_minute(ts) == datetime(2026, 1, 1, 12, 34, tzinfo=UTC)


# --- timestamps: the pipeline's rule ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T10:00:59.999+01:00", datetime(2026, 11, 28, 9, 0, 59, 999000, tzinfo=UTC)),
        ("2026-11-28t09:00:00.123z", datetime(2026, 11, 28, 9, 0, 0, 123000, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2017, 1, 1, tzinfo=UTC)),  # a leap second
        ("2026-11-28T09:00:00.000001Z", datetime(2026, 11, 28, 9, 0, 0, 1, tzinfo=UTC)),
    ],
)
def test_record_times_follow_the_pipelines_parser(text: str, expected: datetime) -> None:
    parsed = record_time(text, "event_time")
    assert parsed == expected and parsed.tzinfo is UTC
    assert parsed.timestamp() == parse_timestamp(text)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "event_time: expected an ISO-8601 string, got NoneType"),
        ("yesterday", "event_time: not an ISO-8601 timestamp with a UTC offset: 'yesterday'"),
        ("2026-11-28T09:00:00", "event_time: not an ISO-8601 timestamp with a UTC offset"),
        ("0001-01-01T00:30:00+01:00", "event_time: not an ISO-8601 timestamp"),  # before year 1 in UTC
    ],
)
def test_bad_record_times_name_the_field(value, message: str) -> None:
    with pytest.raises(InvalidRecordError, match=message.replace("(", r"\(").replace(")", r"\)")):
        record_time(value, "event_time")


def test_a_decision_with_a_lower_case_timestamp_is_counted(make_decision, base_minute) -> None:
    agg = DecisionAggregator(60)
    record = make_decision("tx-1", decision="block", fraud_type="identity_theft")
    record["event_time"] = record["event_time"].replace("T", "t").replace("+00:00", "z")
    assert agg.add(record) == "added"
    assert agg.fraud_rate_series("identity_theft").minutes == [base_minute]


def test_a_replayed_decision_within_the_dedup_window_counts_once(make_decision) -> None:
    agg = DecisionAggregator(24 * 60, dedup_minutes=10)
    assert agg.add(make_decision("tx-replayed", minute=0)) == "added"
    for minute in range(1, 10):  # traffic moves decision time on by 9 minutes
        agg.add(make_decision(f"tx-{minute}", minute=minute))
    assert agg.add(make_decision("tx-replayed", minute=0, second=30)) == "duplicate"
    assert agg.transaction_count == 10


def test_ids_older_than_the_dedup_window_are_forgotten(make_decision) -> None:
    agg = DecisionAggregator(24 * 60, dedup_minutes=10)
    for minute in range(120):
        for index in range(20):
            agg.add(make_decision(f"tx-{minute}-{index}", minute=minute, second=index))
    assert agg.remembered_ids == 10 * 20  # the last 10 minutes of decisions
    assert agg.transaction_count == 120 * 20  # the history keeps every minute's counts
    assert agg.add(make_decision("tx-0-0", minute=0)) == "added"  # too late to be recognised


def test_memory_stays_flat_while_the_history_fills(make_decision) -> None:
    """Two hours of 30 decisions a minute into a 24-hour history: the second hour adds 60 minutes
    of counts, not an entry per transaction (about 115 bytes each when ids were kept per minute)."""
    import tracemalloc

    agg = DecisionAggregator(24 * 60, dedup_minutes=15)

    def feed(first_minute: int) -> None:
        for minute in range(first_minute, first_minute + 60):
            for index in range(30):
                outcome = "review" if index % 10 == 0 else "allow"
                fraud_type = FRAUD_TYPES[index % 3] if outcome == "review" else None
                agg.add(make_decision(f"tx-{minute:04d}-{index:03d}-padding", minute=minute,
                                      second=index, decision=outcome, fraud_type=fraud_type))  # fmt: skip

    tracemalloc.start()
    try:
        feed(0)
        after_first_hour = tracemalloc.get_traced_memory()[0]
        feed(60)
        growth = tracemalloc.get_traced_memory()[0] - after_first_hour
    finally:
        tracemalloc.stop()
    assert agg.transaction_count == 2 * 60 * 30
    per_minute = growth / 60
    assert per_minute < 2_500, f"the history grew {per_minute:,.0f} bytes per minute of 30 decisions"
