"""What a report shows: a snapshot of the state (``ReportData``) and the rows both formats use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.formatting import format_amounts, format_time, shorten_token
from monitor.state import MonitorState
from monitor.state.alerts import AlertFilter
from monitor.state.audit import AuditEvent, audit_row
from monitor.state.decisions import MinuteStats
from monitor.state.records import DECISIONS
from monitor.state.totals import Headline
from monitor.state.verdicts import Verdict
from monitor.timerange import EVERYTHING, RANGE_LABELS, TimeRange
from pipeline.config import FRAUD_TYPE_NAMES, FRAUD_TYPES

REPORT_TITLE = "Fraud Detection Report"
ALERTS_ORDER_TEXT = "highest score first (newest first among equal scores)"
"""How the reports list the alerts (the score is the detector's calibrated fraud probability)."""
PDF_TOP_ALERTS = 20
PDF_AUDIT_EVENTS = 50
"""The PDF lists the newest changes of the audit trail in the range, at most this many (the Excel
report's Audit sheet has them all)."""
_MINUTE = timedelta(minutes=1)

ALERT_REPORT_COLUMNS = (
    "Transaction",
    "Event time (UTC)",
    "Type",
    "Decision",
    "Score",
    "Amount",
    "Currency",
    "Card",
    "Reasons",
    "Verdict",
    "Verdict fraud type",
    "Analyst",
    "Verdict at (UTC)",
)


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything a report shows, copied from the state at ``generated_at``."""

    generated_at: datetime
    generated_by: str
    headline: Headline
    minutes: Sequence[MinuteStats]
    """One entry per minute from the first to the last minute with decisions (gaps filled with 0)."""
    alerts: Sequence[Mapping[str, Any]]
    """The alert queue, highest score first (newest first among equal scores, no score last)."""
    verdicts: Mapping[str, Verdict]
    range_text: str = RANGE_LABELS["all"]
    """The time range chosen on the page ('Last 1 h', or custom bounds)."""
    audit: Sequence[AuditEvent] = ()
    """The audit trail's changes in the range, newest first."""

    @property
    def period(self) -> tuple[datetime, datetime] | None:
        """[start of the first minute, end of the last minute) of the history, or None when empty."""
        if not self.minutes:
            return None
        return self.minutes[0].minute, self.minutes[-1].minute + _MINUTE

    @property
    def period_text(self) -> str:
        period = self.period
        if period is None:
            return "no decisions yet"
        start, end = period
        return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"

    def verdict_counts(self) -> dict[str, int]:
        """Alerts in the queue confirmed as fraud, marked legitimate, and awaiting a verdict."""
        counts = {"fraud": 0, "legitimate": 0, "pending": 0}
        for alert in self.alerts:
            verdict = self.verdicts.get(str(alert.get("transaction_id", "")))
            counts[verdict.outcome if verdict is not None else "pending"] += 1
        return counts


def fill_minutes(stats: Sequence[MinuteStats]) -> list[MinuteStats]:
    """``stats`` (oldest first) with a zero entry for every minute without decisions in between."""
    if not stats:
        return []
    by_minute = {s.minute: s for s in stats}
    filled: list[MinuteStats] = []
    minute, last = stats[0].minute, stats[-1].minute
    while minute <= last:
        filled.append(
            by_minute.get(minute)
            or MinuteStats(
                minute=minute,
                total=0,
                outcomes=dict.fromkeys(DECISIONS, 0),
                flagged_by_type=dict.fromkeys(FRAUD_TYPES, 0),
                blocked_amount={},
            )
        )
        minute += _MINUTE
    return filled


def collect_report(
    state: MonitorState,
    *,
    generated_by: str,
    now: datetime | None = None,
    within: TimeRange = EVERYTHING,
    range_text: str = RANGE_LABELS["all"],
) -> ReportData:
    """A consistent-enough snapshot of ``state`` for one report, limited to the range ``within``."""
    return ReportData(
        generated_at=(now or datetime.now(UTC)).astimezone(UTC),
        generated_by=generated_by,
        headline=state.decisions.headline(within),
        minutes=fill_minutes(state.decisions.minutes(within=within)),
        alerts=state.alerts.query(AlertFilter(within=within, order="score")).alerts,
        verdicts=state.verdicts.snapshot(),
        range_text=range_text,
        audit=state.audit.events(since=within.start, until=within.end),
    )


AUDIT_REPORT_COLUMNS = ("When (UTC)", "Who", "What", "Subject", "Before", "After", "Event id")


def audit_rows(data: ReportData) -> list[list[Any]]:
    """The audit sheet: one row per change, newest first, card tokens shortened."""
    return [[*audit_row(e), e.event_id] for e in data.audit]


def pdf_audit_rows(data: ReportData, limit: int = PDF_AUDIT_EVENTS) -> tuple[list[tuple[str, ...]], int]:
    """The PDF's audit rows (the Audit sheet's, without the event id), the newest ``limit``, and how
    many older changes of the range are left out."""
    shown = data.audit[:limit]
    return [audit_row(e) for e in shown], len(data.audit) - len(shown)


def report_filename(data: ReportData, extension: str) -> str:
    """'fraud-report-20261128-091500.xlsx'."""
    return f"fraud-report-{data.generated_at:%Y%m%d-%H%M%S}.{extension}"


# --- rows shared by both formats -----------------------------------------------------------------
def _naive(ts: datetime) -> datetime:
    """Excel has no time zones: UTC wall time (the headers say UTC)."""
    return ts.astimezone(UTC).replace(tzinfo=None)


def summary_rows(data: ReportData) -> list[tuple[str, Any]]:
    """(figure, value) rows of the summary; rates are fractions (0..1), times naive UTC."""
    h = data.headline
    period = data.period
    rows: list[tuple[str, Any]] = [
        ("Report", REPORT_TITLE),
        ("Generated at (UTC)", _naive(data.generated_at)),
        ("Generated by", data.generated_by),
        ("Period", data.period_text),
        ("Time range", data.range_text),
        ("Period start (UTC)", _naive(period[0]) if period else ""),
        ("Period end (UTC)", _naive(period[1]) if period else ""),
        ("Transactions", h.total),
    ]
    rows += [(f"Decisions: {d}", h.outcomes[d]) for d in DECISIONS]
    rows += [("Flagged (review + block)", h.flagged), ("Alert rate", h.alert_rate)]
    for code in FRAUD_TYPES:
        name = FRAUD_TYPE_NAMES[code]
        flagged = h.flagged_by_type[code]
        rows.append((f"Flagged: {name}", flagged))
        rows.append((f"Fraud rate: {name}", flagged / h.total if h.total else 0.0))
    counts = data.verdict_counts()
    rows += [
        ("Blocked amount", format_amounts(h.blocked_amount)),
        ("Alerts in the queue", len(data.alerts)),
        ("Alerts confirmed as fraud", counts["fraud"]),
        ("Alerts marked legitimate", counts["legitimate"]),
        ("Alerts awaiting a verdict", counts["pending"]),
    ]
    return rows


def rate_header() -> list[str]:
    return (
        ["Minute (UTC)", "Transactions"]
        + [f"Flagged: {FRAUD_TYPE_NAMES[c]}" for c in FRAUD_TYPES]
        + [f"Rate: {FRAUD_TYPE_NAMES[c]}" for c in FRAUD_TYPES]
    )


def rate_rows(data: ReportData) -> list[list[Any]]:
    """Per minute: start (naive UTC), transactions, flagged per type, rate per type (0..1)."""
    return [
        [_naive(s.minute), s.total]
        + [s.flagged_by_type[c] for c in FRAUD_TYPES]
        + [s.fraud_rate(c) for c in FRAUD_TYPES]
        for s in data.minutes
    ]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def alert_row(alert: Mapping[str, Any], verdict: Verdict | None) -> list[Any]:
    """One alert in ``ALERT_REPORT_COLUMNS`` order (card token shortened)."""
    fraud_type = alert.get("fraud_type")
    reasons = alert.get("reasons")
    return [
        str(alert.get("transaction_id", "")),
        format_time(alert.get("event_time")),
        FRAUD_TYPE_NAMES.get(fraud_type, "") if isinstance(fraud_type, str) else "",
        str(alert.get("decision", "")),
        _number(alert.get("score")),
        _number(alert.get("amount")),
        str(alert.get("currency", "")),
        shorten_token(alert.get("card_token")),
        "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else "",
        verdict.outcome if verdict else "",
        FRAUD_TYPE_NAMES.get(verdict.fraud_type or "", "") if verdict else "",
        verdict.analyst if verdict else "",
        verdict.labelled_at.strftime("%Y-%m-%d %H:%M:%S") if verdict else "",
    ]


def alert_rows(data: ReportData) -> list[list[Any]]:
    """The alert queue (highest score first, see ``ALERTS_ORDER_TEXT``) with verdicts."""
    return [alert_row(a, data.verdicts.get(str(a.get("transaction_id", "")))) for a in data.alerts]


def top_alerts(data: ReportData, limit: int = PDF_TOP_ALERTS) -> list[Mapping[str, Any]]:
    """The ``limit`` highest-scoring alerts, newest first among equal scores."""
    ranked = sorted(
        enumerate(data.alerts), key=lambda item: (-(_number(item[1].get("score")) or 0.0), item[0])
    )
    return [alert for _, alert in ranked[:limit]]
