"""The arithmetic of `fraud soak` (pipeline/tools/soak/figures.py): its fault schedule, the
accounting of ids, the judgement of memory over time and the chart."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from pipeline.tools.soak.figures import (
    BROKER_RESTART,
    KILL,
    Fault,
    Marker,
    Sample,
    all_flat,
    fault_plan,
    id_accounting,
    latency_figures,
    line_chart_svg,
    memory_summary,
    next_tick,
    parts_lines,
    rss_lines,
)
from pipeline.tools.soak.report import write_report


def test_an_hour_kills_every_five_minutes_and_restarts_the_broker_once_between_two_kills() -> None:
    plan = fault_plan(60, 5, restart_broker=True)
    kills = [fault.at / 60 for fault in plan if fault.action == KILL]
    assert kills == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55]
    assert [fault for fault in plan if fault.action == BROKER_RESTART] == [Fault(32.5 * 60, BROKER_RESTART)]
    assert [fault.at for fault in plan] == sorted(fault.at for fault in plan)


def test_the_short_soak_has_one_kill_and_one_broker_restart() -> None:
    plan = fault_plan(2, 1, restart_broker=True)
    assert plan == [Fault(60, KILL), Fault(90, BROKER_RESTART)]
    assert fault_plan(2, 1, restart_broker=False) == [Fault(60, KILL)]


def test_no_plan_without_a_duration() -> None:
    with pytest.raises(ValueError):
        fault_plan(0, 5, restart_broker=True)


def test_ids_missing_duplicated_and_foreign_are_told_apart() -> None:
    figures = id_accounting(["a", "b", "c", "d"], ["a", "b", "b", "d", "x"])
    assert figures["produced"] == 4
    assert figures["decided_distinct"] == 3
    assert figures["missing"] == 1 and figures["missing_first"] == ["c"]
    assert figures["duplicate_decisions"] == 1
    assert figures["decided_not_produced"] == 1


def test_latency_figures_include_the_worst_minute() -> None:
    calm = [(second, 0.1) for second in range(60)]
    stormy = [(60 + second, 0.1 if second < 50 else 20.0) for second in range(60)]
    figures = latency_figures(calm + stormy)
    assert figures["p50_s"] == pytest.approx(0.1)
    assert figures["max_s"] == 20.0
    assert figures["worst_minute_p99_s"] == pytest.approx(20.0)
    assert latency_figures([]) == {}


def _series(role: str, pid: int, start_mb: float, per_minute_mb: float, minutes: int = 30) -> list[Sample]:
    return [
        Sample(at=minute * 60.0, role=role, pid=pid, rss_mb=start_mb + per_minute_mb * minute,
               cpu_seconds=minute * 30.0)
        for minute in range(minutes + 1)
    ]  # fmt: skip


def test_memory_that_stops_growing_after_the_warm_up_is_flat() -> None:
    warming = [Sample(s.at, s.role, s.pid, min(s.rss_mb, 400.0), s.cpu_seconds)
               for s in _series("monitor", 10, 100, 60)]  # fmt: skip
    summary = memory_summary(warming, warmup_seconds=600)
    [row] = summary["monitor"]
    assert row["after_warmup"]["flat"], row
    assert row["first_mb"] == 100 and row["peak_mb"] == 400
    assert row["cpu_cores"] == pytest.approx(0.5)
    assert all_flat(summary)


def test_memory_that_keeps_growing_is_not_flat() -> None:
    summary = memory_summary(_series("worker-1", 11, 300, 5), warmup_seconds=600)
    [row] = summary["worker-1"]
    assert not row["after_warmup"]["flat"]
    assert row["after_warmup"]["growth_mb"] > 32
    assert not all_flat(summary)


def test_each_process_of_a_role_is_judged_alone_and_short_lives_are_not_judged() -> None:
    samples = _series("worker-2", 20, 300, 0, minutes=5) + [
        Sample(s.at + 360, s.role, 21, s.rss_mb, s.cpu_seconds) for s in _series("worker-2", 21, 300, 0)
    ]
    rows = memory_summary(samples, warmup_seconds=600)["worker-2"]
    assert [row["pid"] for row in rows] == [20, 21]
    assert "after_warmup" not in rows[0]  # five minutes: shorter than one and a half warm-ups
    assert rows[1]["after_warmup"]["flat"]


def test_the_chart_breaks_a_line_where_its_process_restarted_and_marks_the_faults() -> None:
    samples = [Sample(0, "worker-2", 1, 100), Sample(10, "worker-2", 1, 110),
               Sample(20, "worker-2", 2, 50), Sample(30, "worker-2", 2, 60)]  # fmt: skip
    lines = rss_lines(samples)
    assert lines == {"worker-2": [(0, 100), (10, 110), None, (20, 50), (30, 60)]}
    svg = line_chart_svg("RSS", "MiB", lines, [Marker(15, "kill", "#c0392b")])
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert len(re.findall(r"<polyline ", svg)) == 2
    assert ">kill</text>" in svg and ">worker-2</text>" in svg


def test_missed_ticks_are_skipped_not_caught_up() -> None:
    assert next_tick(30, 30, now=31) == 60
    assert next_tick(30, 30, now=125) == 150  # three ticks missed while the broker restarted


def test_the_report_is_written_as_json_and_two_charts(tmp_path: Path) -> None:
    report = {
        "app_id": "soak-test", "options": {"minutes": 2, "rate": 50}, "ran_seconds": 120.0,
        "offered_rate": 50, "produced_rate": 50.5, "kills": 1, "broker_restarts": 1, "unexpected_exits": 0,
        "ids": id_accounting(["a", "b"], ["a", "b", "b"]), "all_decided_after_stop_s": 1.0,
        "dead_letters": 0, "monitor_transactions": 2, "latency": latency_figures([(1.0, 0.2)]),
        "max_input_lag": 10, "passed": True,
        "events": [{"at": 60.0, "action": KILL}, {"at": 90.0, "action": BROKER_RESTART}],
        "memory": memory_summary([Sample(0, "monitor", 1, 100), Sample(10, "monitor", 1, 101)], 60),
        "samples": [{"at": 0.0, "role": "monitor", "pid": 1, "rss_mb": 100.0, "cpu_seconds": 0.0}],
        "offsets": [{"at": 30.0, "produced": 1500, "committed": 1490, "lag": 10}],
    }  # fmt: skip
    write_report(report, tmp_path)
    assert json.loads((tmp_path / "soak.json").read_text())["ids"]["duplicate_decisions"] == 1
    rss, lag = (tmp_path / "rss.svg").read_text(), (tmp_path / "lag.svg").read_text()
    assert ">kill</text>" in rss and ">broker restart</text>" in rss and ">monitor</text>" in rss
    assert "input lag" in lag


def test_a_workers_memory_parts_are_judged_beside_its_rss_and_drawn(tmp_path: Path) -> None:
    """What grew when RSS grew: the record cache filling to its budget, RocksDB's cache flat."""
    samples = [
        Sample(s.at, s.role, s.pid, s.rss_mb, s.cpu_seconds,
               parts_mb={"record_cache": min(2.0 * s.at / 60, 50.0), "rocksdb": 30.0})
        for s in _series("worker-1", 11, 300, 2)
    ]  # fmt: skip
    [row] = memory_summary(samples, warmup_seconds=600)["worker-1"]
    assert row["parts_after_warmup"]["record_cache"] == {"start_mb": 23.0, "end_mb": 50.0}
    assert row["parts_after_warmup"]["rocksdb"] == {"start_mb": 30.0, "end_mb": 30.0}
    lines = parts_lines([*samples, Sample(1900, "worker-1", 12, 200)], "worker-1")
    assert set(lines) == {"RSS", "record_cache", "rocksdb"}
    assert lines["RSS"][-2:] == [None, (1900, 200)]  # the new process breaks every line
    assert parts_lines(samples, "worker-2") == {}
    report = json.loads(json.dumps({"samples": [dataclasses.asdict(s) for s in samples]}))
    assert [Sample(**s) for s in report["samples"]] == samples  # the report's samples read back
