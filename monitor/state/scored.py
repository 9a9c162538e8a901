"""The scored-transactions store: decided transactions with the features they were scored on, and
their labels, for the rule what-if (``monitor.whatif``).

The worker keeps, for every transaction it decides, the features it scored and the decision in its
pending-labels table until the label comes; the table's changelog topic
(``<app id>-pending-labels-changelog``, JSON like every Faust table) is where the monitor reads
them (``add_pending``); the tombstone that follows a label deletes nothing here. Labels of every
source (chargebacks, settlements, analysts' verdicts) are kept by transaction id (``add_label``).

Bounded (docs: README, "Rule what-if"): the newest ``max_rows`` transactions (``MAX_ROWS``,
100,000) whose event time is within ``max_days`` (``MAX_DAYS``, 7) of the newest seen, and as many
labels; a row costs about 1 kB (70 features as float64 and the decision's fields), so the store
holds about 100 MB when full. Pure and thread-safe: one writer thread, many readers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.state.records import (
    DECISIONS,
    AddResult,
    InvalidRecordError,
    VersionedStore,
    record_time,
    require_id,
)
from pipeline.config import Settings
from pipeline.detection.features import FEATURE_NAMES

MAX_ROWS = 100_000
"""Transactions the store keeps at most (the newest)."""
MAX_DAYS = 7
"""Days of event time the store keeps, back from the newest transaction seen."""
STRING_FIELDS = ("card_token", "customer_id", "merchant_id", "terminal_id", "currency", "channel", "country")
"""The transaction fields a decision carries, and a rule may read, besides ``amount``."""
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}

PENDING_LABELS_TABLE = "pending-labels"


def pending_labels_topic(settings: Settings) -> str:
    """The changelog topic of the worker's pending-labels table (as Faust names it; a test checks
    it against ``pipeline.worker.topics.changelog_topic_names``)."""
    return f"{settings.app_id}-{PENDING_LABELS_TABLE}-changelog"


@dataclass(frozen=True, slots=True)
class ScoredRow:
    """One decided transaction as scored."""

    transaction_id: str
    event_time: float
    """Seconds since the epoch."""
    decision: str
    by_rules: bool
    """Whether a rule (or a list) fired in the decision."""
    amount: float
    fields: tuple[str | None, ...]
    """The values of STRING_FIELDS."""
    features: np.ndarray
    """float64 in FEATURE_NAMES order, NaN for a feature the worker left empty."""
    model_score: float = math.nan
    """The model's fraud probability on the decision (its score when it has none; NaN without)."""

    @property
    def currency(self) -> str:
        return self.fields[STRING_FIELDS.index("currency")] or "XXX"


@dataclass(frozen=True, slots=True)
class Sample:
    """The rows whose event time is within a window, oldest first, and the labels known of them."""

    rows: list[ScoredRow]
    labels: Mapping[str, bool]
    """transaction id -> is fraud, for the rows with a label."""
    kept: int
    """Rows the store holds in all."""


def _features(raw: Any) -> np.ndarray:
    if not isinstance(raw, Mapping):
        raise InvalidRecordError("pending entry: features must be an object")
    out = np.full(len(FEATURE_NAMES), np.nan)
    for name, index in FEATURE_INDEX.items():
        value = raw.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[index] = value
    return out


def scored_row(entry: Mapping[str, Any]) -> ScoredRow:
    """The row of one pending-labels entry ({"features", "decision", ...}); InvalidRecordError when
    it lacks what the what-if needs."""
    decision = entry.get("decision")
    if not isinstance(decision, Mapping):
        raise InvalidRecordError("pending entry: decision must be an object")
    outcome = decision.get("decision")
    if outcome not in DECISIONS:
        raise InvalidRecordError(f"pending entry: decision must be one of {DECISIONS}")
    amount = decision.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount):
        raise InvalidRecordError("pending entry: amount must be a finite number")
    hits = decision.get("rule_hits")
    return ScoredRow(
        transaction_id=require_id(decision, "transaction_id"),
        event_time=record_time(decision.get("event_time"), "event_time").timestamp(),
        decision=str(outcome),
        by_rules=bool(hits) if isinstance(hits, list) else False,
        amount=float(amount),
        fields=tuple(v if isinstance(v := decision.get(f), str) else None for f in STRING_FIELDS),
        features=_features(entry.get("features")),
        model_score=_score(decision),
    )


def _score(decision: Mapping[str, Any]) -> float:
    for name in ("model_score", "score"):
        value = decision.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return math.nan


class ScoredStore(VersionedStore):
    """Decided transactions with their features (the newest ``max_rows`` within ``max_days``)
    and the labels of transactions, for the rule what-if."""

    def __init__(self, max_rows: int = MAX_ROWS, max_days: float = MAX_DAYS) -> None:
        if max_rows < 1 or max_days <= 0:
            raise ValueError("max_rows must be at least 1 and max_days positive")
        self.max_rows = max_rows
        self.max_days = max_days
        super().__init__()
        self._rows: dict[str, ScoredRow] = {}  # insertion order: oldest first
        self._labels: dict[str, bool] = {}
        self._newest = -math.inf

    def _count(self) -> int:
        return len(self._rows)

    def add_pending(self, entry: Mapping[str, Any]) -> AddResult:
        """Keep the transaction of one pending-labels entry (a decoded changelog value)."""
        row = scored_row(entry)
        with self._lock:
            if row.event_time < self._newest - self.max_days * 86400:
                return "too_old"
            known = self._rows.pop(row.transaction_id, None)
            self._rows[row.transaction_id] = row
            self._newest = max(self._newest, row.event_time)
            self._prune()
            self._version += 1
            return "duplicate" if known is not None else "added"

    def add_label(self, record: Mapping[str, Any]) -> AddResult:
        """Keep the label of one ``label.v1`` record (any source; the latest wins)."""
        transaction_id = require_id(record, "transaction_id")
        is_fraud = record.get("is_fraud")
        if not isinstance(is_fraud, bool):
            raise InvalidRecordError(f"is_fraud: expected a boolean, got {is_fraud!r}")
        with self._lock:
            self._labels.pop(transaction_id, None)
            self._labels[transaction_id] = is_fraud
            while len(self._labels) > self.max_rows:
                del self._labels[next(iter(self._labels))]
            self._version += 1
            return "added"

    def sample(self, since: float, until: float | None = None) -> Sample:
        """The rows with ``since <= event_time < until`` (seconds), oldest first, and their labels."""
        with self._lock:
            rows = [
                r
                for r in self._rows.values()
                if r.event_time >= since and (until is None or r.event_time < until)
            ]
            labels = {
                r.transaction_id: self._labels[r.transaction_id]
                for r in rows
                if r.transaction_id in self._labels
            }
            kept = len(self._rows)
        rows.sort(key=lambda r: r.event_time)
        return Sample(rows, labels, kept)

    def _prune(self) -> None:
        cutoff = self._newest - self.max_days * 86400
        while self._rows:
            oldest = next(iter(self._rows.values()))
            if len(self._rows) <= self.max_rows and oldest.event_time >= cutoff:
                break
            del self._rows[oldest.transaction_id]
