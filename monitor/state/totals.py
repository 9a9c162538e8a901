"""The figures the monitor shows over a time range: the headline row and the amounts at risk.

Plain values computed from the decision counts (``monitor.state.decisions``); no locks, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.state.records import FLAGGED_DECISIONS
from pipeline.config import FRAUD_TYPES


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


def _sum_risk(figures: Iterable[RiskFigures]) -> RiskFigures:
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
