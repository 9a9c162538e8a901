"""The decisions store: per-minute counts of decisions, deduplicated by transaction id.

The rate charts, the headline row, the amounts at risk and the reports all read it. Pure and
thread-safe: every public method takes the store's lock (one writer thread, many readers).

Memory does not grow with the history: a minute of history is a fixed set of counts, whatever its
traffic; transaction ids are kept only for the deduplication window (``dedup_minutes`` of decision
time), which is where repeated decisions come from (a worker's replay after a crash).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from monitor.state.records import (
    DECISIONS,
    FLAGGED_DECISIONS,
    AddResult,
    InvalidRecordError,
    record_time,
    require_id,
)
from monitor.state.totals import AtRisk, Headline, at_risk
from monitor.timerange import EVERYTHING, TimeRange
from pipeline.config import FRAUD_TYPES, Settings

UNKNOWN_CURRENCY = "XXX"
"""ISO 4217 code for "no currency", used when a decision lacks one."""

_MINUTE = timedelta(minutes=1)


def floor_minute(ts: datetime) -> datetime:
    """The start of the minute that ``ts`` falls in."""
    return ts.replace(second=0, microsecond=0)


class _Decision(NamedTuple):
    transaction_id: str
    minute: datetime
    decided_at: datetime
    decision: str
    fraud_type: str | None
    amount: float
    currency: str


def _validate_decision(record: Any) -> _Decision:
    if not isinstance(record, Mapping):
        raise InvalidRecordError("decision: expected a JSON object")
    transaction_id = require_id(record, "transaction_id")
    event_time = record_time(record.get("event_time"), "event_time")
    decided_at = record_time(record.get("decided_at"), "decided_at")
    decision = record.get("decision")
    if not isinstance(decision, str) or decision not in DECISIONS:
        raise InvalidRecordError(f"decision: expected one of {DECISIONS}, got {decision!r}")
    fraud_type = record.get("fraud_type")
    if fraud_type is not None and (not isinstance(fraud_type, str) or fraud_type not in FRAUD_TYPES):
        raise InvalidRecordError(f"fraud_type: expected one of {FRAUD_TYPES} or null, got {fraud_type!r}")
    amount = record.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | float) or not math.isfinite(amount):
        raise InvalidRecordError(f"amount: expected a finite number, got {amount!r}")
    if amount < 0:
        raise InvalidRecordError(f"amount: must not be negative, got {amount!r}")
    currency = record.get("currency")
    if not isinstance(currency, str) or not currency:
        currency = UNKNOWN_CURRENCY
    return _Decision(
        transaction_id, floor_minute(event_time), decided_at, decision, fraud_type, float(amount), currency
    )


@dataclass(slots=True)
class _Bucket:
    """Mutable counts of one minute (internal)."""

    total: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DECISIONS, 0))
    flagged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FRAUD_TYPES, 0))
    blocked_amount: dict[str, float] = field(default_factory=dict)
    risk_counts: dict[tuple[str, str | None], int] = field(default_factory=dict)
    risk_amounts: dict[tuple[str, str | None, str], float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MinuteStats:
    """Counts of the decisions whose event time falls in one minute (UTC)."""

    minute: datetime
    total: int
    outcomes: Mapping[str, int]
    flagged_by_type: Mapping[str, int]
    blocked_amount: Mapping[str, float]
    risk_counts: Mapping[tuple[str, str | None], int] = field(default_factory=dict)
    """(decision review|block, fraud type or None) -> transactions."""
    risk_amounts: Mapping[tuple[str, str | None, str], float] = field(default_factory=dict)
    """(decision review|block, fraud type or None, currency) -> summed amount."""

    @property
    def flagged(self) -> int:
        """Transactions decided review or block."""
        return sum(self.outcomes[d] for d in FLAGGED_DECISIONS)

    def fraud_rate(self, fraud_type: str) -> float:
        """Flagged transactions of ``fraud_type`` / all transactions (0 when there are none)."""
        return self.flagged_by_type[fraud_type] / self.total if self.total else 0.0


class RateSeries(NamedTuple):
    """Minute starts (UTC) and the fraud rate (0..1) of one type in each minute."""

    minutes: list[datetime]
    rates: list[float]


def minute_in_range(minute: datetime, rng: TimeRange) -> bool:
    """True when the minute starting at ``minute`` overlaps ``rng``."""
    return (rng.start is None or minute + _MINUTE > rng.start) and (rng.end is None or minute < rng.end)


def _check_fraud_type(fraud_type: str) -> None:
    if fraud_type not in FRAUD_TYPES:
        raise ValueError(f"unknown fraud type {fraud_type!r}; expected one of {FRAUD_TYPES}")


class RecentIds:
    """Transaction ids by the minute of their decision time, for the last ``minutes`` minutes
    before the newest decision time seen (not thread-safe: the aggregator holds its lock)."""

    def __init__(self, minutes: int) -> None:
        if minutes < 1:
            raise ValueError("dedup minutes must be at least 1")
        self._minutes = minutes
        self._minute_of: dict[str, int] = {}
        self._by_minute: dict[int, list[str]] = {}
        self._newest: int | None = None

    def __contains__(self, transaction_id: str) -> bool:
        return transaction_id in self._minute_of

    def __len__(self) -> int:
        return len(self._minute_of)

    def add(self, transaction_id: str, decided_at: datetime) -> None:
        minute = math.floor(decided_at.timestamp() / 60)
        self._minute_of[transaction_id] = minute
        self._by_minute.setdefault(minute, []).append(transaction_id)
        if self._newest is None or minute > self._newest:
            self._newest = minute
            self._forget_before(minute - self._minutes + 1)

    def _forget_before(self, first_kept: int) -> None:
        for minute in [m for m in self._by_minute if m < first_kept]:
            for transaction_id in self._by_minute.pop(minute):
                if self._minute_of.get(transaction_id) == minute:
                    del self._minute_of[transaction_id]


class DecisionAggregator:
    """Per-minute counts of decisions, deduplicated by transaction id.

    Minutes are those of ``event_time`` in UTC. The history holds at most ``history_minutes``
    minutes, ending with the newest event minute seen; older minutes are dropped. A minute is a
    fixed set of counts, not a list of transactions: the ids that recognise a repeated decision
    are kept for ``dedup_minutes`` of ``decided_at`` only (a worker's replay repeats decisions
    within seconds to minutes; an id repeated later is counted again). Transactions per second
    are counted by ``decided_at`` over the last ``rate_window_seconds`` of ``clock``.
    """

    def __init__(
        self,
        history_minutes: int,
        *,
        clock: Callable[[], float] = time.time,
        rate_window_seconds: int = 60,
        dedup_minutes: int = 15,
    ) -> None:
        if history_minutes < 1:
            raise ValueError("history_minutes must be at least 1")
        if rate_window_seconds < 1:
            raise ValueError("rate_window_seconds must be at least 1")
        self._history = history_minutes
        self._clock = clock
        self._window = rate_window_seconds
        self._lock = threading.Lock()
        self._buckets: dict[datetime, _Bucket] = {}
        self._recent = RecentIds(dedup_minutes)
        self._newest_minute: datetime | None = None
        self._per_second: dict[int, int] = {}
        self._last_decided_at: datetime | None = None
        self._version = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> DecisionAggregator:
        """An aggregator keeping ``settings.monitor_history_minutes`` of history."""
        return cls(
            settings.monitor_history_minutes, clock=clock, dedup_minutes=settings.monitor_dedup_minutes
        )

    @property
    def version(self) -> int:
        """Grows with every counted decision or dropped minute; unchanged means nothing to redraw."""
        with self._lock:
            return self._version

    @property
    def transaction_count(self) -> int:
        """Transactions counted in the history (each id once within the deduplication window)."""
        with self._lock:
            return sum(bucket.total for bucket in self._buckets.values())

    @property
    def remembered_ids(self) -> int:
        """Transaction ids kept to recognise repeated decisions (bounded by the dedup window)."""
        with self._lock:
            return len(self._recent)

    @property
    def last_decision_at(self) -> datetime | None:
        """The newest ``decided_at`` counted, or None."""
        with self._lock:
            return self._last_decided_at

    def add(self, record: Mapping[str, Any]) -> AddResult:
        """Count one decision record (a decoded ``decision.v1`` message).

        Raises InvalidRecordError when a field the monitor needs is missing or invalid.
        """
        d = _validate_decision(record)
        with self._lock:
            if d.transaction_id in self._recent:
                return "duplicate"
            if self._newest_minute is not None and d.minute < self._cutoff(self._newest_minute):
                return "too_old"
            bucket = self._buckets.get(d.minute)
            if bucket is None:
                bucket = self._buckets[d.minute] = _Bucket()
            bucket.total += 1
            bucket.outcomes[d.decision] += 1
            if d.decision in FLAGGED_DECISIONS and d.fraud_type is not None:
                bucket.flagged[d.fraud_type] += 1
            if d.decision == "block":
                bucket.blocked_amount[d.currency] = bucket.blocked_amount.get(d.currency, 0.0) + d.amount
            if d.decision in FLAGGED_DECISIONS:
                key = (d.decision, d.fraud_type)
                bucket.risk_counts[key] = bucket.risk_counts.get(key, 0) + 1
                money = (d.decision, d.fraud_type, d.currency)
                bucket.risk_amounts[money] = bucket.risk_amounts.get(money, 0.0) + d.amount
            self._recent.add(d.transaction_id, d.decided_at)
            if self._last_decided_at is None or d.decided_at > self._last_decided_at:
                self._last_decided_at = d.decided_at
            self._count_second(d.decided_at)
            if self._newest_minute is None or d.minute > self._newest_minute:
                self._newest_minute = d.minute
                self._prune()
            self._version += 1
            return "added"

    def minutes(self, since: datetime | None = None, *, within: TimeRange = EVERYTHING) -> list[MinuteStats]:
        """Snapshot of the minutes with decisions, oldest first, from the minute of ``since``,
        limited to the minutes that overlap ``within``."""
        start = floor_minute(since.astimezone(UTC)) if since is not None else None
        with self._lock:
            return [
                MinuteStats(
                    minute=minute,
                    total=b.total,
                    outcomes=dict(b.outcomes),
                    flagged_by_type=dict(b.flagged),
                    blocked_amount=dict(b.blocked_amount),
                    risk_counts=dict(b.risk_counts),
                    risk_amounts=dict(b.risk_amounts),
                )
                for minute, b in sorted(self._buckets.items())
                if (start is None or minute >= start) and minute_in_range(minute, within)
            ]

    def at_risk(self, within: TimeRange = EVERYTHING) -> AtRisk:
        """Alerted and blocked counts and amounts by fraud type in the minutes overlapping ``within``."""
        return at_risk(self.minutes(within=within))

    def fraud_rate_series(
        self, fraud_type: str, since: datetime | None = None, *, within: TimeRange = EVERYTHING
    ) -> RateSeries:
        """Rate of flagged ``fraud_type`` transactions per minute, gaps filled with 0."""
        _check_fraud_type(fraud_type)
        stats = {s.minute: s for s in self.minutes(since, within=within)}
        if not stats:
            return RateSeries([], [])
        minutes: list[datetime] = []
        rates: list[float] = []
        minute, last = min(stats), max(stats)
        while minute <= last:
            s = stats.get(minute)
            minutes.append(minute)
            rates.append(s.fraud_rate(fraud_type) if s is not None else 0.0)
            minute += _MINUTE
        return RateSeries(minutes, rates)

    def now(self) -> datetime:
        """The aggregator's clock as an aware UTC datetime (what "last 15 min" is measured from)."""
        return datetime.fromtimestamp(self._clock(), UTC)

    def headline(self, within: TimeRange = EVERYTHING) -> Headline:
        """Totals over the history (the minutes overlapping ``within``), transactions per second
        (always the last ``rate_window_seconds``) and the time of the last decision."""
        now = self._clock()
        outcomes = dict.fromkeys(DECISIONS, 0)
        flagged = dict.fromkeys(FRAUD_TYPES, 0)
        blocked: dict[str, float] = {}
        total = 0
        with self._lock:
            for minute, b in self._buckets.items():
                if not minute_in_range(minute, within):
                    continue
                total += b.total
                for k, v in b.outcomes.items():
                    outcomes[k] += v
                for k, v in b.flagged.items():
                    flagged[k] += v
                for k, a in b.blocked_amount.items():
                    blocked[k] = blocked.get(k, 0.0) + a
            self._prune_seconds(now)
            low, high = now - self._window, now
            recent = sum(n for sec, n in self._per_second.items() if low < sec <= high)
            last = self._last_decided_at
        return Headline(
            as_of=datetime.fromtimestamp(now, UTC),
            total=total,
            outcomes=outcomes,
            flagged_by_type=flagged,
            blocked_amount=dict(sorted(blocked.items())),
            tx_per_second=recent / self._window,
            last_decision_at=last,
        )

    # --- internals (called with the lock held) ------------------------------------------------
    def _cutoff(self, newest: datetime) -> datetime:
        return newest - (self._history - 1) * _MINUTE

    def _prune(self) -> None:
        assert self._newest_minute is not None
        cutoff = self._cutoff(self._newest_minute)
        for minute in [m for m in self._buckets if m < cutoff]:
            del self._buckets[minute]

    def _count_second(self, decided_at: datetime) -> None:
        now = self._clock()
        second = math.floor(decided_at.timestamp())
        # Only decisions that can still fall in the window are kept: replayed history is not.
        if now - self._window < second <= now + self._window:
            self._per_second[second] = self._per_second.get(second, 0) + 1
            if len(self._per_second) > 4 * self._window:
                self._prune_seconds(now)

    def _prune_seconds(self, now: float) -> None:
        for sec in [s for s in self._per_second if s <= now - self._window]:
            del self._per_second[sec]
