"""The audit trail's events (``audit_event``, schemas/audit_event.v1.schema.json), built alike by
the monitor (the changes made in it: verdicts, list changes, rules enabled; monitor/audit.py) and
by the worker (the changes of the rule file it reloads: rules and the file's block/allow lists,
made outside the monitor; pipeline/worker/rule_audit.py). Both publish to ``<app id>-audit``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import orjson

from pipeline.contracts.json_schemas import validator

Kind = Literal["verdict", "list_change", "rule_change"]

SYSTEM = "system"
"""Who made a change no login made: the rule file edited outside the monitor, as a worker reloads it."""
MONITOR_RULE_MARK = "# enabled in the monitor by "
"""The comment the monitor writes on the line before a rule it enables (monitor/rule_drafts.py):
the monitor audits that rule itself, so the workers that reload the file do not."""

_check = validator("audit_event")


def audit_event(
    kind: Kind,
    *,
    who: str,
    at: datetime,
    subject: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """An ``audit_event.v1`` message (checked against its schema); a random id unless given."""
    event = {
        "schema_version": 1,
        "event_id": event_id or uuid.uuid4().hex,
        "at": at.isoformat(timespec="milliseconds"),
        "who": who,
        "kind": kind,
        "subject": subject,
        "before": None if before is None else dict(before),
        "after": None if after is None else dict(after),
    }
    _check(event)
    return event


def content_event_id(*parts: Any) -> str:
    """An event id that is the same wherever the same change is seen (several workers reloading
    one rule file): a hash of ``parts`` (JSON-able), 32 hex digits like a random id."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
