"""The learners that compete to score transactions (pipeline/detection/model.py picks the champion).

* ``LogisticCandidate``: River StandardScaler | Clip | LogisticRegression, learning every label
  online, frauds weighted (no legitimate label is thrown away); its probability is corrected for
  the weight, so it stays calibrated.
* ``BoostingCandidate``: gradient-boosted trees (LightGBM) retrained every ``retrain_every`` labels on
  a window of recent labelled examples (every fraud, a stable sample of the legitimate ones), then
  scoring whole batches at once; its probability is corrected for the sampling.

Both give a calibrated fraud probability from a transaction's features; both pickle (snapshots).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river import base, compose, linear_model, optim, preprocessing

from pipeline.detection.vocabulary import Features


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


def _logistic(learning_rate: float) -> compose.Pipeline:
    return (
        preprocessing.StandardScaler()
        | Clip(8.0)
        | linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=1e-5)
    )


def _uncorrect(probability: float, odds_factor: float) -> float:
    """The probability under the true class balance, from one learnt with frauds ``odds_factor``
    times over-represented (weights or under-sampled legitimate examples)."""
    if odds_factor == 1.0 or probability <= 0.0:
        return probability
    if probability >= 1.0:
        return 1.0
    odds = probability / (1.0 - probability) / odds_factor
    return odds / (1.0 + odds)


@dataclass
class LogisticCandidate:
    """Online logistic regression over the standardised features."""

    fraud_weight: float = 10.0
    learning_rate: float = 0.02
    name: str = "logistic"
    model: compose.Pipeline = field(default=None)  # type: ignore[assignment]
    learnt: int = 0

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = _logistic(self.learning_rate)

    @property
    def ready(self) -> bool:
        return self.learnt > 0

    def predict_many(self, rows: Sequence[Features]) -> list[float]:
        """The fraud probability of each row, as ``predict_proba_one`` row by row would give it (to
        float rounding), computed on the batch as a matrix when every row has the same features."""
        if not self.learnt:
            return [0.0] * len(rows)
        if not rows:
            return []
        names = tuple(rows[0])
        if any(len(x) != len(names) or x.keys() != rows[0].keys() for x in rows):
            predict = self.model.predict_proba_one  # rows of different shapes: one at a time
            return [_uncorrect(float(predict(x).get(True, 0.0)), self.fraud_weight) for x in rows]
        matrix = np.array([[x[name] for name in names] for x in rows], dtype=np.float64)
        return self._probabilities(matrix, names).tolist()

    def _probabilities(self, matrix: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
        """The pipeline's steps on a matrix: standardise (0 where the variance is 0), clip, the
        logistic function of the weighted sum (0 or 1 beyond +-30, as river's sigmoid), then
        corrected for the fraud weight."""
        steps = list(self.model.steps.values())
        scaler, clip, logistic = steps
        means = np.array([scaler.means.get(name, 0.0) for name in names])
        variances = np.array([scaler.vars.get(name, 0.0) for name in names])
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(variances > 0, (matrix - means) / np.sqrt(variances), 0.0)
        scaled = np.clip(scaled, -clip.limit, clip.limit)
        weights = logistic.weights
        raw = scaled @ np.array([weights.get(name, 0.0) for name in names]) + logistic.intercept
        with np.errstate(over="ignore"):
            p = np.where(raw < -30, 0.0, np.where(raw > 30, 1.0, 1.0 / (1.0 + np.exp(-raw))))
        if self.fraud_weight == 1.0:
            return p
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = p / (1.0 - p) / self.fraud_weight
            corrected = odds / (1.0 + odds)
        return np.where(p <= 0.0, p, np.where(p >= 1.0, 1.0, corrected))

    def learn(self, features: Features, is_fraud: bool, transaction_id: str = "") -> None:
        """Learn one label (every one: the id, which sampling candidates need, is not used here)."""
        self.model.learn_one(features, is_fraud, w=self.fraud_weight if is_fraud else 1.0)
        self.learnt += 1

    def explain(self, features: Features, top: int = 3) -> list[tuple[str, float]]:
        """The features that pushed the log-odds up most: weight times scaled value, largest first."""
        if not self.learnt:
            return []
        scaled = features
        for step in list(self.model.steps.values())[:-1]:
            scaled = step.transform_one(scaled)
        weights = self.model[list(self.model.steps)[-1]].weights
        contributions = sorted(((n, weights.get(n, 0.0) * v) for n, v in scaled.items()), key=lambda i: -i[1])
        return [(name, value) for name, value in contributions[:top] if value > 0]

    def explain_many(self, rows: Sequence[Features], top: int = 3) -> list[list[tuple[str, float]]]:
        return [self.explain(features, top) for features in rows]


@dataclass
class ExampleWindow:
    """The most recent labelled examples as a float32 matrix (a ring buffer that grows by doubling up
    to ``capacity`` rows): a few bytes per value, cheap to pickle, ready for training."""

    columns: int
    capacity: int
    rows: np.ndarray = field(default=None)  # type: ignore[assignment]
    labels: np.ndarray = field(default=None)  # type: ignore[assignment]
    size: int = 0
    next: int = 0

    def __post_init__(self) -> None:
        if self.rows is None:
            self.rows = np.zeros((min(1024, self.capacity), self.columns), dtype=np.float32)
            self.labels = np.zeros(len(self.rows), dtype=bool)

    def __len__(self) -> int:
        return self.size

    def append(self, row: list[float], label: bool) -> None:
        if self.size == len(self.rows) < self.capacity:  # grow: the ring has not wrapped yet
            grown = min(2 * len(self.rows), self.capacity)
            self.rows = np.resize(self.rows, (grown, self.columns))
            self.labels = np.resize(self.labels, grown)
            self.next = self.size
        self.rows[self.next] = row
        self.labels[self.next] = label
        self.next = (self.next + 1) % len(self.rows)
        self.size = min(self.size + 1, len(self.rows))

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        return self.rows[: self.size], self.labels[: self.size]


@dataclass
class BoostingCandidate:
    """Gradient-boosted trees, retrained from a window of recent labelled examples."""

    columns: tuple[str, ...]
    retrain_every: int = 5_000
    window: int = 100_000
    legit_keep_ratio: float = 0.5
    min_frauds: int = 20
    rounds: int = 150
    seed: int = 7
    name: str = "boosting"
    examples: ExampleWindow = field(default=None)  # type: ignore[assignment]
    booster: Any = None
    learnt: int = 0
    since_training: int = 0
    trainings: int = 0

    def __post_init__(self) -> None:
        if self.examples is None:
            self.examples = ExampleWindow(len(self.columns), self.window)

    @property
    def ready(self) -> bool:
        return self.booster is not None

    def _row(self, features: Features) -> list[float]:
        return [features.get(name, 0.0) for name in self.columns]

    def predict_many(self, rows: Sequence[Features]) -> list[float]:
        if self.booster is None or not rows:
            return [0.0] * len(rows)
        raw = self.booster.predict(np.array([self._row(x) for x in rows], dtype=np.float32))
        return [_uncorrect(float(p), 1.0 / self.legit_keep_ratio) for p in raw]

    def learn(self, features: Features, is_fraud: bool, transaction_id: str) -> None:
        self.learnt += 1
        if is_fraud or keep(transaction_id, self.legit_keep_ratio):
            self.examples.append(self._row(features), is_fraud)
        self.since_training += 1
        due = self.retrain_every if self.booster is not None else self.retrain_every // 2
        if self.since_training >= due and not self.retrain():
            self.since_training = due // 2  # too few frauds yet: try again a little later

    def retrain(self) -> bool:
        """Train anew on the window; False (the booster unchanged) while it holds too few frauds."""
        data, labels = self.examples.data()
        if int(labels.sum()) < self.min_frauds or labels.all():
            return False
        import lightgbm  # imported here: a worker that never trains does not load it

        # Small trees and many samples per leaf: stable on well under 1 % fraud (measured with
        # benchmarks/quality.py against 31 leaves and 40 samples: AP 0.316 against 0.303). One
        # thread: OpenMP's threads spin when other processes (the broker, other stages) share the cores.
        params = {
            "objective": "binary",
            "learning_rate": 0.05,
            "num_leaves": 15,
            "max_bin": 63,
            "min_data_in_leaf": 100,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
            "seed": self.seed,
            "num_threads": 1,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }

        self.booster = lightgbm.train(
            params, lightgbm.Dataset(data, label=labels), num_boost_round=self.rounds
        )
        self.since_training = 0
        self.trainings += 1
        return True

    def explain(self, features: Features, top: int = 3) -> list[tuple[str, float]]:
        """The features that pushed the log-odds up most (the trees' per-feature contributions)."""
        return self.explain_many([features], top)[0]

    def explain_many(self, rows: Sequence[Features], top: int = 3) -> list[list[tuple[str, float]]]:
        """``explain`` of each row, the trees' contributions computed for the whole batch in one call
        (a call costs milliseconds whatever its size)."""
        if self.booster is None or not rows:
            return [[] for _ in rows]
        matrix = np.array([self._row(x) for x in rows], dtype=np.float32)
        out = []
        for contributions in self.booster.predict(matrix, pred_contrib=True):
            ranked = sorted(
                zip(self.columns, (float(c) for c in contributions[:-1]), strict=True), key=lambda i: -i[1]
            )
            out.append([(name, value) for name, value in ranked[:top] if value > 0 and not math.isnan(value)])
        return out


def keep(transaction_id: str, ratio: float) -> bool:
    """A stable coin flip per transaction id, so a replay samples exactly the same examples."""
    return zlib.crc32(transaction_id.encode()) % 10_000 < ratio * 10_000


Candidate = LogisticCandidate | BoostingCandidate
