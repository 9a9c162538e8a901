"""Ring (a sliding window in a state row): totals against a brute-force model of the documented
bucket semantics, and against the reference BucketedWindow in any order of events and queries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.detection.rows import RowLayout
from tests.pipeline.factories import PROPERTY
from tests.pipeline.reference.bucketed_window import BucketedWindow


class RingWindow:
    """One row holding one Ring, behind BucketedWindow's API (a batch of one each call)."""

    def __init__(self, width: int, horizon: int) -> None:
        layout = RowLayout()
        self.ring = layout.ring(width, horizon)
        self.rows = layout.empty()[None, :]

    def add(self, at: float, amount: float) -> None:
        self.ring.add(self.rows, np.array([at]), np.array([amount]))

    def totals(self, now: float, window: int) -> tuple[float, float]:
        count, total = self.ring.totals(self.rows, np.array([now]), window)
        return float(count[0]), float(total[0])

    def count(self, now: float, window: int) -> float:
        return float(self.ring.count(self.rows, np.array([now]), window)[0])


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
    counter = RingWindow(width, horizon)
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
    """The way a card uses it: query at the event's time, then add it; times non-decreasing."""
    horizon = slots * width
    counter = RingWindow(width, horizon)
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
    counter = RingWindow(60, 600)
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


def test_late_events_older_than_the_horizon_are_dropped() -> None:
    counter = RingWindow(1, 2)
    for at in range(1000, 0, -1):  # newest first: a replayed backlog or late arrivals
        counter.add(float(at), 1.0)
    assert counter.totals(1000.0, 2) == (2.0, 2.0), "buckets 999 and 1000; the rest were too late"


@pytest.mark.parametrize(
    ("width", "horizon"),
    [(0, 10), (-5, 10), (10, 5), (10, 25), (10, 0), (7, 20)],
)
def test_invalid_width_or_horizon_raises(width: int, horizon: int) -> None:
    with pytest.raises(ValueError, match="multiple of width"):
        RingWindow(width, horizon)


@pytest.mark.parametrize("window", [1, 299, 301, 86_400 + 300, 2 * 86_400])
def test_invalid_window_raises(window: int) -> None:
    counter = RingWindow(300, 86_400)
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
def test_the_ring_counts_as_the_reference_window_in_any_order(
    width: int, slots: int, steps: list[tuple[float, float, float]]
) -> None:
    """Events and queries in any order (late events, queries later than the newest event and
    before it): counts exactly the reference's, sums within a few units in the last place."""
    horizon = slots * width
    ring, reference = RingWindow(width, horizon), BucketedWindow(width, horizon)
    at = 1_000.0 * width
    windows = sorted({width, horizon, (slots // 2 or 1) * width})
    for event_gap, query_gap, amount in steps:
        at += event_gap * width
        ring.add(at, amount)
        reference.add(at, amount)
        now = at + query_gap * width
        for window in windows:
            for moment in (now, now - width):
                count, total = ring.totals(moment, window)
                expected_count, expected_total = reference.totals(moment, window)
                assert count == expected_count == ring.count(moment, window)
                assert total == pytest.approx(expected_total, rel=1e-12, abs=1e-9)
