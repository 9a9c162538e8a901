"""The decision: rule hits and the online model combined into allow / review / block.

How they combine (documented in README.md, "How a decision is made"):
The score and the action are apart. The **score** is the model's calibrated fraud probability
once the model has learnt ``model_min_labels`` labels, whatever rules, lists and budgets say: it
ranks transactions by the evidence (the alert queue, reports and backtests sort by it). Before
that (cold start) it is the strength of the rules and anomalies below. The **action** is chosen by:

1. A card, device or merchant on a block list: block.
2. A card on the allow list (or a card, device or merchant on the list-updates topic's allow
   list, pipeline/detection/entity_lists.py): allow, whatever else fires.
3. Rules: a firing ``block`` rule gives a strength of 0.95, a ``review`` rule 0.7.
4. The model's fraud probability counts once it has learnt ``model_min_labels`` labels.
5. Alert budget: the model alone may flag at most ``alert_budget`` of the transactions. The
   engine tracks the model's recent scores (a rolling quantile over 10,000 decisions) and
   counts a model score only above the (1 - budget) quantile as well as above the threshold;
   the rules are not limited by the budget.
6. Anomalies: a HalfSpaceTrees detector scores how unusual each transaction is, without labels
   (pipeline/detection/anomaly.py). A score above 0.8 that is also in the top ``anomaly_budget``
   of recent scores counts as 0.6: a review, for the cold start and for patterns no label has
   shown yet.
7. strength = max(rule strength, counted model probability, counted anomaly); block at
   ``block_threshold``, review at ``review_threshold``. The fraud type comes from the strongest
   rule that fired, else from the model's type classifier, else from the anomaly's strongest signs.

The module is longer than 400 lines because the batch path (lists, rules, budgets and the type
classifier once per batch) and the decision of one row it must equal are kept side by side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river import stats

from pipeline.detection.anomaly import likely_fraud_type, rows_of
from pipeline.detection.candidates import Attribution, strongest
from pipeline.detection.entity_lists import EntityLists, ListHit
from pipeline.detection.features import Features
from pipeline.detection.model import OnlineFraudModel
from pipeline.detection.plain_words import plain_signals
from pipeline.detection.rules import Rule, RuleSet
from pipeline.detection.vocabulary import FRAUD_TYPE_NAMES, FeatureRows

RULE_SCORE = {"review": 0.7, "block": 0.95}
ACTIONS = ("allow", "review", "block")
ANOMALY_SCORE = 0.6
ANOMALY_FLOOR = 0.8
QUANTILE_WARMUP = 500
_UNKNOWN = object()
"""The type classifier was not asked for a row yet."""
COLUMNAR_RULES_FROM = 256
"""Batches of this many transactions or more evaluate the rules on columns, smaller ones row by row:
numpy's cost per call makes a rule's columnar plan cost about 150 us per batch whatever its size,
and ``Rule.matches`` about 1.3 us per row (six rules: 927 against 8 us per transaction in batches of
1, 24 against 8 in batches of 64, 10 against 9 in batches of 500)."""


@dataclass(slots=True)
class Decision:
    """What the engine decided about one transaction, and why. Read-only by convention, not frozen:
    one is made per transaction, and a frozen dataclass's ``__init__`` (``object.__setattr__`` per
    field) costs three times a plain one's (1.5 against 0.4 us, a tenth of the detector's time)."""

    action: str
    """allow, review or block."""
    score: float
    model_score: float
    fraud_type: str | None
    reasons: tuple[str, ...]
    rule_hits: tuple[str, ...]
    model_version: str


@dataclass
class DetectionEngine:
    """Scores transactions with rules and the online model; learns from labels."""

    rules: RuleSet
    model: OnlineFraudModel
    review_threshold: float = 0.5
    block_threshold: float = 0.9
    model_review_threshold: float | None = None
    """The model's probability from which it alone asks for a review (None: ``review_threshold``)."""
    model_block_threshold: float | None = None
    """The model's probability from which it alone blocks (None: ``block_threshold``)."""
    model_min_labels: int = 200
    learning: bool = True
    alert_budget: float | None = 0.05
    anomaly_budget: float | None = 0.01
    lists: EntityLists = field(default_factory=EntityLists)
    """Block/allow entries from the list-updates topic, on top of the rule file's lists."""
    _recent_scores: stats.RollingQuantile | None = field(default=None, repr=False)
    _recent_anomalies: stats.RollingQuantile | None = field(default=None, repr=False)
    _anomalies_seen: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.alert_budget is not None:
            self._recent_scores = stats.RollingQuantile(q=1 - self.alert_budget, window_size=10_000)
        if self.anomaly_budget is not None:
            self._recent_anomalies = stats.RollingQuantile(q=1 - self.anomaly_budget, window_size=10_000)

    def _anomalies(self, rows: Sequence[Features]) -> list[float | None]:
        """Each transaction's anomaly score when it counts (unusual and within the budget), else None;
        the detector scores and learns the whole batch at once."""
        if self._recent_anomalies is None:
            return [None] * len(rows)
        scores = self.model.anomaly.score_and_learn_many(rows_of(rows))
        out: list[float | None] = []
        update, get = _calls(self._recent_anomalies)
        for score in scores.tolist():
            if score != score:  # NaN: warming up
                out.append(None)
                continue
            update(score)
            self._anomalies_seen += 1
            line = get()
            counts = not (
                self._anomalies_seen < QUANTILE_WARMUP
                or score < ANOMALY_FLOOR
                or (line is not None and score < line)
            )
            out.append(score if counts else None)
        if self._anomalies_seen:
            _updated(self._recent_anomalies)
        return out

    def _counted(self, model_scores: Sequence[float], trained: bool) -> list[bool]:
        """Whether each model score counts: the model is trained and the score is among the top
        ``alert_budget`` of recent scores (the model alone may flag no more than that share of the
        traffic; the rules are not limited). The scores join the rolling quantile in order."""
        if not trained:
            return [False] * len(model_scores)
        if self._recent_scores is None:
            return [True] * len(model_scores)
        update, get = _calls(self._recent_scores)
        out = []
        for score in model_scores:
            update(score)
            line = get()
            out.append(line is None or score >= line)
        if out:
            _updated(self._recent_scores)
        return out

    def decide(
        self, txn: Mapping[str, Any], features: Features, model_score: float | None = None
    ) -> Decision:
        """The decision on one transaction (``decide_many`` of one)."""
        decided = self.decide_many([(txn, features)], None if model_score is None else [model_score])[0]
        if isinstance(decided, Exception):
            raise decided
        return decided

    def decide_many(
        self,
        items: Sequence[tuple[Mapping[str, Any], Features]],
        model_scores: Sequence[float] | None = None,
    ) -> list[Decision | Exception]:
        """The decisions on a batch of (transaction, features), in order, as ``decide`` one by one
        would give them (``decide_rows``)."""
        return self.decide_rows([txn for txn, _ in items], FeatureRows(f for _, f in items), model_scores)

    def decide_rows(
        self,
        txns: Sequence[Mapping[str, Any]],
        rows: FeatureRows,
        model_scores: Sequence[float] | None = None,
        attributions: dict[int, Attribution] | None = None,
    ) -> list[Decision | Exception]:
        """The decisions on a batch of transactions and their feature rows, in order, as ``decide``
        one by one would give them: the model's probabilities (``model_scores`` when the caller
        computed them), the anomaly trees and the rules each run once over the whole batch; the
        budgets' rolling quantiles see the scores in order. A row whose decision failed gets its
        exception instead (the batch goes on). A row that nothing flags is allowed without its
        features being read as a dict. ``attributions`` gets the champion's attribution of each row
        the model flags, by index (what its reason names; the alert's explanation reuses it)."""
        if model_scores is None:
            model_scores = self.model.fraud_probabilities(rows)
        trained = self.model.labels_learnt >= self.model_min_labels
        counted = self._counted(model_scores, trained)
        anomalies = self._anomalies(rows)
        hits = self._rule_hits(txns, rows)
        model_review = self.model_review_threshold or self.review_threshold
        model_block = self.model_block_threshold or self.block_threshold
        model_actions = [
            _action(score if counts else 0.0, model_review, model_block)
            for score, counts in zip(model_scores, counted, strict=True)
        ]
        # The model's strongest signals, for the reasons of the rows it flags: one call for the batch.
        flagged = [index for index, action in enumerate(model_actions) if action != "allow"]
        split = self.model.attributions_many(rows.take(flagged))
        if attributions is not None:
            attributions.update(zip(flagged, split, strict=True))
        explanations = {i: strongest(a.contributions, 3) for i, a in zip(flagged, split, strict=True)}
        plain = _action(0.0, self.review_threshold, self.block_threshold) == "allow"
        version = self.model.version
        candidates = self.lists.candidates(txns, self.rules)  # the rows a list may decide
        out: list[Decision | Exception | None] = []
        pending: list[tuple[int, list[Rule]]] = []  # the rows that need ``_decision``, their hits
        # The rows no list, rule, model or anomaly can flag, when the batch tells at once.
        quiet = (
            [
                not h and a == "allow" and n is None
                for h, a, n in zip(hits, model_actions, anomalies, strict=True)
            ]
            if plain and hits is not None and candidates is not None
            else [False] * len(txns)
        )
        rounded = round_9(model_scores) if any(quiet) else []
        for index, txn in enumerate(txns):
            if quiet[index] and index not in candidates:  # type: ignore[operator]
                out.append(_unflagged(rounded[index], trained, version))
                continue
            try:
                listed = (
                    self.lists.match(txn, self.rules) if candidates is None or index in candidates else None
                )
                model_score = model_scores[index]
                if listed is not None:
                    out.append(self._listed(listed, rows[index], model_score, trained))
                    continue
                row_hits = hits[index] if hits is not None else self.rules.evaluate({**txn, **rows[index]})
                if plain and not row_hits and model_actions[index] == "allow" and anomalies[index] is None:
                    out.append(_unflagged(round(model_score, 9), trained, version))
                    continue
                out.append(None)
                pending.append((index, row_hits))
            except Exception as exc:
                out.append(exc)
        # The type classifier's answer for every row that may show it, in one pass (None: row by row).
        types = self.model.likely_types(rows.take([index for index, _ in pending])) if pending else None
        for position, (index, row_hits) in enumerate(pending):
            try:
                out[index] = self._decision(
                    txns[index], rows[index], model_scores[index], trained, model_actions[index],
                    anomalies[index], row_hits, explanations.get(index, []),
                    _UNKNOWN if types is None else types[position],
                )  # fmt: skip
            except Exception as exc:
                out[index] = exc
        return out  # type: ignore[return-value]  # every None was replaced

    def _rule_hits(self, txns: Sequence[Mapping[str, Any]], rows: FeatureRows) -> list[list[Rule]] | None:
        """The rules that fire for each item, evaluated on the batch's columns; None when each row
        is to be evaluated alone: a small batch (``COLUMNAR_RULES_FROM``), or a row raised (a
        division by zero), so that only it fails."""
        rules = self.rules.rules
        if not rules:
            return [[] for _ in txns]
        if len(txns) < COLUMNAR_RULES_FROM:
            return None
        uniform = rows.names  # None: rows of different features, each read as a dict
        features = set(uniform or ())
        columns = {
            name: rows.matrix((name,))[:, 0]
            if name in features
            else _column(name, txns, rows if uniform is None else None)
            for name in self.rules.names
        }
        try:
            matrix = self.rules.evaluate_columns(columns, len(txns))
        except ZeroDivisionError:
            return None
        fired = matrix.any(axis=0).tolist()
        return [
            [rule for rule, hit in zip(rules, matrix[:, index].tolist(), strict=True) if hit]
            if any_hit
            else []
            for index, any_hit in enumerate(fired)
        ]

    def _decision(
        self,
        txn: Mapping[str, Any],
        features: Features,
        model_score: float,
        trained: bool,
        model_action: str,
        anomaly: float | None,
        hits: list[Rule],
        explanation: list[tuple[str, float]],
        known_type: object = _UNKNOWN,
    ) -> Decision:
        """The decision on a transaction no list decides, from its rule hits, model score and anomaly.
        ``known_type``: the type classifier's answer for it, when the caller has it (``_UNKNOWN``:
        asked here, only if needed)."""
        hits = sorted(hits, key=lambda rule: RULE_SCORE[rule.action], reverse=True)
        rule_score = RULE_SCORE[hits[0].action] if hits else 0.0
        # The action: the strongest of the rules', the model's (within its budget) and an anomaly's.
        strength = max(rule_score, ANOMALY_SCORE if anomaly else 0.0)
        action = max(
            _action(strength, self.review_threshold, self.block_threshold), model_action, key=ACTIONS.index
        )
        # The score: the model's probability once it is trained, whatever rules and budgets say;
        # before that, the rules' and anomalies' strength (cold start).
        score = model_score if trained else strength
        model_flags = model_action != "allow"
        # The type classifier is asked only when the model's type is shown or decides the type.
        model_type: str | None = None
        if model_flags or (action != "allow" and not hits):
            model_type = self.model.likely_type(features) if known_type is _UNKNOWN else known_type  # type: ignore[assignment]
        reasons = (
            self._reasons(
                {**txn, **features},
                hits,
                features,
                model_score,
                model_flags,
                model_type,
                anomaly,
                explanation,
            )
            if hits or model_flags or anomaly is not None
            else []
        )
        fraud_type = hits[0].fraud_type if hits else (model_type if action != "allow" else None)
        if action != "allow" and fraud_type is None:
            fraud_type = likely_fraud_type(features)
        return Decision(
            action,
            round(score, 9),
            round(model_score, 9),
            fraud_type,
            tuple(reasons),
            tuple(rule.id for rule in hits),
            self.model.version,
        )

    def _listed(self, listed: ListHit, features: Features, model_score: float, trained: bool) -> Decision:
        if listed.list == "block":
            kind = self.model.likely_type(features) or "unauthorized_transactions"
            score = model_score if trained else 1.0
            return Decision(
                "block", round(score, 9), round(model_score, 9), kind, (listed.reason,), (listed.rule_hit,),
                self.model.version,
            )  # fmt: skip
        score = model_score if trained else 0.0
        return Decision(
            "allow", round(score, 9), round(model_score, 9), None, (listed.reason,), (listed.rule_hit,),
            self.model.version,
        )  # fmt: skip

    def _reasons(
        self,
        env: Mapping[str, Any],
        hits: list[Rule],
        features: Features,
        model_score: float,
        model_flags: bool,
        model_type: str | None,
        anomaly: float | None,
        explanation: list[tuple[str, float]],
    ) -> list[str]:
        """One reason per fraud type (the strongest rule's: a block rule restates its review twin),
        then the model's when it flags, then the anomaly's when nothing else explains it."""
        explained: set[str] = set()
        reasons = []
        for rule in hits:
            if rule.fraud_type not in explained:
                explained.add(rule.fraud_type)
                reasons.append(rule.explain(env))
        if model_flags:
            kind = FRAUD_TYPE_NAMES.get(model_type or "", "fraud")
            signals = "; ".join(plain_signals([name for name, _ in explanation], features))
            reasons.append(
                f"Model: {model_score:.0%} likely fraud ({kind})"
                + (f"; strongest signals: {signals}" if signals else "")
            )
        if anomaly is not None and not hits and not model_flags:
            reasons.append(
                f"Unusual transaction: anomaly score {anomaly:.2f}, among the most unusual "
                f"{self.anomaly_budget:.0%} of recent traffic"
            )
        return reasons

    def learn(self, transaction_id: str, features: Features, is_fraud: bool, fraud_type: str | None) -> bool:
        """Let the model learn one label (unless learning is off, as for a rules-only backtest)."""
        return self.learn_many([(transaction_id, features, is_fraud, fraud_type)]) == 1

    def learn_many(self, labels: list[tuple[str, Features, bool, str | None]]) -> int:
        """Let the model learn a batch of labels, in order; returns how many it learnt."""
        if not self.learning:
            return 0
        self.model.learn_many(labels)
        return len(labels)


def _column(name: str, txns: Sequence[Mapping[str, Any]], rows: FeatureRows | None) -> np.ndarray:
    """The values of ``name`` in the batch (a feature of ``rows``, else a transaction field, as a
    rule reads it; without rows, a transaction field): float64 with NaN for null when every value
    is a number, else an object array."""
    if rows is None:
        values = [txn.get(name) for txn in txns]
    else:
        values = [row[name] if name in row else txn.get(name) for txn, row in zip(txns, rows, strict=True)]
    if all(value is None or (type(value) in (int, float, bool)) for value in values):
        return np.array([math.nan if value is None else value for value in values], dtype=np.float64)
    return np.array(values, dtype=object)


def round_9(values: Sequence[float]) -> list[float]:
    """``round(value, 9)`` of each value, to the bit, mostly in numpy (Python's costs about 1 us a
    call). ``rint(value * 1e9) / 1e9`` is the double nearest the correctly rounded decimal whenever
    the computed product is not within 1e-6 of a half: the product is off the exact one by at most
    half its last place, and a product not that close to a half is on the same side of it as the
    exact one (a last place under 1e-6 is within the margin; a larger one, up to 1/8 for values under
    1e6, puts the half on the products' grid, a whole place away). Products within the margin (ties
    included), values from 1e6 up and values not finite go through Python's ``round``."""
    if not all(type(value) is float for value in values):  # numpy's scalars round their own way
        return [round(value, 9) for value in values]
    array = np.asarray(values, dtype=np.float64).reshape(len(values))
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = array * 1e9
        nearest = np.rint(scaled)
        doubtful = ~(np.abs(array) < 1e6) | (np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) <= 1e-6)
    out = (nearest / 1e9).tolist()
    for index in np.flatnonzero(doubtful).tolist():
        out[index] = round(values[index], 9)
    return out


def _unflagged(model_score: float, trained: bool, version: str) -> Decision:
    """What ``_decision`` gives a row that no list, rule, model or anomaly flags, from its model
    score rounded to 9 digits."""
    return Decision("allow", model_score if trained else 0.0, model_score, None, (), (), version)


def _calls(quantile: stats.RollingQuantile) -> tuple[Any, Any]:
    """(update, get) of a rolling quantile: its Rust object's own, without river's wrapper around
    each call (``_updated`` then marks the wrapper updated); the wrapper's where it has none."""
    inner = getattr(quantile, "_rolling_quantile", None)
    if inner is None or not hasattr(quantile, "_is_updated"):
        return quantile.update, quantile.get
    return inner.update, inner.get


def _updated(quantile: stats.RollingQuantile) -> None:
    """What river's ``RollingQuantile.update`` does besides its Rust object's update."""
    if hasattr(quantile, "_is_updated"):
        quantile._is_updated = True


def _action(strength: float, review: float, block: float) -> str:
    return "block" if strength >= block else "review" if strength >= review else "allow"
