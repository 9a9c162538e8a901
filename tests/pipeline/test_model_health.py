"""The model's health figures (pipeline/detection/health.py): precision at the review threshold,
average precision per contender on its recent labels, label-delay buckets, the report's schema."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from pipeline.config import load_settings
from pipeline.contracts.json_schemas import SchemaViolation, validator
from pipeline.detection.candidates import LogisticCandidate
from pipeline.detection.health import (
    DELAY_BOUNDS_HOURS,
    LabelTally,
    contender_health,
    delay_bucket,
    model_figures,
    precision_at,
)
from pipeline.detection.model import Contender, OnlineFraudModel, Promotion
from pipeline.worker.model_health import ModelHealthReporter
from pipeline.worker.telemetry import PipelineMetrics
from tests.pipeline.test_model import Noise, separable


def test_precision_at_counts_frauds_among_the_scores_at_or_above_the_threshold() -> None:
    labels = [True, False, True, False, False]
    scores = [0.9, 0.5, 0.2, 0.19, 0.0]
    assert precision_at(labels, scores, 0.2) == (2 / 3, 3)
    assert precision_at(labels, scores, 0.6) == (1.0, 1)
    assert precision_at(labels, scores, 0.95) == (None, 0)


def test_delay_buckets_are_up_to_each_bound_in_hours() -> None:
    assert [delay_bucket(s) for s in (-5, 0, 3600, 3601, 6 * 3600, 86_400 * 2, 86_400 * 31)] == [
        0, 0, 0, 1, 1, 3, len(DELAY_BOUNDS_HOURS)
    ]  # fmt: skip
    tally = LabelTally()
    for is_fraud, delay in ((True, 60), (False, 7200), (False, 10**7)):
        tally.add(is_fraud, delay)
    assert tally.as_json() == {"labels": 3, "frauds": 1, "delay_counts": [1, 1, 0, 0, 0, 0, 1]}


def test_a_contenders_figures_cover_its_most_recent_labels_scored_before_learning() -> None:
    contender = Contender(LogisticCandidate(), since=10)
    # an old, perfectly wrong stretch falls out of a window of 4
    contender.scores.extend([(1, 0.9, False), (2, 0.1, True)])
    contender.scores.extend([(3, 0.8, True), (4, 0.3, False), (5, 0.25, True), (6, 0.1, False)])
    figures = contender_health(contender, "champion", threshold=0.2, window=4)
    assert figures == {
        "name": "logistic",
        "role": "champion",
        "since_label": 10,
        "learnt": 0,
        "labels": 4,
        "frauds": 2,
        "average_precision": pytest.approx((1 / 1 + 2 / 3) / 2),  # frauds ranked 1st and 3rd
        "precision_at_review": pytest.approx(2 / 3),  # 0.8, 0.3, 0.25 flagged; 2 frauds
        "flagged_at_review": 3,
    }
    empty = contender_health(Contender(LogisticCandidate(), 0), "challenger", 0.2)
    assert (empty["average_precision"], empty["precision_at_review"], empty["labels"]) == (None, None, 0)


def test_the_report_names_the_champion_and_its_promotion_and_is_schema_valid() -> None:
    model = OnlineFraudModel(boosting=False, cooldown=1000)
    model.pool = [Contender(Noise(name="noise"), 0), Contender(LogisticCandidate(), 0)]
    separable(model, 3000, random.Random(3))
    figures = model_figures(model, threshold=0.2)
    roles = {c["name"]: c["role"] for c in figures["contenders"]}
    assert roles == {"noise": "challenger", "logistic": "champion"}
    by_name = {c["name"]: c for c in figures["contenders"]}
    assert by_name["logistic"]["average_precision"] > by_name["noise"]["average_precision"] + 0.3
    assert by_name["logistic"]["precision_at_review"] > by_name["noise"]["precision_at_review"]
    champion = model.pool[model.champion]
    assert by_name["logistic"]["labels"] == len(champion.scores) > 2900
    assert by_name["logistic"]["frauds"] == sum(y for *_, y in champion.scores) > 200
    assert (figures["generation"], figures["labels_learnt"]) == (1, 3000)
    assert [p["champion"] for p in figures["promotions"]] == ["logistic"]
    assert figures["model_version"] == model.version
    report = {
        "schema_version": 1,
        "worker": "w:1",
        "at": "2026-12-07T08:00:00+00:00",
        **figures,
        "interval": {"since": "2026-12-07T07:59:00+00:00", **LabelTally().as_json()},
    }
    validator("model_health")(report)


def test_the_worker_reports_when_each_promotion_it_made_happened() -> None:
    """model_health.v2: a promotion made while the worker runs carries its time (the end of the
    batch of labels that made it: the stage calls maybe_report right after learning it), not the
    time of the report that lists it; one the model made before the start (restored from its
    snapshot) has none. The report is v2-valid; a v1 reader's schema refuses it."""
    model = OnlineFraudModel(boosting=False)
    model.promotions.append(Promotion(100, "logistic", "noise", 0.5, 0.4))  # restored: no time
    sent: list[dict[str, Any]] = []
    producer = SimpleNamespace(send=lambda topic, value, key: sent.append(orjson.loads(value)))
    start = datetime(2026, 12, 7, 8, 0, tzinfo=UTC).timestamp()
    now = [start]
    reporter = ModelHealthReporter(
        load_settings(model_health_interval_seconds=60), SimpleNamespace(engine=SimpleNamespace(model=model)),
        producer, PipelineMetrics(CollectorRegistry()), clock=lambda: now[0],
    )  # type: ignore[arg-type]  # fmt: skip

    async def batches() -> None:
        reporter.maybe_report()  # the first batch reports at once
        now[0] = start + 12.5
        model.promotions.append(Promotion(7_000, "noise", "logistic", 0.6, 0.5))  # this batch's learning
        assert reporter.maybe_report() is None, "within the interval: no report yet"
        now[0] = start + 61
        reporter.maybe_report()
        assert reporter._timer is not None
        reporter._timer.cancel()

    asyncio.run(batches())
    first, second = sent
    assert first["promotions"] == [
        {"at_label": 100, "champion": "logistic", "beaten": "noise", "champion_ap": 0.5, "beaten_ap": 0.4}
    ]
    assert [p.get("at") for p in second["promotions"]] == [None, "2026-12-07T08:00:12.500+00:00"]
    assert second["at"] == "2026-12-07T08:01:01.000+00:00", "the report's own time is later"
    assert (first["schema_version"], second["schema_version"]) == (2, 2)
    validator("model_health", 2)(second)
    with pytest.raises(SchemaViolation):
        validator("model_health", 1)(second)
