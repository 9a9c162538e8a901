"""The learners that compete to score transactions (pipeline/detection/model.py picks the champion).

* ``LogisticCandidate``: online logistic regression over standardised, clipped features (river's
  StandardScaler | Clip | LogisticRegression, held as numpy arrays), learning every label, frauds
  weighted (no legitimate label is thrown away); its probability is corrected for the weight, so
  it stays calibrated.
* ``BoostingCandidate``: gradient-boosted trees (LightGBM) retrained every ``retrain_every`` labels on
  a window of recent labelled examples (every fraud, a stable sample of the legitimate ones), then
  scoring whole batches at once; its probability is corrected for the sampling.

Both give a calibrated fraud probability from a transaction's features, and split it over the
features (``attributions_many``, for the explanations of alerts); both pickle (snapshots). The module
is longer than 400 lines because each learner keeps together how it learns, scores and splits a
score, which all read its internals.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np
from river import base, compose

from pipeline.detection.vocabulary import FeatureRows, Features


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


class Attribution(NamedTuple):
    """A row's score split over its features on the log-odds scale: ``base`` plus the sum of
    ``contributions`` is the log-odds of the candidate's (corrected) probability."""

    base: float
    contributions: dict[str, float]


def _uncorrect(probabilities: np.ndarray, odds_factor: float) -> np.ndarray:
    """The probabilities under the true class balance, from a model that learnt frauds
    ``odds_factor`` times over-represented (weights or under-sampled legitimate examples); 0 and 1
    stay as they are."""
    p = np.asarray(probabilities, dtype=np.float64)
    if odds_factor == 1.0:
        return p
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = p / (1.0 - p) / odds_factor
        corrected = odds / (1.0 + odds)
    return np.where(p <= 0.0, p, np.where(p >= 1.0, 1.0, corrected))


@dataclass
class LogisticCandidate:
    """Online logistic regression over the standardised features, held as numpy arrays.

    It learns exactly as river's ``StandardScaler() | Clip(8) | LogisticRegression(SGD(lr), l2)``
    learns one row at a time (the same running statistics, clip, loss gradient, intercept and
    weight updates, the same float operations on each feature), except that the weighted sum is
    numpy's (a different order of additions: results agree to float rounding, a test). It scores
    a whole batch as one matrix product.
    """

    ATTRIBUTION: ClassVar[str] = "linear"  # how attributions_many splits a score

    fraud_weight: float = 10.0
    learning_rate: float = 0.02
    name: str = "logistic"
    l2: float = 1e-5
    clip: float = 8.0
    intercept_lr: float = 0.01
    learnt: int = 0
    names: list[str] = field(default_factory=list)
    """The features in the order first seen; the arrays below hold one value per name."""
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    means: np.ndarray = field(default_factory=lambda: np.zeros(0))
    variances: np.ndarray = field(default_factory=lambda: np.zeros(0))
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    intercept: float = 0.0
    _index: dict[str, int] = field(default_factory=dict, repr=False)
    _keys: tuple[str, ...] = field(default=(), repr=False)
    """The keys of the last row that matched ``names`` exactly, in order (a row like it is read as
    one array, with no lookups)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A snapshot of the river-based candidate (a ``model`` pipeline) becomes these arrays."""
        if "model" in state:
            state = _from_river(state)
        defaults = LogisticCandidate().__dict__
        self.__dict__.update({**defaults, **state})
        self._index = {name: i for i, name in enumerate(self.names)}
        self._keys = ()

    @classmethod
    def from_river(cls, pipeline: compose.Pipeline, **fields: Any) -> LogisticCandidate:
        """The candidate of a river ``StandardScaler | Clip | LogisticRegression`` pipeline."""
        candidate = cls.__new__(cls)
        candidate.__setstate__({**fields, "model": pipeline})
        return candidate

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_index", "_keys")}

    @property
    def ready(self) -> bool:
        return self.learnt > 0

    # --- rows as arrays -------------------------------------------------------------------------
    def _columns(self, features: Features) -> slice | np.ndarray:
        """Where the row's values go in the arrays (in the row's key order); new names are added."""
        keys = tuple(features)
        if keys == self._keys:
            return slice(None)
        new = [name for name in keys if name not in self._index]
        if new:
            self._grow(new)
        if keys == tuple(self.names):
            self._keys = keys
            return slice(None)
        return np.fromiter((self._index[name] for name in keys), dtype=np.intp, count=len(keys))

    def _grow(self, new: list[str]) -> None:
        for name in new:
            self._index[name] = len(self.names)
            self.names.append(name)
        extra = np.zeros(len(new))
        arrays = (self.counts, self.means, self.variances, self.weights)
        self.counts, self.means, self.variances, self.weights = (np.concatenate([a, extra]) for a in arrays)
        self._keys = ()

    def _scaled(self, x: np.ndarray, columns: slice | np.ndarray) -> np.ndarray:
        """Standardised (0 where the variance is 0, as river's scaler), then clipped."""
        variances = self.variances[columns]
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(variances != 0, (x - self.means[columns]) / np.sqrt(variances), 0.0)
        return np.clip(scaled, -self.clip, self.clip)

    # --- scoring --------------------------------------------------------------------------------
    def predict_many(self, rows: Sequence[Features]) -> list[float]:
        """The fraud probability of each row, corrected for the fraud weight: one matrix product when
        every row has the same features (rows of other shapes are scored one at a time)."""
        if not self.learnt:
            return [0.0] * len(rows)
        if not rows:
            return []
        rows = FeatureRows.of(rows)
        if rows.same_keys():
            names = tuple(rows[0])
            known = np.array([name in self._index for name in names])
            at = np.array([self._index.get(name, 0) for name in names], dtype=np.intp)
            matrix = rows.matrix(names)
            scaled = np.where(known, self._scaled(matrix, at), 0.0)
            raw = scaled @ np.where(known, self.weights[at], 0.0) + self.intercept
        else:
            raw = np.array([self._raw(x) for x in rows])
        return _probabilities(raw, self.fraud_weight).tolist()

    def _learnt_part(self, features: Features) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(names, their columns, their scaled values) of the row's features that were learnt; the
        others count for nothing."""
        names = [name for name in features if name in self._index]
        at = np.array([self._index[name] for name in names], dtype=np.intp)
        x = np.array([features[name] for name in names], dtype=np.float64)
        return names, at, self._scaled(x, at)

    def _raw(self, features: Features) -> float:
        """The log-odds of one row."""
        _, at, scaled = self._learnt_part(features)
        return float(scaled @ self.weights[at]) + self.intercept

    # --- learning -------------------------------------------------------------------------------
    def learn(self, features: Features, is_fraud: bool, transaction_id: str = "") -> None:
        """Learn one label (every one: the id, which sampling candidates need, is not used here)."""
        columns = self._columns(features)
        x = np.fromiter(features.values(), dtype=np.float64, count=len(features))
        # river's StandardScaler.learn_one, then transform_one with the updated statistics, then Clip.
        self.counts[columns] += 1
        counts, means = self.counts[columns], self.means[columns]
        delta = x - means
        means = means + delta / counts
        self.means[columns] = means
        self.variances[columns] += (delta * (x - means) - self.variances[columns]) / counts
        scaled = self._scaled(x, columns)
        # river's LogisticRegression.learn_one: the log loss's gradient at the current weights,
        # times the sample weight; the intercept moves by intercept_lr, the row's weights by SGD.
        raw = float(scaled @ self.weights[columns]) + self.intercept
        gradient = _log_loss_gradient(is_fraud, raw) * (self.fraud_weight if is_fraud else 1.0)
        gradient = min(max(gradient, -1e12), 1e12)
        self.intercept -= self.intercept_lr * gradient
        # L2 shrinks the weights of the features in the row only (as river's does).
        weights = self.weights[columns]
        self.weights[columns] = weights - self.learning_rate * (scaled * gradient + self.l2 * weights)
        self.learnt += 1

    def explain(self, features: Features, top: int = 3) -> list[tuple[str, float]]:
        """The features that pushed the log-odds up most: weight times scaled value, largest first."""
        return self.explain_many([features], top)[0]

    def explain_many(self, rows: Sequence[Features], top: int = 3) -> list[list[tuple[str, float]]]:
        if not self.learnt:
            return [[] for _ in rows]
        return [strongest(attribution.contributions, top) for attribution in self.attributions_many(rows)]

    def attributions_many(self, rows: Sequence[Features]) -> list[Attribution]:
        """Each row's log-odds split over its features: weight times scaled value of every learnt
        feature (one not learnt yet counts for nothing); the base is the intercept less the fraud
        weight's correction (``_uncorrect``)."""
        base = self.intercept - math.log(self.fraud_weight)
        table = FeatureRows.of(rows)
        if len(table) > 1 and table.same_keys():  # one matrix: the same elementwise arithmetic
            names = [name for name in table[0] if name in self._index]
            at = np.array([self._index[name] for name in names], dtype=np.intp)
            values = self._scaled(table.matrix(tuple(names)), at) * self.weights[at]
            return [Attribution(base, dict(zip(names, row, strict=True))) for row in values.tolist()]
        out = []
        for features in rows:
            names, at, scaled = self._learnt_part(features)
            out.append(Attribution(base, dict(zip(names, (scaled * self.weights[at]).tolist(), strict=True))))
        return out


def _log_loss_gradient(is_fraud: bool, raw: float) -> float:
    """river's ``optim.losses.Log().gradient`` for a label in {False, True} and a raw log-odds."""
    y = 1 if is_fraud else -1
    z = raw * y
    if z > 18.0:
        return math.exp(-z) * -y
    if z < -18.0:
        return float(-y)
    return -y / (math.exp(z) + 1.0)


def _probabilities(raw: np.ndarray, fraud_weight: float) -> np.ndarray:
    """The logistic function of the log-odds (0 or 1 beyond +-30, as river's sigmoid), corrected
    for the fraud weight."""
    with np.errstate(over="ignore"):
        p = np.where(raw < -30, 0.0, np.where(raw > 30, 1.0, 1.0 / (1.0 + np.exp(-raw))))
    return _uncorrect(p, fraud_weight)


def _from_river(state: dict[str, Any]) -> dict[str, Any]:
    """The arrays of a river ``StandardScaler | Clip | LogisticRegression`` pipeline's state."""
    scaler, clip, logistic = list(state.pop("model").steps.values())
    weights = logistic.weights
    names = list(dict.fromkeys([*scaler.means, *weights]))
    state.update(
        names=names,
        counts=np.array([float(scaler.counts.get(n, 0)) for n in names]),
        means=np.array([scaler.means.get(n, 0.0) for n in names]),
        variances=np.array([scaler.vars.get(n, 0.0) for n in names]),
        weights=np.array([weights.get(n, 0.0) for n in names]),
        intercept=float(logistic.intercept),
        clip=float(clip.limit),
        l2=float(logistic.l2),
        learning_rate=float(logistic.optimizer.learning_rate),
    )
    return state


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

    ATTRIBUTION: ClassVar[str] = "tree_shap"  # LightGBM's pred_contrib: TreeSHAP along the trees' paths

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
        raw = self.booster.predict(
            FeatureRows.of(rows).matrix(self.columns).astype(np.float32), num_threads=1
        )
        return _uncorrect(raw, 1.0 / self.legit_keep_ratio).tolist()

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
        return [strongest(attribution.contributions, top) for attribution in self.attributions_many(rows)]

    def attributions_many(self, rows: Sequence[Features]) -> list[Attribution]:
        """Each row's log-odds split over the features by the trees (TreeSHAP: LightGBM follows every
        tree's decision paths, ``pred_contrib``), in one call for the batch; the base is the trees'
        expected value plus the sampling's correction (``_uncorrect``). Features that no path of the
        row depends on contribute 0 and are left out."""
        if self.booster is None or not rows:
            return [Attribution(0.0, {}) for _ in rows]
        matrix = FeatureRows.of(rows).matrix(self.columns).astype(np.float32)
        shift = math.log(self.legit_keep_ratio)
        out = []
        for contributions in self.booster.predict(matrix, pred_contrib=True, num_threads=1).tolist():
            split = {name: c for name, c in zip(self.columns, contributions, strict=False) if c and c == c}
            out.append(Attribution(contributions[-1] + shift, split))
        return out


def strongest(contributions: dict[str, float], top: int) -> list[tuple[str, float]]:
    """The ``top`` largest contributions, those above 0 (which pushed the score up), largest first."""
    ranked = sorted(contributions.items(), key=lambda item: -item[1])[:top]
    return [(name, value) for name, value in ranked if value > 0]


def keep(transaction_id: str, ratio: float) -> bool:
    """A stable coin flip per transaction id, so a replay samples exactly the same examples."""
    return zlib.crc32(transaction_id.encode()) % 10_000 < ratio * 10_000


Candidate = LogisticCandidate | BoostingCandidate
