"""The audit trail: every change made in the monitor (an analyst's verdict, a block/allow list
change, a rule enabled) as an ``audit_event.v1`` (who, when, what, before and after) on the
append-only topic ``<app id>-audit`` (kept for good).

``audit_event`` (``pipeline.contracts.audit_events``) builds an event (pure). ``Audit`` wraps the
monitor's three ways of changing something: the verdict publisher, the list publisher and the rule
file. Each change is made first (its own checks, analysts only, stay where they are, on the
server) and, once acknowledged, its event is published and waited for; an event that cannot be
published is reported to the analyst like a failed change. A refused change (a viewer's, an
invalid one) changes nothing and leaves no event. The monitor reads the topic back into
``monitor.state.audit`` (the "Audit trail" section, the reports' "Audit" sheet), with the events
the workers publish for the rule file's changes made outside the monitor (who: ``system``;
pipeline/worker/rule_audit.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

from monitor.feedback import DELIVERY_TIMEOUT_SECONDS, AcknowledgedPublisher, FeedbackError
from monitor.lists_feed import ListPublishError
from monitor.rule_drafts import Draft
from monitor.rules_file import RuleNotAuditedError, RulesFile
from monitor.state.shared_lists import SharedLists
from monitor.state.verdicts import VerdictStore
from pipeline.config import Settings
from pipeline.contracts.audit_events import Kind, audit_event

__all__ = ["Audit", "AuditError", "AuditPublisher", "Kind", "audit_event"]

logger = logging.getLogger(__name__)


class AuditError(RuntimeError):
    """An audit event could not be published (the change itself was made)."""


class AuditPublisher(AcknowledgedPublisher):
    """Publishes audit events to ``settings.topic_audit`` and waits for each."""

    def __init__(self, settings: Settings, *, timeout: float = DELIVERY_TIMEOUT_SECONDS) -> None:
        super().__init__(
            settings, settings.topic_audit, client="monitor-audit", what="audit event", error=AuditError,
            timeout=timeout,
        )  # fmt: skip

    def publish(self, event: Mapping[str, Any]) -> None:
        self._send(str(event["subject"]), event)


Record = Callable[[Mapping[str, Any]], None]


class Audit:
    """Wraps the monitor's verdicts, list changes and rule file so that each change is audited."""

    def __init__(self, record: Record) -> None:
        self.record = record

    def _record(self, event: dict[str, Any], error: type[Exception]) -> None:
        try:
            self.record(event)
        except AuditError as exc:
            logger.error("audit event of %s %s not published: %s", event["kind"], event["subject"], exc)
            raise error(f"the change was made but not audited: {exc}") from exc

    def verdicts(
        self, publish: Callable[[Mapping[str, Any]], None], verdicts: VerdictStore
    ) -> Callable[[Mapping[str, Any]], None]:
        """``publish`` (of a verdict's label), audited: before is the verdict the monitor held."""

        def audited(label: Mapping[str, Any]) -> None:
            known = verdicts.get(label["transaction_id"])
            before = None if known is None else _verdict_json(known)
            publish(label)
            event = audit_event(
                "verdict", who=str(label["analyst"]), at=datetime.fromisoformat(label["labelled_at"]),
                subject=label["transaction_id"], before=before, after=label,
            )  # fmt: skip
            self._record(event, FeedbackError)

        return audited

    def lists(
        self, publish_list: Callable[[str, Mapping[str, Any]], None], lists: SharedLists
    ) -> Callable[[str, Mapping[str, Any]], None]:
        """``publish_list`` (of a list update), audited: before is the entry in force under the key."""

        def audited(key: str, message: Mapping[str, Any]) -> None:
            known = next((e for e in lists.entries() if e.key == key), None)
            before = None if known is None else asdict(known)
            publish_list(key, message)
            event = audit_event(
                "list_change", who=str(message["who"]), at=datetime.fromisoformat(message["at"]),
                subject=key, before=before, after=message,
            )  # fmt: skip
            self._record(event, ListPublishError)

        return audited

    def rules(self, rules: RulesFile) -> RulesFile:
        """The rule file, audited: enabling a rule records its text (before: none, ids are new)."""
        return _AuditedRulesFile(rules.path, self)


class _AuditedRulesFile(RulesFile):
    def __init__(self, path: Any, audit: Audit) -> None:
        super().__init__(path)
        self.audit = audit

    def enable(self, draft: Draft, *, who: str, at: datetime) -> None:
        super().enable(draft, who=who, at=at)
        after = {"rule_id": draft.rule.id, "rule": draft.fields, "file": self.path.name}
        event = audit_event("rule_change", who=who, at=at, subject=draft.rule.id, before=None, after=after)
        self.audit._record(event, RuleNotAuditedError)


def _verdict_json(verdict: Any) -> dict[str, Any]:
    data = asdict(verdict)
    data["labelled_at"] = verdict.labelled_at.isoformat()
    return data
