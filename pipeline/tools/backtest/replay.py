"""Backtest: replay labelled transactions through the detection core in event-time order.

Labels become known only ``label_delay_days`` after their transaction (as chargebacks do), and the
model learns from them then; every transaction is scored before its own label is known
(prequential evaluation). Reads CSV, JSON lines (optionally gzipped) or Parquet, with a column
mapping for data sets that name their columns differently; writes metrics per day and overall,
an HTML report with charts, and optionally every transaction's score to a CSV file.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from pipeline.detection.detector import Detector, Example, InMemoryStates, Scored
from pipeline.detection.features import Features, event_seconds
from pipeline.tools.backtest.columnar import MappedFrame, map_frame
from pipeline.tools.backtest.convert import Mapped
from pipeline.tools.backtest.frame import RowsFrame
from pipeline.tools.backtest.mapping import ColumnMapping
from pipeline.tools.backtest.refusals import Refusals
from pipeline.tools.backtest.report import BacktestResult, ScoredTransaction, summarise

BATCH = 500
"""Transactions scored in one call of the detector."""
LABEL_LAG = 3600.0
"""How long (event time) a label that became known may wait for the end of a batch: the worker
learns labels from their own topic as they come, in batches too; with labels days or weeks late,
an hour more changes nothing but lets a replay score hundreds of transactions per call."""

Prepared = tuple[float, dict[str, Any], bool, str | None]
"""(event time, transaction, is fraud, fraud type)"""


def prepare(mapped: Iterable[Mapped] | MappedFrame) -> list[Prepared]:
    """Mapped transactions with their event times, in event-time order (a stable sort: equal
    times keep their file order)."""
    if isinstance(mapped, MappedFrame):  # the times are known: one stable sort of an array
        order = np.argsort(np.asarray(mapped.at, dtype=np.float64), kind="stable").tolist()
        at, txns, frauds, kinds = mapped.at, mapped.txns, mapped.is_fraud, mapped.fraud_types
        return [(at[i], txns[i], frauds[i], kinds[i]) for i in order]
    prepared = [(event_seconds(txn), txn, is_fraud, fraud_type) for txn, is_fraud, fraud_type in mapped]
    prepared.sort(key=lambda item: item[0])
    return prepared


def replay(
    rows: Iterable[Mapping[str, Any]],
    detector: Detector,
    *,
    column_map: ColumnMapping | Mapping[str, str] | None = None,
    label_delay_days: float = 7.0,
    k: int = 100,
    keep_features: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> BacktestResult:
    """Map ``rows`` to transactions (refused rows counted by reason), then ``replay_transactions``."""
    refusals = Refusals()
    mapped = map_frame(RowsFrame(rows), column_map, refusals)
    return replay_transactions(
        mapped,
        detector,
        refused=refusals.counts,
        label_delay_days=label_delay_days,
        k=k,
        keep_features=keep_features,
        progress=progress,
    )


def replay_transactions(
    mapped: Iterable[Mapped] | MappedFrame,
    detector: Detector,
    *,
    refused: Counter[str] | None = None,
    label_delay_days: float = 7.0,
    k: int = 100,
    keep_features: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> BacktestResult:
    """Score every transaction in event-time order, learning each label ``label_delay_days`` later."""
    started = time.perf_counter()
    prepared = prepare(mapped)
    scored: list[ScoredTransaction] = []
    kept: list[Features] = []
    for done, decided in _replay(prepared, detector, label_delay_days * 86400):
        first = done - len(decided)
        scored.extend(map(_row, decided, prepared[first:done]))
        if keep_features:
            kept.extend(item.features for item in decided)
        if progress and done // 20_000 > (done - len(decided)) // 20_000:
            progress(done, len(prepared), time.perf_counter() - started)
    if progress:
        progress(len(prepared), len(prepared), time.perf_counter() - started)
    daily, overall = summarise(scored, k)
    seconds = time.perf_counter() - started
    return BacktestResult(len(prepared), refused or Counter(), overall, daily, scored, kept, seconds)


def _replay(
    prepared: list[Prepared], detector: Detector, delay: float, lag: float = LABEL_LAG
) -> Iterable[tuple[int, list[Scored]]]:
    """(transactions done, the batch just scored) for consecutive batches of up to BATCH
    transactions. Labels are learnt between batches, before the first transaction at or after the
    time they became known, at most ``lag`` seconds (event time) after it: a batch ends ``lag``
    after the first label that falls due while it lasts. A label is never learnt before it is
    known."""
    states = InMemoryStates()
    # The labels not yet known, as the batches they were scored in: [next, known at, batch,
    # decided] each. Prepared in event-time order, they fall due in the order they were scored
    # (``at + delay`` never decreases as ``at`` grows), so a queue of batches is the heap of
    # labels it was. The example a label is learnt from is made when it falls due (its features are
    # a row of its batch's matrix until then): a label that never falls due costs nothing.
    due: deque[list[Any]] = deque()
    start = 0
    while start < len(prepared):
        now = prepared[start][0]
        known: list[Example] = []
        while due:
            entry = due[0]
            position, known_at, batch, decided = entry
            while position < len(known_at) and known_at[position] <= now:
                _, txn, is_fraud, fraud_type = batch[position]
                features = decided[position].features
                keys = detector.entity_keys(txn)
                known.append(
                    Example(txn["transaction_id"], features, is_fraud, fraud_type, keys, known_at[position])
                )
                position += 1
            entry[0] = position
            if position < len(known_at):
                break
            due.popleft()
        if known:
            learnt = detector.learn(known)
            detector.count_entity_labels(learnt.entity_labels, states.store_of)
        head = due[0][1][due[0][0]] if due else float("inf")
        horizon = min(head, now + delay) + lag
        end = start + 1
        while end < len(prepared) and end - start < BATCH and prepared[end][0] < horizon:
            end += 1
        batch = prepared[start:end]
        decided = detector.process([(txn, at) for at, txn, _, _ in batch], states)
        if len(decided) != len(batch):
            raise RuntimeError(f"the detector decided {len(decided)} of {len(batch)} transactions")
        due.append([0, [at + delay for at, _, _, _ in batch], batch, decided])
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
