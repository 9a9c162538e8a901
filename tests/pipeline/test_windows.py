"""BucketedWindow: totals against a brute-force model of the documented bucket semantics."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.detection.windows import BucketedWindow
from tests.pipeline.factories import PROPERTY

WIDTHS = st.sampled_from([1, 5, 60, 300, 3600])
AMOUNTS = st.floats(min_value=0.01, max_value=10_000, allow_nan=False, allow_infinity=False)


def bucket(at: float, width: int) -> int:
    return math.floor(at / width)


def brute_force(events: list[tuple[float, float]], now: float, window: int, width: int) -> tuple[int, float]:
    """(count, sum) of the events whose bucket lies in (bucket(now) - window // width, bucket(now)]."""
    last = bucket(now, width)
    first = last - window // width
    chosen = [amount for at, amount in events if first < bucket(at, width) <= last]
    return len(chosen), math.fsum(chosen)


@st.composite
def window_cases(draw: st.DrawFn) -> tuple[int, int, int, list[tuple[float, float]], float]:
    """(width, horizon, window, events in any order, now) where no event the window covers can
    have been expired yet: the window starts no earlier than the oldest bucket still kept
    (``newest bucket - horizon // width``)."""
    width = draw(WIDTHS)
    slots = draw(st.integers(min_value=1, max_value=30))
    horizon = slots * width
    window = draw(st.integers(min_value=1, max_value=slots)) * width
    span = horizon * 3
    times = st.floats(min_value=0, max_value=span, allow_nan=False, allow_infinity=False)
    events = draw(st.lists(st.tuples(times, AMOUNTS), max_size=60))
    newest = max((bucket(at, width) for at, _ in events), default=0)
    lowest_now_bucket = newest - (horizon - window) // width
    now_bucket = draw(st.integers(min_value=lowest_now_bucket, max_value=lowest_now_bucket + 2 * slots + 2))
    offset = draw(st.floats(min_value=0, max_value=width, exclude_max=True, allow_nan=False))
    return width, horizon, window, events, now_bucket * width + offset


@PROPERTY
@given(window_cases())
def test_totals_match_brute_force(case: tuple[int, int, int, list[tuple[float, float]], float]) -> None:
    width, horizon, window, events, now = case
    counter = BucketedWindow(width, horizon)
    for at, amount in events:
        counter.add(at, amount)
    count, total = counter.totals(now, window)
    expected_count, expected_total = brute_force(events, now, window, width)
    assert count == expected_count
    assert total == pytest.approx(expected_total, rel=1e-9, abs=1e-6)


@PROPERTY
@given(
    width=WIDTHS,
    slots=st.integers(min_value=1, max_value=30),
    steps=st.lists(st.tuples(st.floats(0, 5, allow_nan=False), AMOUNTS), max_size=80),
)
def test_totals_match_brute_force_for_in_order_streams_at_every_step(
    width: int, slots: int, steps: list[tuple[float, float]]
) -> None:
    """The way CardState uses it: query at the event's time, then add it; times non-decreasing."""
    horizon = slots * width
    counter = BucketedWindow(width, horizon)
    seen: list[tuple[float, float]] = []
    at = 1_000.0 * width
    for gap, amount in steps:
        at += gap * width
        for window in {width, horizon, (slots // 2 or 1) * width}:
            count, total = counter.totals(at, window)
            expected_count, expected_total = brute_force(seen, at, window, width)
            assert count == expected_count
            assert total == pytest.approx(expected_total, rel=1e-9, abs=1e-6)
        counter.add(at, amount)
        seen.append((at, amount))


def test_window_boundaries_are_whole_buckets() -> None:
    counter = BucketedWindow(60, 600)
    counter.add(0.0, 1.0)  # bucket 0
    counter.add(59.9, 2.0)  # bucket 0
    counter.add(60.0, 4.0)  # bucket 1
    counter.add(179.0, 8.0)  # bucket 2
    # now=179 is in bucket 2; a 60 s window is bucket 2 only, 120 s is buckets 1..2.
    assert counter.totals(179.0, 60) == (1.0, 8.0)
    assert counter.totals(179.0, 120) == (2.0, 12.0)
    assert counter.totals(179.0, 180) == (4.0, 15.0)
    # Events after ``now`` are not counted.
    assert counter.totals(59.0, 600) == (2.0, 3.0)
    # The window slides one bucket at a time: at 180 s (bucket 3) the 180 s window drops bucket 0.
    assert counter.totals(180.0, 180) == (2.0, 12.0)


@PROPERTY
@given(
    width=WIDTHS,
    slots=st.integers(min_value=1, max_value=6),
    order=st.permutations(range(16)),
    offset=st.floats(0, 1, exclude_max=True),
)
def test_bucket_count_is_bounded_by_horizon_in_any_order(
    width: int, slots: int, order: list[int], offset: float
) -> None:
    """Module docstring: "Memory is bounded by horizon // width buckets whatever the traffic".
    One event in each of 16 buckets, arriving in any order."""
    counter = BucketedWindow(width, slots * width)
    for index in order:
        counter.add((index + offset) * width, 1.0)
        assert len(counter.buckets) <= slots + 1, f"{len(counter.buckets)} buckets after {order}"


@PROPERTY
@given(
    width=WIDTHS,
    slots=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(0, 5, allow_nan=False), max_size=120),
)
def test_bucket_count_is_bounded_for_in_order_streams(width: int, slots: int, gaps: list[float]) -> None:
    counter = BucketedWindow(width, slots * width)
    at = 0.0
    for gap in gaps:
        at += gap * width
        counter.add(at, 1.0)
        assert len(counter.buckets) <= slots + 1
        # and only buckets that can still be inside the horizon are kept
        assert min(counter.buckets) > bucket(at, width) - slots


def test_late_events_in_decreasing_time_order_do_not_grow_memory_without_bound() -> None:
    """Regression for the bound above: one event per bucket, newest first (a replayed backlog
    or late arrivals). The horizon is 2 buckets, so at most 3 buckets should be kept."""
    counter = BucketedWindow(1, 2)
    for at in range(1000, 0, -1):
        counter.add(float(at), 1.0)
    assert len(counter.buckets) <= 3, f"{len(counter.buckets)} buckets kept for a 2-bucket horizon"


@PROPERTY
@given(
    width=WIDTHS,
    slots=st.integers(min_value=1, max_value=20),
    events=st.lists(st.tuples(st.floats(0, 10_000, allow_nan=False), AMOUNTS), max_size=60),
    now=st.floats(0, 12_000, allow_nan=False),
)
def test_state_round_trips_through_json(
    width: int, slots: int, events: list[tuple[float, float]], now: float
) -> None:
    horizon = slots * width
    counter = BucketedWindow(width, horizon)
    for at, amount in events:
        counter.add(at * width / 10, amount)
    state = orjson.loads(orjson.dumps(counter.to_state()))
    restored = BucketedWindow.from_state(width, horizon, state)
    assert restored.buckets == counter.buckets
    assert restored.to_state() == counter.to_state()
    for window in range(width, horizon + 1, width):
        assert restored.totals(now * width / 10, window) == counter.totals(now * width / 10, window)


def test_from_state_of_nothing_is_empty() -> None:
    assert BucketedWindow.from_state(5, 10, None).buckets == {}
    assert BucketedWindow.from_state(5, 10, []).totals(100.0, 10) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("width", "horizon"),
    [(0, 10), (-5, 10), (10, 5), (10, 25), (10, 0), (7, 20)],
)
def test_invalid_width_or_horizon_raises(width: int, horizon: int) -> None:
    with pytest.raises(ValueError, match="multiple of width"):
        BucketedWindow(width, horizon)


@pytest.mark.parametrize("window", [1, 299, 301, 86_400 + 300, 2 * 86_400])
def test_invalid_window_raises(window: int) -> None:
    counter = BucketedWindow(300, 86_400)
    with pytest.raises(ValueError, match=f"window {window}s must be a multiple of 300s up to 86400s"):
        counter.totals(0.0, window)


@PROPERTY
@given(
    width=WIDTHS,
    slots=st.integers(min_value=1, max_value=30),
    steps=st.lists(
        st.tuples(st.floats(-3, 5, allow_nan=False), st.floats(0, 4, allow_nan=False), AMOUNTS), max_size=80
    ),
)
def test_running_counts_equal_the_scan_in_any_order(
    width: int, slots: int, steps: list[tuple[float, float, float]]
) -> None:
    """``count`` (running counts, kept up to date by ``add``) equals the scan's count exactly, for
    events and queries in any order: late events, queries later than the newest event and before it."""
    horizon = slots * width
    counter = BucketedWindow(width, horizon)
    at = 1_000.0 * width
    windows = sorted({width, horizon, (slots // 2 or 1) * width})
    for event_gap, query_gap, amount in steps:
        at += event_gap * width
        counter.add(at, amount)
        now = at + query_gap * width
        for window in windows:
            assert counter.count(now, window) == counter.totals(now, window)[0]
            assert counter.count(now - width, window) == counter.totals(now - width, window)[0]
