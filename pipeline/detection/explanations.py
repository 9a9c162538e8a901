"""Why an alert scored as it did: the champion's contributions to its score, gathered into a few
factors with plain-language names and the typical value of this card (terminal, customer) where
its features hold one. Pure: no Kafka, no web, no settings.

* **How a score is split** (``Candidate.attributions_many``, pipeline/detection/candidates.py): for
  the logistic champion, weight times scaled value of each feature (``linear``); for the boosted
  trees, LightGBM's per-feature contributions, TreeSHAP along each tree's decision paths
  (``tree_shap``). Both are on the log-odds scale and add up, with the base, to the log-odds of the
  model's probability (a test checks it), so a factor's contribution reads the same whichever
  model is champion.
* **Factors**: features that say one thing are summed into one factor: the amount (itself, its log,
  its ratio and z-score against the card's history, whether it is small), the hour (its sine and
  cosine), the channel (its one-hot columns and whether it is digital). The factors that pushed the
  score up most, at most ``TOP_FACTORS``, are kept, largest first; those that pulled it down are not
  shown.
* **Typical values** come from the same transaction's features, nothing else: the card's 30-day
  mean amount for the amount, an entity's own longer window scaled down for its shorter ones (a
  card's 30-day count / 30 for its 24-hour count, a terminal's 24-hour count / 24 for its hourly
  one), the 30-day fraud rate for the 1- and 7-day ones; None where no such baseline exists.
* **Cost**: only alerts are explained (``explain_alerts``: one call of the champion for the alerts
  of a batch, nothing for the allowed transactions); docs/performance.md has the cost per alert.

The plain-language names and the factors' groups are in pipeline/detection/plain_words.py, which
the decision's own reasons use too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.detection.candidates import Attribution
from pipeline.detection.engine import Decision, DetectionEngine
from pipeline.detection.plain_words import GROUP_OF, describe, factor_value
from pipeline.detection.vocabulary import FeatureRows, Features

log = logging.getLogger(__name__)

TOP_FACTORS = 5
"""The most factors an alert carries."""


@dataclass(frozen=True, slots=True)
class Factor:
    """One reason for a score: what it is, its value, what is typical here, how much it added."""

    feature: str
    """The feature, or the group of features (``GROUPS``)."""
    name: str
    """In plain language: "5.2× this card's 30-day mean amount"."""
    value: float
    typical: float | None
    """The value usual for this card, terminal or customer, when the features tell it."""
    contribution: float
    """What it added to the score's log-odds."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """The factors of one score and how they were computed."""

    method: str
    """``linear`` (weight times scaled value) or ``tree_shap`` (the trees' path contributions)."""
    base: float
    """The log-odds before any feature: the base plus every feature's contribution is the score's."""
    factors: tuple[Factor, ...]

    def message(self) -> dict[str, Any]:
        """The ``explanation`` field of an alert (schemas/alert.v2.schema.json)."""
        return {
            "method": self.method,
            "base": round(self.base, 4),
            "factors": [
                {
                    "feature": f.feature,
                    "name": f.name,
                    "value": round(f.value, 4),
                    "typical": None if f.typical is None else round(f.typical, 4),
                    "contribution": round(f.contribution, 4),
                }
                for f in self.factors
            ],
        }


class ExplainedFeatures(dict[str, float]):
    """An alerted transaction's features, carrying the explanation of its score to the alert's
    builder (``pipeline.contracts.messages.alert_message``). To everything else it is the features
    alone: a dict that is stored, learnt from and serialised as one."""

    __slots__ = ("explanation",)

    def __init__(self, features: Features, explanation: Explanation) -> None:
        super().__init__(features)
        self.explanation = explanation


def explanation_of(features: Mapping[str, float]) -> Explanation | None:
    """The explanation ``features`` carry (``explain_alerts``), if any."""
    return getattr(features, "explanation", None)


def explain_alerts(
    engine: DetectionEngine,
    rows: Sequence[Features],
    decisions: Sequence[Decision | Exception],
    known: Mapping[int, Attribution] | None = None,
) -> FeatureRows:
    """``rows``, those of alerts (review or block) as ``ExplainedFeatures`` (in place when ``rows``
    are FeatureRows): the champion splits the alerts' scores in one call, but for the rows whose
    split is ``known`` (by index: those the model flagged, split by ``decide_rows``); the allowed
    rows are left as they are, unexplained. Nothing is explained before the model has learnt
    ``engine.model_min_labels`` labels: until then the score is the rules' strength, not the model's."""
    out = FeatureRows.of(rows)
    model = engine.model
    alerts = [i for i, d in enumerate(decisions) if isinstance(d, Decision) and d.action != "allow"]
    if not alerts or model.labels_learnt < max(engine.model_min_labels, 1) or not model.best.ready:
        return out
    champion = model.best
    try:  # an explanation never costs a decision: an alert that cannot be explained goes out without
        known = known or {}
        unknown = [i for i in alerts if i not in known]
        found = champion.attributions_many(out.take(unknown)) if unknown else []
        split = dict(zip(unknown, found, strict=True))
        attributions = [known[index] if index in known else split[index] for index in alerts]
        rows_of = [out[index] for index in alerts]
        explanations = explain_many(champion.ATTRIBUTION, attributions, rows_of)
        for index, features, explanation in zip(alerts, rows_of, explanations, strict=True):
            out.replace(index, ExplainedFeatures(features, explanation))
    except Exception:
        log.exception("explaining %d alerts failed; they go out without explanations", len(alerts))
    return out


def explain(
    method: str, base: float, contributions: Mapping[str, float], features: Features, top: int = TOP_FACTORS
) -> Explanation:
    """The ``top`` factors that pushed the score up most, from each feature's ``contributions``."""
    summed: dict[str, float] = {}
    for feature, contribution in contributions.items():
        factor = GROUP_OF.get(feature, feature)
        summed[factor] = summed.get(factor, 0.0) + contribution
    ranked = sorted(
        ((factor, c) for factor, c in summed.items() if c > 1e-6 and math.isfinite(c)), key=lambda i: -i[1]
    )
    return Explanation(method, base, _factors(ranked, features, top))


def explain_many(
    method: str, attributions: Sequence[Attribution], rows: Sequence[Features], top: int = TOP_FACTORS
) -> list[Explanation]:
    """``explain`` of each (attribution, features), the factors' sums taken for all of them at once
    when their contributions name the same features in the same order (each factor's sum the same
    additions in the same order, per row; the ranking a stable sort, as ``sorted``)."""
    names = tuple(attributions[0].contributions) if attributions else ()
    if len(attributions) < 2 or any(tuple(a.contributions) != names for a in attributions):
        return [
            explain(method, a.base, a.contributions, f, top) for a, f in zip(attributions, rows, strict=True)
        ]
    members: dict[str, list[int]] = {}
    for position, feature in enumerate(names):
        members.setdefault(GROUP_OF.get(feature, feature), []).append(position)
    values = np.array([list(a.contributions.values()) for a in attributions], dtype=np.float64)
    values = values.reshape(len(attributions), len(names))
    factors = list(members)
    summed = np.empty((len(attributions), len(factors)))
    for column, positions in enumerate(members.values()):
        total = np.zeros(len(attributions))
        for position in positions:
            total = total + values[:, position]
        summed[:, column] = total
    with np.errstate(invalid="ignore"):
        kept = (summed > 1e-6) & np.isfinite(summed)
    # Each row's kept factors, largest first, ties in factor order (a stable sort, as ``sorted``).
    orders = np.argsort(np.where(kept, -summed, np.inf), axis=1, kind="stable").tolist()
    counts = kept.sum(axis=1).tolist()
    out = []
    for row, values_of_row in enumerate(summed.tolist()):
        ranked = [(factors[i], values_of_row[i]) for i in orders[row][: counts[row]]]
        out.append(Explanation(method, attributions[row].base, _factors(ranked, rows[row], top)))
    return out


def _factors(ranked: list[tuple[str, float]], features: Features, top: int) -> tuple[Factor, ...]:
    """The first ``top`` of the ``ranked`` (factor, contribution) whose value is finite, described."""
    factors = []
    for factor, contribution in ranked:
        value = factor_value(factor, features)
        if not math.isfinite(value):
            continue
        name, typical = describe(factor, value, features)
        typical = typical if typical is None or math.isfinite(typical) else None
        factors.append(Factor(factor, name, value, typical, contribution))
        if len(factors) == top:
            break
    return tuple(factors)
