"""Pure, thread-safe state of the monitor: per-minute decision counts and the alert queue.

No Kafka and no Dash here: the feed pushes decoded records in, the callbacks read snapshots out.
Every public method takes the object's lock, so one writer thread and many reader threads are safe.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from monitor.timerange import EVERYTHING, TimeRange
from pipeline.config import FRAUD_TYPES, Settings

DECISIONS: tuple[str, ...] = ("allow", "review", "block")
FLAGGED_DECISIONS: frozenset[str] = frozenset({"review", "block"})
UNKNOWN_CURRENCY = "XXX"
"""ISO 4217 code for "no currency", used when a decision lacks one."""

AddResult = Literal["added", "duplicate", "too_old", "other_source"]
"""What became of a record: counted, a redelivery of one already counted, older than the history
(or than the verdict already known), or a label that is not an analyst's verdict."""

_MINUTE = timedelta(minutes=1)


class InvalidRecordError(ValueError):
    """A record lacks a field the monitor needs, or a value breaks its contract."""


def parse_timestamp(value: Any, name: str) -> datetime:
    """An ISO-8601 timestamp with a UTC offset, as an aware UTC datetime."""
    if not isinstance(value, str):
        raise InvalidRecordError(f"{name}: expected an ISO-8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRecordError(f"{name}: not an ISO-8601 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise InvalidRecordError(f"{name}: timestamp has no UTC offset: {value[:40]!r}")
    return parsed.astimezone(UTC)


def floor_minute(ts: datetime) -> datetime:
    """The start of the minute that ``ts`` falls in."""
    return ts.replace(second=0, microsecond=0)


def _require_id(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRecordError(f"{name}: expected a non-empty string")
    return value


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
    transaction_id = _require_id(record, "transaction_id")
    event_time = parse_timestamp(record.get("event_time"), "event_time")
    decided_at = parse_timestamp(record.get("decided_at"), "decided_at")
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
    transaction_ids: list[str] = field(default_factory=list)
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


@dataclass(frozen=True, slots=True)
class Headline:
    """Headline figures over the retained history, taken at ``as_of``."""

    as_of: datetime
    total: int
    outcomes: Mapping[str, int]
    flagged_by_type: Mapping[str, int]
    blocked_amount: Mapping[str, float]
    tx_per_second: float
    last_decision_at: datetime | None

    @property
    def flagged(self) -> int:
        """Transactions decided review or block."""
        return sum(self.outcomes[d] for d in FLAGGED_DECISIONS)

    @property
    def alert_rate(self) -> float:
        """Flagged / total (0 when there are no transactions)."""
        return self.flagged / self.total if self.total else 0.0

    @property
    def seconds_since_last_decision(self) -> float | None:
        """Age of the newest decision (by ``decided_at``); None before the first one."""
        if self.last_decision_at is None:
            return None
        return max(0.0, (self.as_of - self.last_decision_at).total_seconds())


@dataclass(frozen=True, slots=True)
class RiskFigures:
    """Alerted (review or block) and blocked transactions of one fraud type, with their amounts."""

    alerted: int = 0
    alerted_amount: Mapping[str, float] = field(default_factory=dict)
    blocked: int = 0
    blocked_amount: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AtRisk:
    """Counts and amounts at risk in a time range, by fraud type (None: flagged without a type)."""

    by_type: Mapping[str | None, RiskFigures]

    @property
    def total(self) -> RiskFigures:
        """All types together."""
        return _sum_risk(self.by_type.values())


def _add_amounts(into: dict[str, float], more: Mapping[str, float]) -> None:
    for currency, amount in more.items():
        into[currency] = into.get(currency, 0.0) + amount


def _sum_risk(figures: Any) -> RiskFigures:
    alerted = blocked = 0
    alerted_amount: dict[str, float] = {}
    blocked_amount: dict[str, float] = {}
    for f in figures:
        alerted += f.alerted
        blocked += f.blocked
        _add_amounts(alerted_amount, f.alerted_amount)
        _add_amounts(blocked_amount, f.blocked_amount)
    return RiskFigures(
        alerted, dict(sorted(alerted_amount.items())), blocked, dict(sorted(blocked_amount.items()))
    )


def at_risk(stats: Any) -> AtRisk:
    """Sum the alerted and blocked counts and amounts of ``stats`` (MinuteStats) by fraud type.

    Every fraud type is present (zero when nothing was flagged); None only when some flagged
    transaction had no type.
    """
    counts: dict[str | None, list[int]] = {t: [0, 0] for t in FRAUD_TYPES}
    amounts: dict[str | None, tuple[dict[str, float], dict[str, float]]] = {t: ({}, {}) for t in FRAUD_TYPES}
    for s in stats:
        for (decision, fraud_type), n in s.risk_counts.items():
            c = counts.setdefault(fraud_type, [0, 0])
            c[0] += n
            if decision == "block":
                c[1] += n
        for (decision, fraud_type, currency), amount in s.risk_amounts.items():
            alerted, blocked = amounts.setdefault(fraud_type, ({}, {}))
            alerted[currency] = alerted.get(currency, 0.0) + amount
            if decision == "block":
                blocked[currency] = blocked.get(currency, 0.0) + amount
    by_type: dict[str | None, RiskFigures] = {}
    for fraud_type, (alerted_n, blocked_n) in counts.items():
        alerted, blocked = amounts.get(fraud_type, ({}, {}))
        by_type[fraud_type] = RiskFigures(
            alerted_n, dict(sorted(alerted.items())), blocked_n, dict(sorted(blocked.items()))
        )
    return AtRisk(by_type)


def minute_in_range(minute: datetime, rng: TimeRange) -> bool:
    """True when the minute starting at ``minute`` overlaps ``rng``."""
    return (rng.start is None or minute + _MINUTE > rng.start) and (rng.end is None or minute < rng.end)


def _check_fraud_type(fraud_type: str) -> None:
    if fraud_type not in FRAUD_TYPES:
        raise ValueError(f"unknown fraud type {fraud_type!r}; expected one of {FRAUD_TYPES}")


class DecisionAggregator:
    """Per-minute counts of decisions, deduplicated by transaction id.

    Minutes are those of ``event_time`` in UTC. The history holds at most ``history_minutes``
    minutes, ending with the newest event minute seen; older minutes are dropped together with
    their transaction ids, so the deduplication set is bounded by the history too. Transactions
    per second are counted by ``decided_at`` over the last ``rate_window_seconds`` of ``clock``.
    """

    def __init__(
        self,
        history_minutes: int,
        *,
        clock: Callable[[], float] = time.time,
        rate_window_seconds: int = 60,
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
        self._seen: set[str] = set()
        self._newest_minute: datetime | None = None
        self._per_second: dict[int, int] = {}
        self._last_decided_at: datetime | None = None
        self._version = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> DecisionAggregator:
        """An aggregator keeping ``settings.monitor_history_minutes`` of history."""
        return cls(settings.monitor_history_minutes, clock=clock)

    @property
    def version(self) -> int:
        """Grows with every counted decision or dropped minute; unchanged means nothing to redraw."""
        with self._lock:
            return self._version

    @property
    def transaction_count(self) -> int:
        """Distinct transactions in the history."""
        with self._lock:
            return len(self._seen)

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
            if d.transaction_id in self._seen:
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
            bucket.transaction_ids.append(d.transaction_id)
            self._seen.add(d.transaction_id)
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
            self._seen.difference_update(self._buckets.pop(minute).transaction_ids)

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


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts the queue shows: by fraud type, decision, minimum score and event-time range.

    None (or 0 for the score) means no condition on that field.
    """

    fraud_type: str | None = None
    decision: str | None = None
    min_score: float | None = None
    within: TimeRange = EVERYTHING

    def matches(self, alert: Mapping[str, Any]) -> bool:
        """True when ``alert`` passes the type, decision and score conditions (not the range)."""
        if self.fraud_type is not None and alert.get("fraud_type") != self.fraud_type:
            return False
        if self.decision is not None and alert.get("decision") != self.decision:
            return False
        if self.min_score:
            score = alert.get("score")
            if isinstance(score, bool) or not isinstance(score, int | float) or score < self.min_score:
                return False
        return True


class AlertPage(NamedTuple):
    """One page of the filtered queue and the number of alerts matching the filter."""

    alerts: list[Mapping[str, Any]]
    total: int


class AlertStore:
    """The newest ``max_alerts`` alerts (by event time), deduplicated by ``alert_id``."""

    def __init__(self, max_alerts: int) -> None:
        if max_alerts < 1:
            raise ValueError("max_alerts must be at least 1")
        self._max = max_alerts
        self._lock = threading.Lock()
        self._order: list[tuple[datetime, str]] = []  # ascending (event_time, alert_id)
        self._alerts: dict[str, Mapping[str, Any]] = {}
        self._version = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertStore:
        """A store keeping ``settings.monitor_max_alerts`` alerts."""
        return cls(settings.monitor_max_alerts)

    @property
    def version(self) -> int:
        """Grows with every stored alert; unchanged means nothing to redraw."""
        with self._lock:
            return self._version

    def __len__(self) -> int:
        with self._lock:
            return len(self._alerts)

    def add(self, record: Mapping[str, Any]) -> AddResult:
        """Store one alert record (a decoded ``alert.v1`` message).

        Raises InvalidRecordError when ``alert_id`` or ``event_time`` is missing or invalid.
        """
        if not isinstance(record, Mapping):
            raise InvalidRecordError("alert: expected a JSON object")
        alert_id = _require_id(record, "alert_id")
        key = (parse_timestamp(record.get("event_time"), "event_time"), alert_id)
        with self._lock:
            if alert_id in self._alerts:
                return "duplicate"
            if len(self._order) >= self._max and key <= self._order[0]:
                return "too_old"
            bisect.insort(self._order, key)
            self._alerts[alert_id] = record
            while len(self._order) > self._max:
                _, evicted = self._order.pop(0)
                del self._alerts[evicted]
            self._version += 1
            return "added"

    def newest(self, limit: int | None = None) -> list[Mapping[str, Any]]:
        """Up to ``limit`` alerts, newest event time first (the records are shared: do not modify)."""
        with self._lock:
            keys = self._order[::-1] if limit is None else self._order[: -limit - 1 : -1]
            return [self._alerts[alert_id] for _, alert_id in keys]

    def query(
        self, alert_filter: AlertFilter | None = None, *, offset: int = 0, limit: int | None = None
    ) -> AlertPage:
        """The alerts matching ``alert_filter``, newest first: ``limit`` of them from ``offset``,
        and how many match in all."""
        f = alert_filter or AlertFilter()
        with self._lock:
            matched = [
                self._alerts[alert_id]
                for event_time, alert_id in reversed(self._order)
                if f.within.contains(event_time) and f.matches(self._alerts[alert_id])
            ]
        offset = max(0, offset)
        page = matched[offset:] if limit is None else matched[offset : offset + max(0, limit)]
        return AlertPage(page, len(matched))

    def get(self, alert_id: str) -> Mapping[str, Any] | None:
        """The alert with this id (= its transaction id), or None when it is not (or no longer) kept."""
        with self._lock:
            return self._alerts.get(alert_id)

    def for_card(
        self, card_token: str, *, exclude: str | None = None, limit: int = 10
    ) -> list[Mapping[str, Any]]:
        """Up to ``limit`` alerts of one card, newest first, without the alert ``exclude``."""
        found: list[Mapping[str, Any]] = []
        with self._lock:
            for _, alert_id in reversed(self._order):
                alert = self._alerts[alert_id]
                if alert_id != exclude and alert.get("card_token") == card_token:
                    found.append(alert)
                    if len(found) >= limit:
                        break
        return found


@dataclass(frozen=True, slots=True)
class Verdict:
    """An analyst's verdict on one transaction, from a ``label.v1`` record with source ``analyst``."""

    transaction_id: str
    card_token: str
    is_fraud: bool
    fraud_type: str | None
    analyst: str
    labelled_at: datetime
    comment: str | None = None

    @property
    def outcome(self) -> str:
        """'fraud' or 'legitimate'."""
        return "fraud" if self.is_fraud else "legitimate"


def verdict_from_label(record: Mapping[str, Any]) -> Verdict | None:
    """The analyst verdict in a label record; None for labels from other sources.

    Raises InvalidRecordError when a field the monitor needs is missing or invalid.
    """
    if not isinstance(record, Mapping):
        raise InvalidRecordError("label: expected a JSON object")
    if record.get("source") != "analyst":
        return None
    transaction_id = _require_id(record, "transaction_id")
    card_token = _require_id(record, "card_token")
    is_fraud = record.get("is_fraud")
    if not isinstance(is_fraud, bool):
        raise InvalidRecordError(f"is_fraud: expected a boolean, got {is_fraud!r}")
    fraud_type = record.get("fraud_type")
    if fraud_type is not None and fraud_type not in FRAUD_TYPES:
        raise InvalidRecordError(f"fraud_type: expected one of {FRAUD_TYPES} or null, got {fraud_type!r}")
    analyst = record.get("analyst")
    if not isinstance(analyst, str) or not analyst:
        raise InvalidRecordError("analyst: an analyst verdict names its analyst")
    comment = record.get("comment")
    return Verdict(
        transaction_id=transaction_id,
        card_token=card_token,
        is_fraud=is_fraud,
        fraud_type=fraud_type if is_fraud else None,
        analyst=analyst,
        labelled_at=parse_timestamp(record.get("labelled_at"), "labelled_at"),
        comment=comment if isinstance(comment, str) and comment else None,
    )


class VerdictStore:
    """The latest analyst verdict per transaction id, at most ``max_verdicts`` (oldest dropped first).

    Labels of other sources (chargebacks, settlements, the simulator) are not kept.
    """

    def __init__(self, max_verdicts: int = 100_000) -> None:
        if max_verdicts < 1:
            raise ValueError("max_verdicts must be at least 1")
        self._max = max_verdicts
        self._lock = threading.Lock()
        self._verdicts: dict[str, Verdict] = {}
        self._version = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> VerdictStore:
        """A store keeping ten verdicts per alert the monitor keeps."""
        return cls(10 * settings.monitor_max_alerts)

    @property
    def version(self) -> int:
        """Grows with every stored verdict; unchanged means nothing to redraw."""
        with self._lock:
            return self._version

    def __len__(self) -> int:
        with self._lock:
            return len(self._verdicts)

    def add(self, record: Mapping[str, Any]) -> AddResult:
        """Keep the verdict of one label record (a decoded ``label.v1`` message)."""
        verdict = verdict_from_label(record)
        if verdict is None:
            return "other_source"
        with self._lock:
            known = self._verdicts.get(verdict.transaction_id)
            if known == verdict:
                return "duplicate"
            if known is not None and known.labelled_at > verdict.labelled_at:
                return "too_old"
            self._verdicts.pop(verdict.transaction_id, None)  # re-inserted: newest last
            self._verdicts[verdict.transaction_id] = verdict
            while len(self._verdicts) > self._max:
                del self._verdicts[next(iter(self._verdicts))]
            self._version += 1
            return "added"

    def get(self, transaction_id: str) -> Verdict | None:
        """The latest verdict on ``transaction_id``, or None."""
        with self._lock:
            return self._verdicts.get(transaction_id)

    def snapshot(self) -> dict[str, Verdict]:
        """All kept verdicts by transaction id."""
        with self._lock:
            return dict(self._verdicts)


@dataclass(frozen=True, slots=True)
class MonitorState:
    """Everything the dashboard shows: what the feed writes and the callbacks read."""

    decisions: DecisionAggregator
    alerts: AlertStore
    verdicts: VerdictStore = field(default_factory=VerdictStore)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> MonitorState:
        """Empty state bounded by the monitor settings."""
        return cls(
            DecisionAggregator.from_settings(settings, clock=clock),
            AlertStore.from_settings(settings),
            VerdictStore.from_settings(settings),
        )
