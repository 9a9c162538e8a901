"""The model's health, from what it kept of its own predictions: pure, no I/O.

Every contender of the pool (pipeline/detection/model.py) keeps the score it gave each of its last
labels *before* learning it (progressive validation). Over the most recent ``window`` of them this
module computes its average precision and its precision at the review threshold (frauds among the
labels it scored at or above the threshold); with the champion, the generation, the drifts and the
promotions, that is the worker's ``model_health`` message (schemas/model_health.v1.schema.json) and
its Prometheus gauges. Label delays (event time to the label) are counted in fixed buckets.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.detection.evaluation import average_precision
from pipeline.detection.model import Contender, OnlineFraudModel

WINDOW = 5_000
"""Labels of each contender the figures cover (the most recent; the pool keeps as many)."""
PROMOTIONS_KEPT = 20
"""Promotions a report lists (the newest)."""
DELAY_BOUNDS_HOURS: tuple[float, ...] = (1, 6, 24, 72, 168, 720)
"""Upper bounds of the label-delay buckets, in hours; one more bucket takes longer delays."""


def precision_at(
    labels: Sequence[bool], scores: Sequence[float], threshold: float
) -> tuple[float | None, int]:
    """(frauds among the scores >= ``threshold``, how many that is); None when none is."""
    flagged = [y for y, s in zip(labels, scores, strict=True) if s >= threshold]
    if not flagged:
        return None, 0
    return sum(flagged) / len(flagged), len(flagged)


def delay_bucket(delay_seconds: float) -> int:
    """Index of the bucket of a label delay (a negative delay counts as none)."""
    return bisect.bisect_left(DELAY_BOUNDS_HOURS, max(delay_seconds, 0.0) / 3600)


def contender_health(
    contender: Contender, role: str, threshold: float, window: int = WINDOW
) -> dict[str, Any]:
    """One contender's figures over its last ``window`` labels."""
    recent = list(contender.scores)[-window:]
    labels = [y for _, _, y in recent]
    scores = [s for _, s, _ in recent]
    precision, flagged = precision_at(labels, scores, threshold) if recent else (None, 0)
    frauds = sum(labels)
    ap = average_precision(labels, scores) if 0 < frauds < len(labels) else None
    return {
        "name": contender.candidate.name,
        "role": role,
        "since_label": contender.since,
        "learnt": contender.candidate.learnt,
        "labels": len(recent),
        "frauds": frauds,
        "average_precision": None if ap is None else round(ap, 6),
        "precision_at_review": None if precision is None else round(precision, 6),
        "flagged_at_review": flagged,
    }


def model_figures(model: OnlineFraudModel, threshold: float, window: int = WINDOW) -> dict[str, Any]:
    """The model part of a ``model_health`` message: champion and challengers with their recent
    figures, generation, drifts and the newest promotions."""
    return {
        "model_version": model.version,
        "labels_learnt": model.labels_learnt,
        "frauds_learnt": model.frauds_learnt,
        "generation": model.generation,
        "drifts": model.drifts,
        "review_threshold": threshold,
        "contenders": [
            contender_health(c, "champion" if i == model.champion else "challenger", threshold, window)
            for i, c in enumerate(model.pool)
        ],
        "promotions": [
            {
                "at_label": p.at_label,
                "champion": p.champion,
                "beaten": p.beaten,
                "champion_ap": round(p.champion_ap, 6),
                "beaten_ap": round(p.beaten_ap, 6),
            }
            for p in model.promotions[-PROMOTIONS_KEPT:]
        ],
    }


@dataclass
class LabelTally:
    """The labels learnt since the last report: how many, how many frauds, their delays."""

    labels: int = 0
    frauds: int = 0
    delays: list[int] = field(default_factory=lambda: [0] * (len(DELAY_BOUNDS_HOURS) + 1))

    def add(self, is_fraud: bool, delay_seconds: float) -> None:
        self.labels += 1
        self.frauds += is_fraud
        self.delays[delay_bucket(delay_seconds)] += 1

    def as_json(self) -> dict[str, Any]:
        return {"labels": self.labels, "frauds": self.frauds, "delay_counts": list(self.delays)}
