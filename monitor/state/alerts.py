"""The alerts store: the newest alerts by event time, deduplicated, and the filter and order of the
queue (newest first, or highest score first).

Pure and thread-safe: every public method takes the store's lock (one writer thread, many readers).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple, get_args

from monitor.state.records import AddResult, InvalidRecordError, VersionedStore, record_time, require_id
from monitor.timerange import EVERYTHING, TimeRange
from pipeline.config import Settings
from pipeline.detection.explanations import Factor

AlertOrder = Literal["newest", "score"]
"""The queue's order: newest event time first, or highest score first (newest first among equal scores)."""
ALERT_ORDERS: tuple[AlertOrder, ...] = get_args(AlertOrder)


def _number(value: Any) -> float | None:
    """``value`` as a float, None when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def alert_score(alert: Mapping[str, Any]) -> float | None:
    """The alert's ``score`` (the detector's fraud probability), None when it is not a finite number."""
    return _number(alert.get("score"))


def alert_factors(alert: Mapping[str, Any]) -> list[Factor]:
    """The factors of the alert's explanation, in its order (largest first); none for an alert v1
    or one the model did not explain. A factor without a name or a numeric contribution is skipped."""
    explanation = alert.get("explanation")
    factors = explanation.get("factors") if isinstance(explanation, Mapping) else None
    if not isinstance(factors, list):
        return []
    out = []
    for factor in factors:
        if not isinstance(factor, Mapping):
            continue
        name, contribution = factor.get("name"), _number(factor.get("contribution"))
        value = _number(factor.get("value"))
        if isinstance(name, str) and name and contribution is not None:
            feature = factor.get("feature") if isinstance(factor.get("feature"), str) else ""
            typical = _number(factor.get("typical"))
            out.append(Factor(feature, name, math.nan if value is None else value, typical, contribution))
    return out


def _by_score(alert: Mapping[str, Any]) -> tuple[bool, float]:
    """Sort key, highest score first; alerts without a score last."""
    score = alert_score(alert)
    return (score is None, -score if score is not None else 0.0)


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts the queue shows (by fraud type, decision, minimum score and event-time range), and
    in which order (``order``).

    None (or 0 for the score) means no condition on that field.
    """

    fraud_type: str | None = None
    decision: str | None = None
    min_score: float | None = None
    within: TimeRange = EVERYTHING
    order: AlertOrder = "newest"

    def __post_init__(self) -> None:
        if self.order not in ALERT_ORDERS:
            raise ValueError(f"order must be one of {ALERT_ORDERS}, got {self.order!r}")

    def matches(self, alert: Mapping[str, Any]) -> bool:
        """True when ``alert`` passes the type, decision and score conditions (not the range)."""
        if self.fraud_type is not None and alert.get("fraud_type") != self.fraud_type:
            return False
        if self.decision is not None and alert.get("decision") != self.decision:
            return False
        if self.min_score:
            score = alert_score(alert)
            if score is None or score < self.min_score:
                return False
        return True


class AlertPage(NamedTuple):
    """One page of the filtered queue and the number of alerts matching the filter."""

    alerts: list[Mapping[str, Any]]
    total: int


class AlertStore(VersionedStore):
    """The newest ``max_alerts`` alerts (by event time), deduplicated by ``alert_id``."""

    def __init__(self, max_alerts: int) -> None:
        if max_alerts < 1:
            raise ValueError("max_alerts must be at least 1")
        self._max = max_alerts
        super().__init__()
        self._order: list[tuple[datetime, str]] = []  # ascending (event_time, alert_id)
        self._alerts: dict[str, Mapping[str, Any]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertStore:
        """A store keeping ``settings.monitor_max_alerts`` alerts."""
        return cls(settings.monitor_max_alerts)

    def _count(self) -> int:
        return len(self._alerts)

    def add(self, record: Mapping[str, Any]) -> AddResult:
        """Store one alert record (a decoded alert message, v1 or v2).

        Raises InvalidRecordError when ``alert_id`` or ``event_time`` is missing or invalid.
        """
        if not isinstance(record, Mapping):
            raise InvalidRecordError("alert: expected a JSON object")
        alert_id = require_id(record, "alert_id")
        key = (record_time(record.get("event_time"), "event_time"), alert_id)
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
        """The alerts matching ``alert_filter`` in its order (newest first, or highest score first
        and newest first among equal scores, alerts without a score last): ``limit`` of them from
        ``offset``, and how many match in all."""
        f = alert_filter or AlertFilter()
        with self._lock:
            matched = [
                self._alerts[alert_id]
                for event_time, alert_id in reversed(self._order)
                if f.within.contains(event_time) and f.matches(self._alerts[alert_id])
            ]
        if f.order == "score" and limit != 0:  # limit=0 asks only for the total
            matched.sort(key=_by_score)  # stable: equal scores stay newest first
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
