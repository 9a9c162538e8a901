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
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pipeline.contracts.json_schemas import SchemaViolation, validator
from pipeline.detection.detector import Detector, Example, InMemoryStates, Scored
from pipeline.detection.features import Features, event_seconds
from pipeline.tools.backtest.input import normalise
from pipeline.tools.backtest.report import BacktestResult, ScoredTransaction, summarise

BATCH = 500
"""Transactions scored in one call of the detector, when no label falls due among them."""

Prepared = tuple[float, dict[str, Any], bool, str | None]
"""(event time, transaction, is fraud, fraud type)"""


def prepare(
    rows: Iterable[Mapping[str, Any]], column_map: Mapping[str, str] | None = None
) -> tuple[list[Prepared], Counter[str]]:
    """The rows mapped to transactions and checked against the contract, in event-time order, and
    the refused rows counted by reason."""
    check = validator("transaction")
    refused: Counter[str] = Counter()
    prepared: list[Prepared] = []
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
    return prepared, refused


def replay(
    rows: Iterable[Mapping[str, Any]],
    detector: Detector,
    *,
    column_map: Mapping[str, str] | None = None,
    label_delay_days: float = 7.0,
    k: int = 100,
    keep_features: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> BacktestResult:
    """Score every row in event-time order, learning each label ``label_delay_days`` later."""
    started = time.perf_counter()
    prepared, refused = prepare(rows, column_map)
    scored: list[ScoredTransaction] = []
    kept: list[Features] = []
    for done, decided in _replay(prepared, detector, label_delay_days * 86400):
        first = done - len(decided)
        scored.extend(_row(item, prepared[first + i]) for i, item in enumerate(decided))
        if keep_features:
            kept.extend(item.features for item in decided)
        if progress and done // 20_000 > (done - len(decided)) // 20_000:
            progress(done, len(prepared), time.perf_counter() - started)
    if progress:
        progress(len(prepared), len(prepared), time.perf_counter() - started)
    daily, overall = summarise(scored, k)
    return BacktestResult(len(prepared), refused, overall, daily, scored, kept, time.perf_counter() - started)


def _replay(prepared: list[Prepared], detector: Detector, delay: float) -> Iterable[tuple[int, list[Scored]]]:
    """(transactions done, the batch just scored) for consecutive batches. A batch ends where a label
    falls due: labels are learnt, as the worker's learn agent learns them, before the first
    transaction at or after the time they become known."""
    states = InMemoryStates()
    due: list[tuple[float, int, Example]] = []  # (known at, order, example): a heap
    start = 0
    while start < len(prepared):
        while due and due[0][0] <= prepared[start][0]:
            known: list[Example] = []
            while due and due[0][0] <= prepared[start][0]:
                known.append(heapq.heappop(due)[2])
            learnt = detector.learn(known)
            detector.count_entity_labels(learnt.entity_labels, states.state_of)
        horizon = min(due[0][0] if due else float("inf"), prepared[start][0] + delay)
        end = start + 1
        while end < len(prepared) and end - start < BATCH and prepared[end][0] < horizon:
            end += 1
        batch = prepared[start:end]
        decided = detector.process([(txn, at) for at, txn, _, _ in batch], states.state_of, states.card_of)
        for order, ((at, txn, is_fraud, fraud_type), item) in enumerate(zip(batch, decided, strict=True)):
            example = Example(
                txn["transaction_id"],
                item.features,
                is_fraud,
                fraud_type,
                detector.entity_keys(txn),
                at + delay,
            )
            heapq.heappush(due, (at + delay, start + order, example))
        start = end
        yield end, decided


def _row(item: Scored, prepared: Prepared) -> ScoredTransaction:
    _, txn, is_fraud, fraud_type = prepared
    decision = item.decision
    return ScoredTransaction(
        txn["transaction_id"],
        txn["event_time"],
        txn["card_token"],
        txn["customer_id"],
        decision.score,
        decision.model_score,
        decision.fraud_type,
        decision.action,
        is_fraud,
        fraud_type,
    )
