"""The audit trail as the monitor reads it back from ``<app id>-audit`` (monitor/audit.py writes
it): the newest ``MAX_EVENTS`` events, each once (by event id), filtered for the "Audit trail"
section and the reports (thread-safe); and how an event reads in a table (``audit_row``: card
tokens shortened, as everywhere in the monitor)."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor import formatting  # a module: monitor.formatting imports monitor.state too
from monitor.state.records import AddResult, InvalidRecordError, VersionedStore, record_time
from pipeline.contracts.json_schemas import SchemaViolation, validator

MAX_EVENTS = 100_000
KINDS = ("verdict", "list_change", "rule_change")
KIND_NAMES = {"verdict": "Verdict", "list_change": "List change", "rule_change": "Rule change"}


@dataclass(frozen=True, slots=True)
class AuditEvent:
    event_id: str
    at: datetime
    who: str
    kind: str
    subject: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


class AuditStore(VersionedStore):
    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        super().__init__()
        self._events: OrderedDict[str, AuditEvent] = OrderedDict()
        self._max = max_events
        self._check = validator("audit_event")

    def _count(self) -> int:
        return len(self._events)

    def add(self, record: Mapping[str, Any]) -> AddResult:
        try:
            self._check(dict(record))
        except SchemaViolation as exc:
            raise InvalidRecordError(f"audit_event: {exc.message}") from exc
        event = AuditEvent(
            record["event_id"], record_time(record["at"], "at"), record["who"], record["kind"],
            record["subject"], record["before"], record["after"],
        )  # fmt: skip
        with self._lock:
            if event.event_id in self._events:
                return "duplicate"
            self._events[event.event_id] = event
            while len(self._events) > self._max:
                self._events.popitem(last=False)
            self._version += 1
            return "added"

    def events(
        self,
        *,
        kind: str | None = None,
        who: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[AuditEvent]:
        """The events that match every filter given (``who`` and ``subject``: a case-insensitive
        part of it), newest first."""
        who_part = (who or "").strip().lower()
        subject_part = (subject or "").strip().lower()
        with self._lock:
            events = list(self._events.values())
        chosen = [
            e
            for e in events
            if (not kind or e.kind == kind)
            and (not who_part or who_part in e.who.lower())
            and (not subject_part or subject_part in e.subject.lower())
            and (since is None or e.at >= since)
            and (until is None or e.at < until)
        ]
        chosen.sort(key=lambda e: e.at, reverse=True)
        return chosen


_TOKEN = re.compile(r"tok_[A-Za-z0-9]{8,64}")
_SHOWN_FIELDS = {
    "verdict": ("is_fraud", "fraud_type", "comment"),
    "list_change": ("action", "list", "entity_kind", "value", "reason"),
    "rule_change": ("rule_id", "rule"),
}


def masked(text: str) -> str:
    """``text`` with every card token shortened."""
    return _TOKEN.sub(lambda m: formatting.shorten_token(m.group(0)), text)


def describe(kind: str, value: Mapping[str, Any] | None) -> str:
    """The fields of a before or after that say what it was, tokens shortened ('-' for nothing)."""
    if value is None:
        return "-"
    fields = _SHOWN_FIELDS.get(kind, tuple(value))
    parts = []
    for name in fields:
        if name not in value or value[name] is None:
            continue
        shown = value[name]
        if isinstance(shown, Mapping):
            shown = ", ".join(f"{k}: {v}" for k, v in shown.items() if k != "reason")
        parts.append(f"{name}={shown}")
    return masked("; ".join(parts))[:300]


def audit_row(event: AuditEvent) -> tuple[str, ...]:
    return (
        event.at.strftime("%Y-%m-%d %H:%M:%S"),
        event.who,
        KIND_NAMES.get(event.kind, event.kind),
        masked(event.subject),
        describe(event.kind, event.before),
        describe(event.kind, event.after),
    )
