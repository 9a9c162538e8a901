"""The recovery benchmark's chart (pipeline/tools/bench/recovery.py), without a broker."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pipeline.tools.bench.recovery import recovery_chart_svg

ROWS = [
    {"transactions": 50_000, "seconds_to_ready": 23.6, "records_restored": 211_359},
    {"transactions": 200_000, "seconds_to_ready": 20.0, "records_restored": 976_511},
]


def test_one_bar_per_run_and_panel_scaled_to_the_largest() -> None:
    svg = ET.fromstring(recovery_chart_svg(ROWS))
    bars = [float(r.get("height")) for r in svg.iter("{http://www.w3.org/2000/svg}rect")]
    assert len(bars) == 4
    seconds, records = bars[:2], bars[2:]
    assert max(seconds) == max(records) == 220  # the panel's height
    assert abs(seconds[1] / seconds[0] - 20.0 / 23.6) < 0.01  # heights rounded to 0.1
    labels = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "24s" in labels and "976,511" in labels and "200,000" in labels


def test_the_first_decision_beside_the_time_to_ready_when_measured() -> None:
    rows = [
        {**ROWS[0], "seconds_to_first_decision": 30.0},
        {**ROWS[1], "seconds_to_first_decision": None},  # not within the bench's limit
    ]
    svg = ET.fromstring(recovery_chart_svg(rows))
    bars = [float(r.get("height")) for r in svg.iter("{http://www.w3.org/2000/svg}rect")]
    assert len(bars) == 5  # ready twice, the first decision once, records twice
    assert bars[1] == 220  # the first decision (30 s) is the seconds panel's tallest
    labels = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "30s" in labels and any("first decision" in (label or "") for label in labels)
