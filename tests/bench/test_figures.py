"""The benchmark's arithmetic: percentiles, steady rates, the profile summary and the chart."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from pipeline.tools.bench.charts import (
    Bar,
    bar_chart_svg,
    latency_summary,
    per_second,
    percentile,
    steady_rate,
    top_frames,
)
from pipeline.tools.bench.workers import bench_clock


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 100) == 100
    assert percentile([3.0], 95) == 3.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latency_summary_is_in_milliseconds() -> None:
    summary = latency_summary([0.001 * v for v in range(1, 101)])
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["max_ms"] == pytest.approx(100.0)


def test_steady_rate_ignores_start_up_and_tail() -> None:
    # 1000 messages/s for 10 s, after a slow start (10 messages over 30 s) and a slow tail.
    start = [i * 3.0 for i in range(10)]
    steady = [30.0 + i / 1000 for i in range(10_000)]
    tail = [40.0 + i * 5.0 for i in range(10)]
    assert steady_rate(start + steady + tail) == pytest.approx(1000, rel=0.01)
    with pytest.raises(ValueError):
        steady_rate([1.0, 2.0])


def test_per_second_counts_each_second() -> None:
    assert per_second([10.0, 10.5, 11.2, 13.9]) == [2, 1, 0, 1]
    assert per_second([]) == []


def test_top_frames_ranks_self_time() -> None:
    collapsed = [
        "main;run;score (app.py:1) 30",
        "main;run;send (producer.py:2) 50",
        "main;run;score (app.py:1);decide (engine.py:3) 20",
        "not a sample line",
    ]
    assert top_frames(collapsed, 2) == [("send (producer.py:2)", 0.5), ("score (app.py:1)", 0.3)]


def test_bar_chart_is_valid_svg_with_every_bar() -> None:
    svg = bar_chart_svg(
        "Transactions per second", [Bar("raw", 50_000), Bar("1 worker <&>", 1_234, "(2%)")], "/s"
    )
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "Transactions per second" in texts
    assert "1 worker <&>" in texts
    assert any(t and "1,234 /s (2%)" in t for t in texts)
    widths = [float(r.get("width", 0)) for r in root.iter("{http://www.w3.org/2000/svg}rect")][1:]
    assert widths[0] > widths[1] * 30  # bars are to scale


def test_bench_clock_is_the_same_time_of_week_whenever_the_bench_runs() -> None:
    week = 7 * 86400
    thursday = 1_796_256_000.0  # 2026-12-03 00:00 UTC, the start of an epoch week
    for now in (thursday, thursday + 1, thursday + 3 * 86400 + 5_000, thursday + week - 1):
        anchor = bench_clock(now)
        assert anchor == thursday, now
        assert 0 <= now - anchor < week
    assert bench_clock(thursday + week) == thursday + week
