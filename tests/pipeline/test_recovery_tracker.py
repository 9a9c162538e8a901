"""The recovery figures (pipeline/worker/recovery_progress.py) from observations of Faust's
recovery, without a broker: what is counted as restored and left, the rate, the lines logged."""

from __future__ import annotations

import time
from types import SimpleNamespace

from pipeline.worker.recovery_progress import RecoveryTracker, RecoveryWatch, done_line, progress_lines

TABLES = ("card-rows", "pending-labels")
TABLE_OF = {("c", 0): "card-rows", ("c", 1): "card-rows", ("p", 0): "pending-labels"}
HIGHWATERS = {("c", 0): 1000, ("c", 1): 500, ("p", 0): 2000}


def test_counts_from_where_the_recovery_started_reading() -> None:
    tracker = RecoveryTracker(TABLES)
    assert tracker.observe(0.0, False, None, {}, {}, {}).state == "waiting"
    # A worker that kept part of its state: it reads card partition 0 from offset 400.
    start = {("c", 0): 400, ("c", 1): -1, ("p", 0): -1}
    first = tracker.observe(1.0, True, 1.0, start, HIGHWATERS, TABLE_OF)
    assert (first.restored, first.total) == (0, 600 + 501 + 2001)
    later = tracker.observe(
        3.0, True, 1.0, {("c", 0): 700, ("c", 1): 99, ("p", 0): 999}, HIGHWATERS, TABLE_OF
    )
    cards, pending = later.tables
    assert (cards.table, cards.restored, cards.total, cards.remaining) == ("card-rows", 400, 1101, 701)
    assert (pending.restored, pending.remaining) == (1000, 1001)
    assert later.records_per_second == 700.0  # 1,400 records in 2 s
    assert later.seconds_left == 1702 / 700
    assert later.as_json()["tables"]["pending-labels"] == {"restored": 1000, "total": 2001, "remaining": 1001}
    lines = progress_lines(later)
    assert lines[0] == "table recovery: card-rows 400 of 1,101 records (36%), 200/s, about 4 s left"
    assert lines[-1].startswith("table recovery: all tables 1,400 of 3,102 records (45%) after 2 s, 700/s")

    done = tracker.observe(4.0, False, 1.0, {}, {}, {})
    assert done.state == "recovered" and done.remaining == 0 and done.restored == done.total == 3102
    assert done_line(done).startswith(
        "table recovery done: 3,102 records in 2.0 s (1,551/s): card-rows 1,101"
    )


def test_a_new_recovery_counts_afresh_and_a_partition_seen_late_counts_from_then() -> None:
    tracker = RecoveryTracker(TABLES)
    tracker.observe(0.0, True, 0.0, {("c", 0): 0}, {("c", 0): 1000}, TABLE_OF)
    tracker.observe(1.0, True, 0.0, {("c", 0): 500}, {("c", 0): 1000}, TABLE_OF)
    again = tracker.observe(2.0, True, 2.0, {("c", 0): 600, ("p", 0): 10}, {("c", 0): 1000}, TABLE_OF)
    assert (again.restored, again.total, again.records_per_second) == (0, 400, None)
    late = tracker.observe(
        3.0, True, 2.0, {("c", 0): 700, ("p", 0): 10}, {("c", 0): 1000, ("p", 0): 50}, TABLE_OF
    )
    assert (late.restored, late.total) == (100, 440)


def test_the_rate_is_over_the_last_ten_seconds() -> None:
    tracker = RecoveryTracker(("card-rows",))
    highwaters = {("c", 0): 100_000}
    for second in range(31):  # 1,000/s for 20 s, then 100/s
        offset = 1000 * min(second, 20) + 100 * max(0, second - 20)
        status = tracker.observe(float(second), True, 0.0, {("c", 0): offset}, highwaters, TABLE_OF)
    assert status.records_per_second == 100.0


def test_a_recovery_that_says_where_it_started_is_counted_even_when_over_between_two_looks() -> None:
    tracker = RecoveryTracker(TABLES)
    starts = {("c", 0): 100, ("p", 0): -1}
    before = tracker.observe(0.0, True, 0, {("c", 0): 100}, HIGHWATERS, TABLE_OF, starts={})
    assert before.state == "waiting"  # Faust's recovery runs, but the bulk one has not started
    done = tracker.observe(0.1, False, 1, {("c", 0): 1000, ("p", 0): 2000}, HIGHWATERS, TABLE_OF, starts)
    assert (done.state, done.run, done.restored, done.total) == ("recovered", 1, 900 + 2001, 2901)
    assert tracker.observe(0.2, False, 1, {("c", 0): 1000}, HIGHWATERS, TABLE_OF, starts) is done


def test_the_watch_looks_often_only_while_a_recovery_runs() -> None:
    """An idle worker's watch sleeps until the recovery service wakes it (it looked ten times a
    second, whatever happened: most of an idle worker's CPU)."""
    service = SimpleNamespace(
        in_recovery=False, run=0, read_from={}, active_highwaters={}, active_offsets={}, tp_to_table={},
        active_tps=set(),
    )  # fmt: skip
    looks: list[float] = []

    def recovery() -> SimpleNamespace:
        looks.append(time.monotonic())
        return service

    watch = RecoveryWatch(recovery, TABLES, str, log_seconds=60, interval=0.01, idle_interval=60)
    watch.start()
    try:
        time.sleep(0.3)
        assert looks == []  # no recovery yet: not a look
        service.in_recovery, service.run, service.read_from = True, 1, {("c", 0): -1}
        service.active_tps, service.active_highwaters = {("c", 0)}, {("c", 0): 999}
        service.active_offsets, service.tp_to_table = {("c", 0): 499}, {("c", 0): "card-rows"}
        watch.wake()  # the recovery service: a recovery started
        time.sleep(0.3)
        assert len(looks) >= 10 and watch.status.state == "recovering"
        assert watch.status.restored == 500
        service.in_recovery, service.active_offsets = False, {("c", 0): 999}
        watch.wake()  # it ended
        time.sleep(0.1)
        assert watch.status.state == "recovered" and watch.status.restored == 1000
        seen = len(looks)
        time.sleep(0.3)
        assert len(looks) == seen  # idle again
    finally:
        watch.stop()
