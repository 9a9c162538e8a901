"""Online models (river) that learn from delayed labels: a fraud score and a fraud-type classifier.

* ``fraud``: StandardScaler | LogisticRegression, fraud vs legitimate. Legitimate examples are
  under-sampled (deterministically, by transaction id) so that the rare fraud class is heard.
* ``fraud_type``: StandardScaler | SoftmaxRegression over the three fraud types, learnt from
  fraud labels only.

Predictions come before learning (progressive validation): a transaction is scored with the
model as it is, and learnt from only once its label arrives.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from typing import Any

from river import base, compose, drift, linear_model, optim, preprocessing

from pipeline.detection.anomaly import AnomalyDetector
from pipeline.detection.features import Features
from pipeline.detection.vocabulary import FRAUD_TYPES

log = logging.getLogger(__name__)


class Clip(base.Transformer):
    """Clips standardised features to ``[-limit, limit]``.

    A feature that was nearly constant so far has a tiny standard deviation; its first unusual
    value would otherwise be scaled to hundreds and swamp every other feature.
    """

    def __init__(self, limit: float = 5.0) -> None:
        self.limit = limit

    def transform_one(self, x: dict) -> dict:
        limit = self.limit
        return {name: -limit if v < -limit else limit if v > limit else v for name, v in x.items()}


def _fraud_classifier() -> compose.Pipeline:
    return (
        preprocessing.StandardScaler()
        | Clip()
        | linear_model.LogisticRegression(optimizer=optim.SGD(0.05), l2=1e-4)
    )


def _type_classifier() -> compose.Pipeline:
    return (
        preprocessing.StandardScaler()
        | Clip()
        | linear_model.SoftmaxRegression(optimizer=optim.SGD(0.05), l2=1e-4)
    )


@dataclass
class OnlineFraudModel:
    """Fraud probability plus the most likely fraud type, updated one label at a time."""

    legit_keep_ratio: float = 0.2
    fraud: compose.Pipeline = field(default_factory=_fraud_classifier)
    fraud_type: compose.Pipeline = field(default_factory=_type_classifier)
    labels_learnt: int = 0
    frauds_learnt: int = 0
    name: str = "lr-softmax-1"
    drift: drift.ADWIN = field(default_factory=lambda: drift.ADWIN(delta=0.002))
    anomaly: AnomalyDetector = field(default_factory=AnomalyDetector)
    drifts: int = 0
    generation: int = 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling a snapshot saved before a field existed gives that field its default (the
        anomaly detector, the drift counters)."""
        defaults = OnlineFraudModel()
        self.__dict__.update({**defaults.__dict__, **state})

    @property
    def version(self) -> str:
        """Stamped on every decision: the model family, its generation (a new one after each drift
        reset) and how many labels it has learnt."""
        generation = f".g{self.generation}" if self.generation else ""
        return f"{self.name}{generation}@{self.labels_learnt}"

    def predict(self, features: Features) -> tuple[float, str | None]:
        """(fraud probability, most likely fraud type or None before any fraud was learnt)."""
        if self.labels_learnt == 0:
            return 0.0, None
        return self.fraud_probability(features), self.likely_type(features)

    def fraud_probability(self, features: Features) -> float:
        """The probability that the transaction is fraud (0 before any label was learnt)."""
        if self.labels_learnt == 0:
            return 0.0
        return float(self.fraud.predict_proba_one(features).get(True, 0.0))

    def likely_type(self, features: Features) -> str | None:
        """The most likely fraud type, or None before any fraud was learnt. Predicting leaves the
        model unchanged, so it is asked only when a decision needs a type (a third of a decision's
        cost otherwise)."""
        if self.labels_learnt == 0 or not self.frauds_learnt:
            return None
        return self.fraud_type.predict_one(features)

    def explain(self, features: Features, top: int = 3) -> list[tuple[str, float]]:
        """The features that pushed the fraud probability up most: (name, contribution to the
        log-odds), largest first. A contribution is the feature's weight times its scaled value."""
        if self.labels_learnt == 0:
            return []
        scaled = features
        for step in list(self.fraud.steps.values())[:-1]:
            scaled = step.transform_one(scaled)
        weights = self.fraud[list(self.fraud.steps)[-1]].weights
        contributions = [(name, weights.get(name, 0.0) * value) for name, value in scaled.items()]
        contributions.sort(key=lambda item: item[1], reverse=True)
        return [(name, value) for name, value in contributions[:top] if value > 0]

    def learn(self, transaction_id: str, features: Features, is_fraud: bool, fraud_type: str | None) -> bool:
        """Learn one label; return False when a legitimate example was skipped by under-sampling."""
        if not is_fraud and not _keep(transaction_id, self.legit_keep_ratio):
            return False
        if self.labels_learnt:
            probability = float(self.fraud.predict_proba_one(features).get(True, 0.0))
            self._watch_errors(abs(float(is_fraud) - probability))
        self.fraud.learn_one(features, is_fraud)
        self.labels_learnt += 1
        if is_fraud and fraud_type in FRAUD_TYPES:
            self.fraud_type.learn_one(features, fraud_type)
            self.frauds_learnt += 1
        return True

    def _watch_errors(self, error: float) -> None:
        """ADWIN over the model's errors on the labels it learns: when the error rate has risen
        significantly, the world changed (new fraud pattern, new traffic): the model starts afresh
        (a new generation) and the engine relies on the rules until it has learnt enough again."""
        mean_before = self.drift.estimation
        self.drift.update(error)
        if self.drift.drift_detected and self.drift.estimation > mean_before:
            self.drifts += 1
            self.generation += 1
            log.warning(
                "model error drift (%.3f -> %.3f): starting generation %d",
                mean_before,
                self.drift.estimation,
                self.generation,
            )
            self.fraud = _fraud_classifier()
            self.fraud_type = _type_classifier()
            self.labels_learnt = self.frauds_learnt = 0
            self.drift = drift.ADWIN(delta=0.002)


def _keep(transaction_id: str, ratio: float) -> bool:
    """A stable coin flip per transaction id, so a replay learns exactly the same examples."""
    return zlib.crc32(transaction_id.encode()) % 10_000 < ratio * 10_000
