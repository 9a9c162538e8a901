"""The "Model health" section's figures (monitor/model_health.py, pure), the store of the workers'
reports (monitor/state/model_health.py), the section's view and the verdict metrics."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.metrics import MonitorMetrics
from monitor.model_health import (
    contender_rows,
    delay_distribution,
    generation_changes,
    generation_text,
    labels_per_hour,
    promotion_in,
    score_histogram,
    verdict_precision,
)
from monitor.state import MonitorState
from monitor.state.model_health import ModelHealthStore, Promotion
from monitor.state.records import InvalidRecordError
from monitor.state.scored import Sample, ScoredRow
from monitor.state.verdicts import Verdict
from monitor.views.model_health import health_view
from monitor.views.page import dashboard_href, route
from pipeline.config import load_settings
from pipeline.contracts.json_schemas import load_schema

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def report(
    minutes: float,
    *,
    worker: str = "w1:9101",
    labels: int = 10,
    frauds: int = 1,
    generation: int = 0,
    champion: str = "logistic",
    delays: list[int] | None = None,
    labels_learnt: int = 12_000,
    promotions: list[dict[str, Any]] | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """A model_health report (of ``version``, the latest by default) ``minutes`` after T0, as a
    worker writes it."""
    r = copy.deepcopy(load_schema("model_health", version)["examples"][0])
    at = T0 + timedelta(minutes=minutes)
    r.update(worker=worker, at=at.isoformat(), generation=generation, labels_learnt=labels_learnt)
    if promotions is not None:
        r["promotions"] = promotions
    for c in r["contenders"]:
        c["role"] = "champion" if c["name"] == champion else "challenger"
    r["interval"] = {
        "since": (at - timedelta(minutes=1)).isoformat(),
        "labels": labels,
        "frauds": frauds,
        "delay_counts": delays or [labels, 0, 0, 0, 0, 0, 0],
    }
    return r


def test_reports_are_checked_kept_once_and_the_latest_per_worker_wins() -> None:
    store = ModelHealthStore(max_reports=3)
    assert store.add(report(0)) == "added"
    assert store.add(report(0)) == "duplicate", "a redelivered report counts once"
    assert store.add(report(-5)) == "added"
    assert store.latest()["w1:9101"]["at"] == report(0)["at"], "an older report is not the latest"
    with pytest.raises(InvalidRecordError, match="model_health"):
        store.add({**report(1), "labels_learnt": -1})
    for minute in (1, 2, 3):
        store.add(report(minute, worker="w2:9101"))
    assert len(store) == 3, "bounded: the oldest go"
    assert store.add(report(0)) == "added", "forgotten with its point"
    assert [p.worker for p in store.points(T0.timestamp() + 90)] == ["w2:9101", "w2:9101"]


def test_labels_per_hour_delays_and_generations_from_the_reports() -> None:
    store = ModelHealthStore()
    store.add(report(10, labels=5, frauds=1, delays=[1, 4, 0, 0, 0, 0, 0]))
    store.add(report(50, labels=7, frauds=0, delays=[0, 0, 7, 0, 0, 0, 0]))
    store.add(report(70, labels=3, frauds=2, generation=1, champion="boosting", delays=[0, 0, 0, 0, 0, 0, 3]))
    store.add(report(80, worker="w2:9101", labels=1, frauds=0))
    points = store.points()
    hours = labels_per_hour(points, T0.timestamp() - 3600, T0.timestamp() + 2 * 3600)
    assert [(h.hour.hour, h.labels, h.frauds) for h in hours] == [
        (7, 0, 0),
        (8, 12, 1),
        (9, 4, 2),
        (10, 0, 0),
    ]
    assert delay_distribution(points) == [2, 4, 7, 0, 0, 0, 3]
    changes = generation_changes(points)
    assert [(p.worker, p.generation, p.champion) for p in changes] == [
        ("w1:9101", 0, "logistic"),
        ("w1:9101", 1, "boosting"),
        ("w2:9101", 0, "logistic"),
    ]


def _row(transaction_id: str, score: float) -> ScoredRow:
    return ScoredRow(transaction_id, 0.0, "allow", False, 1.0, (), np.zeros(0), score)


def test_scores_by_outcome_and_the_verdict_precision() -> None:
    rows = [_row("f", 0.97), _row("l", 0.02), _row("l2", 0.5), _row("u", 1.0), _row("n", math.nan)]
    counts = score_histogram(Sample(rows, {"f": True, "l": False, "l2": False}, len(rows)), bins=4)
    assert counts == {"fraud": [0, 0, 0, 1], "legitimate": [1, 0, 1, 0], "no label yet": [0, 0, 0, 1]}

    def verdict(tx: str, fraud: bool, hours: float) -> Verdict:
        return Verdict(tx, "tok_4f9a2c1b7d3e", fraud, None, "alice", T0 + timedelta(hours=hours))

    verdicts = [verdict("a", True, 0), verdict("b", True, 1), verdict("c", False, 2)]
    assert verdict_precision(verdicts).precision == pytest.approx(2 / 3)
    assert verdict_precision(verdicts).text() == "66.7% (2 confirmed fraud of 3 alerts with a verdict)"
    assert verdict_precision(verdicts, since=T0 + timedelta(hours=1)).precision == 0.5
    assert verdict_precision([]).precision is None

    metrics = MonitorMetrics(CollectorRegistry())
    assert math.isnan(metrics.registry.get_sample_value("fraud_monitor_alert_precision"))
    metrics.show_verdicts(2, 1)
    assert metrics.registry.get_sample_value("fraud_monitor_alert_precision") == pytest.approx(2 / 3)
    assert metrics.registry.get_sample_value("fraud_monitor_analyst_verdicts", {"outcome": "legitimate"}) == 1


def test_the_view_lists_each_workers_champion_first_and_draws_four_charts() -> None:
    state = MonitorState.from_settings(load_settings())
    assert "No model-health report yet" in health_view(state, T0.timestamp()).summary
    state.model_health.add(report(0, generation=1, champion="boosting"))
    rows = contender_rows(state.model_health.latest())
    assert [(r[1], r[2], r[6], r[7]) for r in rows] == [
        ("boosting", "champion", "0.480", "0.420"),
        ("logistic", "challenger", "0.410", "0.350"),
    ]
    view = health_view(state, T0.timestamp() + 30)
    assert view.summary.startswith(
        "w1:9101: boosting.g1@12000, generation 1, 12,000 labels learnt, reported 30 s ago"
    )
    assert "Labels learnt in the last hour: 10." in view.summary
    assert "no analyst verdict yet" in view.summary
    names = [trace.name for trace in view.figure.data]
    assert names[:3] == ["legitimate labels", "fraud labels", "labels by delay"]
    assert "generation, w1:9101" in names and "score, fraud (0)" in names


def test_a_promotion_is_placed_at_the_time_its_report_says_not_when_it_was_read() -> None:
    """The monitor reads these reports now, days after T0: the timeline still shows them at T0 + 10
    and T0 + 70 minutes (the reports' ``at``), the promotion within the interval of the report that
    first shows it (at its label count; a v1 report carries no time of promotion)."""
    promoted = {"at_label": 12_030, "champion": "boosting", "beaten": "logistic",
                "champion_ap": 0.5, "beaten_ap": 0.4}  # fmt: skip
    state = MonitorState.from_settings(load_settings())
    state.model_health.add(report(10, labels_learnt=12_000, promotions=[], version=1))
    state.model_health.add(report(40, labels_learnt=12_010, promotions=[], version=1))
    # read late and out of order: the promotion's report first
    state.model_health.add(report(70, labels=40, labels_learnt=12_050, generation=1, champion="boosting",
                                  promotions=[promoted], version=1))  # fmt: skip
    state.model_health.add(report(69, labels_learnt=12_010, promotions=[], version=1))
    state.model_health.add(report(90, labels_learnt=12_060, generation=1, champion="boosting",
                                  promotions=[promoted], version=1))  # fmt: skip
    points = state.model_health.points()
    changes = generation_changes(points)
    assert [(p.at - T0.timestamp(), p.generation) for p in changes] == [(600.0, 0), (4200.0, 1)]
    assert promotion_in(changes[0]) is None and promotion_in(points[-1]) is None, "not in their intervals"
    assert promotion_in(changes[1]) == Promotion(12_030, "boosting", "logistic")
    assert generation_text(changes[1]) == (
        "boosting, generation 1, after 12,050 labels; promoted at label 12,030 (boosting beat logistic) "
        "between 2026-12-07 09:09:00 and 2026-12-07 09:10:00 UTC"
    )
    assert generation_text(changes[0]).endswith("reported 2026-12-07 08:10:00 UTC")

    now = T0.timestamp() + 2 * 3600  # the view two hours after T0, whatever the clock of the reads
    [trace] = [t for t in health_view(state, now).figure.data if t.name == "generation, w1:9101"]
    assert [datetime.fromisoformat(str(x)).replace(tzinfo=UTC) for x in trace.x] == [
        T0 + timedelta(minutes=10), T0 + timedelta(minutes=70), T0 + timedelta(minutes=90),
    ], "the changes at their reports' times, the line drawn on to the latest report"  # fmt: skip
    assert list(trace.y) == [0, 1, 1] and list(trace.text) == ["logistic", "boosting", ""]
    assert "between 2026-12-07 09:09:00 and 2026-12-07 09:10:00 UTC" in trace.hovertext[1]


def test_v1_and_v2_reports_are_read_and_a_v2_promotion_is_placed_at_its_own_time() -> None:
    """model_health.v2 is a minor version: the monitor reads a retained v1 report and a v2 report
    alike. A v2 promotion's ``at`` places it on the timeline exactly (T0 + 62.5 min, not at its
    report's T0 + 70 min) and the hover says when; a v1 promotion keeps its report's interval."""
    old = {
        "at_label": 12_030,
        "champion": "boosting",
        "beaten": "logistic",
        "champion_ap": 0.5,
        "beaten_ap": 0.4,
    }
    new = {**old, "at_label": 12_080, "champion": "logistic", "beaten": "boosting",
           "at": (T0 + timedelta(minutes=62, seconds=30)).isoformat()}  # fmt: skip
    v1 = report(
        10, labels=40, labels_learnt=12_050, generation=1, champion="boosting", promotions=[old], version=1
    )
    v2 = report(70, labels=40, labels_learnt=12_090, generation=2, promotions=[old, new])
    assert (v1["schema_version"], v2["schema_version"]) == (1, 2)
    state = MonitorState.from_settings(load_settings())
    assert state.model_health.add(v1) == "added" and state.model_health.add(v2) == "added"
    first, second = generation_changes(state.model_health.points())
    assert promotion_in(first) == Promotion(12_030, "boosting", "logistic", None)
    assert promotion_in(second) == Promotion(
        12_080, "logistic", "boosting", (T0 + timedelta(minutes=62.5)).timestamp()
    )
    assert generation_text(first).endswith("between 2026-12-07 08:09:00 and 2026-12-07 08:10:00 UTC")
    assert generation_text(second) == (
        "logistic, generation 2, after 12,090 labels; promoted at label 12,080 (logistic beat boosting) "
        "at 2026-12-07 09:02:30 UTC"
    )
    [trace] = [
        t for t in health_view(state, T0.timestamp() + 7200).figure.data if t.name == "generation, w1:9101"
    ]
    assert [datetime.fromisoformat(str(x)).replace(tzinfo=UTC) for x in trace.x] == [
        T0 + timedelta(minutes=10), T0 + timedelta(minutes=62.5)
    ], "the v1 promotion at its report's time, the v2 one at its own"  # fmt: skip
    with pytest.raises(InvalidRecordError, match="promotions"):
        state.model_health.add(report(80, promotions=[{**new, "at": "yesterday"}]))


def test_the_url_path_chooses_the_page() -> None:
    for path in ("/model-health", "/model-health/"):
        health = route(path)
        assert health.dashboard_style == {"display": "none"} and health.refresh_disabled
        assert health.health_page.id == "model-health-section"
        assert health.link_styles[0] == {} and health.link_styles[1]["fontWeight"] == "bold"
    for path in ("/", "", None, "/elsewhere", "/model-health-x"):
        assert route(path)[:3] == ({}, None, False), path
        assert route(path).link_styles[0]["fontWeight"] == "bold"
    assert dashboard_href("?type=Identity+Theft&range=1h") == "/?type=Identity+Theft&range=1h"
    assert dashboard_href("") == dashboard_href(None) == "/", "back to the dashboard as it was left"
