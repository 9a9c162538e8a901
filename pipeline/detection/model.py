"""The learned fraud score: candidates that compete on recent labels, a champion that scores, and a
fraud-type classifier. They learn from delayed labels; predictions come before learning
(progressive validation): a transaction is scored with the model as it is, and learnt from only
once its label arrives.

Champion and challengers (pipeline/detection/candidates.py): every label is first predicted by
every candidate, then learnt by all of them. A challenger replaces the champion only when its
average precision over the labels both have seen recently (at most ``window``) beats the champion's
by ``margin``, with at least ``min_frauds`` frauds among them, and not within ``cooldown`` labels of
the last promotion. A drift (ADWIN on the champion's errors rising) adds a fresh challenger beside
the champion; nothing learnt is thrown away: the champion keeps scoring until it is beaten, and a
demoted champion stays in the pool, learning, and may win again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river import compose, drift, linear_model, optim, preprocessing
from river.utils.math import softmax as river_softmax

from pipeline.detection.anomaly import AnomalyDetector
from pipeline.detection.candidates import (
    Attribution,
    BoostingCandidate,
    Candidate,
    Clip,
    LogisticCandidate,
    strongest,
)
from pipeline.detection.evaluation import average_precision
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.vocabulary import FRAUD_TYPES, FeatureRows, Features

log = logging.getLogger(__name__)

JUDGE_EVERY = 500
"""Labels between two judgements of the pool."""


def _type_classifier() -> compose.Pipeline:
    return (
        preprocessing.StandardScaler()
        | Clip()
        | linear_model.SoftmaxRegression(optimizer=optim.SGD(0.05), l2=1e-4)
    )


def softmax_types(pipeline: compose.Pipeline, rows: FeatureRows) -> list[str | None] | None:
    """``pipeline.predict_one`` of each row (a ``StandardScaler | Clip | SoftmaxRegression``, as
    ``_type_classifier`` builds it) on the rows' matrix, to the bit: the scaler's standard deviations
    are Python's ``v ** 0.5``, then the same elementwise subtraction, division and clipping; each
    class's dot product is the products in river's order summed one after the other (``cumsum``, as
    Python's ``sum``); the softmax and the choice are river's own, per row. None when the rows or
    the pipeline are not that (rows of different features, a feature the scaler has not seen, which
    ``transform_one`` would add to it, or learning during predictions)."""
    scaler, clip, softmax = pipeline.steps.values()
    names = rows.names if len(rows) else None
    if (
        not names
        or type(scaler) is not preprocessing.StandardScaler
        or scaler.window_size is not None
        or not scaler.with_std
        or type(clip) is not Clip
        or type(softmax) is not linear_model.SoftmaxRegression
        or pipeline._LEARN_UNSUPERVISED_DURING_PREDICT
        or any(name not in scaler.means or name not in scaler.vars or scaler.vars[name] < 0 for name in names)
    ):
        return None
    variances = [scaler.vars[name] for name in names]
    deviations = np.array([v**0.5 if v else 1.0 for v in variances])
    means = np.array([scaler.means[name] for name in names], dtype=np.float64)
    with np.errstate(all="ignore"):
        scaled = np.where(
            np.array([bool(v) for v in variances]), (rows.matrix(names) - means) / deviations, 0.0
        )
    limit = clip.limit
    clipped = np.where(scaled < -limit, -limit, np.where(scaled > limit, limit, scaled))
    column = {name: i for i, name in enumerate(names)}
    raw: dict[Any, list[float]] = {}
    for label, weights in softmax.weights.items():  # river's dot: the shorter mapping's order
        order = (
            [n for n in weights if n in column]
            if len(weights) < len(names)
            else [n for n in names if n in weights]
        )
        products = clipped[:, [column[n] for n in order]] * np.array([weights[n] for n in order])
        totals = np.cumsum(products, axis=1)[:, -1] + 0.0 if order else np.zeros(len(rows))
        raw[label] = totals.tolist()
    out: list[str | None] = []
    for index in range(len(rows)):
        y_pred = river_softmax({label: values[index] for label, values in raw.items()})
        out.append(max(y_pred, key=y_pred.get) if y_pred else None)  # type: ignore[arg-type]
    return out


@dataclass
class Contender:
    """A candidate and its scores on the labels it has been compared on (the most recent last)."""

    candidate: Candidate
    since: int
    """The model's label count when it joined: comparisons use only labels after both joined."""
    scores: deque[tuple[int, float, bool]] = field(default_factory=lambda: deque(maxlen=5_000))
    """(label number, score given before learning it, is fraud)"""


@dataclass
class Promotion:
    """A change of champion, for logs, metrics and the model's version."""

    at_label: int
    champion: str
    beaten: str
    champion_ap: float
    beaten_ap: float


@dataclass
class OnlineFraudModel:
    """Fraud probability from the champion of the pool, plus the most likely fraud type."""

    pool: list[Contender] = field(default_factory=list)
    champion: int = 0
    fraud_type: compose.Pipeline = field(default_factory=_type_classifier)
    labels_learnt: int = 0
    frauds_learnt: int = 0
    drift: drift.ADWIN = field(default_factory=lambda: drift.ADWIN(delta=0.002))
    anomaly: AnomalyDetector = field(default_factory=AnomalyDetector)
    drifts: int = 0
    generation: int = 0
    """Counts the promotions: a new champion is a new generation."""
    promotions: list[Promotion] = field(default_factory=list)
    last_promotion: int = 0
    window: int = 5_000
    margin: float = 0.02
    min_frauds: int = 30
    cooldown: int = 5_000
    max_pool: int = 3
    boosting: bool = True

    def __post_init__(self) -> None:
        if not self.pool:
            self.pool.append(Contender(LogisticCandidate(), 0))
            if self.boosting:
                self.pool.append(Contender(BoostingCandidate(FEATURE_NAMES), 0))

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling a snapshot saved before a field existed gives that field its default; a
        snapshot of the single logistic model (before the pool) becomes the pool's champion."""
        if "pool" not in state and "fraud" in state:
            legacy = LogisticCandidate.from_river(
                state.pop("fraud"), fraud_weight=1.0, learnt=state.get("labels_learnt", 0)
            )
            state["pool"] = [Contender(legacy, 0)]
            state.pop("legit_keep_ratio", None)
        defaults = OnlineFraudModel(boosting=False)
        self.__dict__.update({**defaults.__dict__, **state})

    @property
    def version(self) -> str:
        """Stamped on every decision: the champion, its generation and the labels learnt."""
        generation = f".g{self.generation}" if self.generation else ""
        return f"{self.pool[self.champion].candidate.name}{generation}@{self.labels_learnt}"

    @property
    def best(self) -> Candidate:
        return self.pool[self.champion].candidate

    # --- scoring --------------------------------------------------------------------------------
    def fraud_probabilities(self, rows: list[Features]) -> list[float]:
        """The champion's fraud probability of each row, in one call (0 before any label)."""
        if self.labels_learnt == 0:
            return [0.0] * len(rows)
        return self.best.predict_many(rows)

    def fraud_probability(self, features: Features) -> float:
        return self.fraud_probabilities([features])[0]

    def predict(self, features: Features) -> tuple[float, str | None]:
        """(fraud probability, most likely fraud type or None before any fraud was learnt)."""
        return self.fraud_probability(features), self.likely_type(features)

    def likely_type(self, features: Features) -> str | None:
        """The most likely fraud type, or None before any fraud was learnt. Asked only when a
        decision needs a type."""
        if self.labels_learnt == 0 or not self.frauds_learnt:
            return None
        return self.fraud_type.predict_one(features)

    def likely_types(self, rows: FeatureRows) -> list[str | None] | None:
        """``likely_type`` of each row in one pass over the batch's matrix, with river's arithmetic
        (``softmax_types``); None when that cannot be done exactly so, or the answer is None for every
        row anyway, or ``likely_type`` is not this class's (ask ``likely_type`` per row)."""
        if self.labels_learnt == 0 or not self.frauds_learnt:
            return None
        if type(self).likely_type is not OnlineFraudModel.likely_type:
            return None
        return softmax_types(self.fraud_type, rows)

    def explain(self, features: Features, top: int = 3) -> list[tuple[str, float]]:
        """The features that pushed the champion's score up most: (name, contribution), largest first."""
        return self.explain_many([features], top)[0]

    def explain_many(self, rows: Sequence[Features], top: int = 3) -> list[list[tuple[str, float]]]:
        """``explain`` of each row, in one call of the champion."""
        return [strongest(attribution.contributions, top) for attribution in self.attributions_many(rows)]

    def attributions_many(self, rows: Sequence[Features]) -> list[Attribution]:
        """The champion's split of each row's score over its features, in one call (none before
        any label)."""
        if not self.labels_learnt:
            return [Attribution(0.0, {}) for _ in rows]
        return self.best.attributions_many(rows)

    # --- learning -------------------------------------------------------------------------------
    def learn(self, transaction_id: str, features: Features, is_fraud: bool, fraud_type: str | None) -> bool:
        """Learn one label (``learn_many`` of one)."""
        self.learn_many([(transaction_id, features, is_fraud, fraud_type)])
        return True

    def learn_many(self, labels: list[tuple[str, Features, bool, str | None]]) -> None:
        """Learn a batch of (transaction id, features, is fraud, fraud type), in order: every
        candidate first predicts the whole batch (one call each), then every label is learnt, and
        the pool is judged every JUDGE_EVERY labels."""
        if not labels:
            return
        rows = FeatureRows(features for _, features, _, _ in labels)
        # Each contender's predictions of the batch, by identity: a drift may add or drop one.
        predicted = {id(c): c.candidate.predict_many(rows) for c in self.pool if c.candidate.ready}
        for offset, (transaction_id, features, is_fraud, fraud_type) in enumerate(labels):
            number = self.labels_learnt
            for contender in self.pool:
                scores = predicted.get(id(contender))
                if scores is not None:
                    contender.scores.append((number, scores[offset], is_fraud))
            champion = predicted.get(id(self.pool[self.champion]))
            if champion is not None:
                self._watch_errors(abs(float(is_fraud) - champion[offset]))
            for contender in self.pool:
                contender.candidate.learn(features, is_fraud, transaction_id)
            self.labels_learnt += 1
            if is_fraud and fraud_type in FRAUD_TYPES:
                self.fraud_type.learn_one(features, fraud_type)
                self.frauds_learnt += 1
            if self.labels_learnt % JUDGE_EVERY == 0:
                self.judge()

    def judge(self) -> Promotion | None:
        """Promote the challenger that beats the champion on the labels both saw, if one does."""
        if self.labels_learnt - self.last_promotion < self.cooldown and self.promotions:
            return None
        champion = self.pool[self.champion]
        best: tuple[float, float, int] | None = None
        for index, contender in enumerate(self.pool):
            if index == self.champion or not contender.candidate.ready:
                continue
            compared = compare(champion, contender, self.window)
            if compared is None or compared[2] < self.min_frauds:
                continue
            champion_ap, challenger_ap, _ = compared
            if challenger_ap >= champion_ap + self.margin and (
                best is None or challenger_ap - champion_ap > best[1] - best[0]
            ):
                best = (champion_ap, challenger_ap, index)
        if best is None:
            return None
        champion_ap, challenger_ap, index = best
        promotion = Promotion(
            self.labels_learnt,
            self.pool[index].candidate.name,
            champion.candidate.name,
            challenger_ap,
            champion_ap,
        )
        self.champion = index
        self.generation += 1
        self.last_promotion = self.labels_learnt
        self.promotions.append(promotion)
        self.drift = drift.ADWIN(delta=0.002)
        log.warning(
            "model: %s (AP %.3f) replaces %s (AP %.3f) after %d labels: generation %d",
            promotion.champion,
            challenger_ap,
            promotion.beaten,
            champion_ap,
            self.labels_learnt,
            self.generation,
        )
        return promotion

    def _watch_errors(self, error: float) -> None:
        """ADWIN over the champion's errors on the labels it learns: when the error rate has risen
        significantly, the world changed (new fraud pattern, new traffic): a fresh challenger joins
        the pool and learns beside the champion, which keeps scoring until it is beaten."""
        mean_before = self.drift.estimation
        self.drift.update(error)
        mean_after = self.drift.estimation
        if not (self.drift.drift_detected and mean_after > mean_before):
            return
        self.drifts += 1
        self.drift = drift.ADWIN(delta=0.002)
        if any(c.since and c.candidate.learnt < self.cooldown for c in self.pool):
            return  # a challenger started on an earlier drift is still young: it goes on learning
        if len(self.pool) >= self.max_pool:  # make room: the weakest contender that is not champion
            weakest = min(
                (i for i in range(len(self.pool)) if i != self.champion and self.pool[i].since),
                key=lambda i: _recent_ap(self.pool[i], self.window),
                default=None,
            )
            if weakest is None:
                return
            del self.pool[weakest]
            self.champion -= weakest < self.champion
        self.pool.append(Contender(LogisticCandidate(name=f"logistic-d{self.drifts}"), self.labels_learnt))
        log.warning(
            "model error drift (%.3f -> %.3f): a challenger learns beside the champion",
            mean_before,
            mean_after,
        )


def compare(champion: Contender, challenger: Contender, window: int) -> tuple[float, float, int] | None:
    """(champion's AP, challenger's AP, frauds) over the last ``window`` labels both scored."""
    theirs = {number: score for number, score, _ in challenger.scores}
    pairs = [(score, theirs[number], y) for number, score, y in champion.scores if number in theirs][-window:]
    frauds = sum(1 for *_, y in pairs if y)
    if not pairs or frauds == 0 or frauds == len(pairs):
        return None
    labels = [y for *_, y in pairs]
    return (
        average_precision(labels, [a for a, _, _ in pairs]),
        average_precision(labels, [b for _, b, _ in pairs]),
        frauds,
    )


def _recent_ap(contender: Contender, window: int) -> float:
    recent = list(contender.scores)[-window:]
    labels = [y for *_, y in recent]
    if not any(labels) or all(labels):
        return 0.0
    return average_precision(labels, [s for _, s, _ in recent])
