"""Backtest: replay labelled transactions through the detection core in event-time order.

Labels become known only ``label_delay_days`` after their transaction (as chargebacks do), and the
model learns from them then; every transaction is scored before its own label is known
(prequential evaluation). Reads CSV, JSON lines (optionally gzipped) or Parquet, with a column
mapping for data sets that name their columns differently; writes metrics per day and overall,
an HTML report with charts, and optionally every transaction's score to a CSV file.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from pipeline.config import Settings
from pipeline.contracts.json_schemas import SchemaViolation, validator
from pipeline.detection.engine import DetectionEngine
from pipeline.detection.features import (
    ENTITY_STAGES,
    FEATURE_NAMES,
    CardState,
    Features,
    LabelledActivityState,
    event_seconds,
    observe,
    observe_entities,
    transaction_features,
)
from pipeline.detection.model import OnlineFraudModel
from pipeline.detection.rules import RuleSet, load_rules
from pipeline.tools.backtest.input import normalise
from pipeline.tools.backtest.report import BacktestResult, ScoredTransaction, summarise

Mode = Literal["combined", "rules", "model"]


# --- replay ------------------------------------------------------------------------------------
def build_engine(settings: Settings, mode: Mode) -> DetectionEngine:
    rules = load_rules(settings.rules_file, FEATURE_NAMES) if mode != "model" else RuleSet(())
    return DetectionEngine(
        rules=rules,
        model=OnlineFraudModel(),
        learning=mode != "rules",
        alert_budget=None if mode == "model" else settings.alert_budget,
        anomaly_budget=settings.anomaly_budget if mode == "combined" else None,
        review_threshold=settings.review_threshold,
        block_threshold=settings.block_threshold,
        model_min_labels=10**12 if mode == "rules" else (0 if mode == "model" else settings.model_min_labels),
    )


def replay(
    rows: Iterable[Mapping[str, Any]],
    engine: DetectionEngine,
    *,
    column_map: Mapping[str, str] | None = None,
    label_delay_days: float = 7.0,
    k: int = 100,
    keep_features: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> BacktestResult:
    """Score every row in event-time order, learning each label ``label_delay_days`` later."""
    started = time.perf_counter()
    check = validator("transaction")
    refused: Counter[str] = Counter()
    prepared: list[tuple[float, dict[str, Any], bool, str | None]] = []
    for row in rows:
        try:
            txn, is_fraud, fraud_type = normalise(row, column_map or {})
            check(txn)
        except SchemaViolation as exc:
            refused[f"schema: {exc.message}"] += 1
            continue
        except (ValueError, TypeError) as exc:
            refused[f"unreadable: {exc}"] += 1
            continue
        prepared.append((event_seconds(txn), txn, is_fraud, fraud_type))
    prepared.sort(key=lambda item: item[0])

    delay = label_delay_days * 86400
    cards: dict[str, CardState] = defaultdict(CardState)
    states: dict[str, dict[str, Any]] = {entity.name: {} for entity in ENTITY_STAGES}
    labelled = [e for e in ENTITY_STAGES if issubclass(e.state_type, LabelledActivityState)]
    labels: list[tuple[float, int, str, dict[str, str], Features, bool, str | None]] = []
    scored: list[ScoredTransaction] = []
    kept: list[Features] = []
    total = len(prepared)
    for index, (at, txn, is_fraud, fraud_type) in enumerate(prepared):
        while labels and labels[0][0] <= at:  # labels known by now, as the pipeline's learn agent
            known_at, _, transaction_id, keys, features, fraud, kind = heapq.heappop(labels)
            engine.learn(transaction_id, features, fraud, kind)
            for entity in labelled:  # as the pipeline's learn agent does
                if entity.name in keys:
                    known = states[entity.name].setdefault(keys[entity.name], entity.state_type())
                    known.record_label(fraud, known_at)
        features = transaction_features(txn, at)
        features.update(observe_entities(states, txn, at))  # the pipeline's entity stages, in order
        features.update(observe(cards[txn["card_token"]], txn, at))
        verdict = engine.decide(txn, features)
        heapq.heappush(
            labels,
            (
                at + delay,
                index,
                txn["transaction_id"],
                {e.name: key for e in labelled if (key := e.key(txn))},
                features,
                is_fraud,
                fraud_type,
            ),
        )
        scored.append(
            ScoredTransaction(
                txn["transaction_id"],
                txn["event_time"],
                txn["card_token"],
                txn["customer_id"],
                verdict.score,
                verdict.model_score,
                verdict.fraud_type,
                verdict.decision,
                is_fraud,
                fraud_type,
            )
        )
        if keep_features:
            kept.append(features)
        if progress and (index + 1) % 20_000 == 0:
            progress(index + 1, total, time.perf_counter() - started)
    if progress:
        progress(total, total, time.perf_counter() - started)
    daily, overall = summarise(scored, k)
    return BacktestResult(total, refused, overall, daily, scored, kept, time.perf_counter() - started)
