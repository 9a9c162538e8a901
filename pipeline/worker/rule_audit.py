"""The audit trail of the rule file's changes made outside the monitor (issue 19, item 4).

The monitor audits the rules it enables (monitor/audit.py). The rule file can also be edited by
hand (or by a deployment) and reloaded by the workers (``pipeline.worker.upkeep.RuleReloader``):
each reload that changes what is in force is audited here, one ``audit_event`` per change, on the
same topic (``<app id>-audit``):

* a rule added, removed or changed (``rule_change``, subject: the rule id; before and after: the
  rule's fields, or null when it was not or is no longer in the file);
* an entry of the file's own block/allow lists added or removed (``list_change``, subject:
  ``<list>:<entity kind>:<value>`` as the monitor's list entries; these lists are not the topic's).

Who is ``system`` (no login made the edit); when is the file's modification time. A rule the
monitor enabled (its ``MONITOR_RULE_MARK`` comment on the line before it) was audited by the
monitor with its analyst, and is not audited again. Every worker that reloads the file publishes
the same events with the same ids (a hash of the change and the file's time), and the monitor
keeps each id once. A change made while no worker runs is not seen (there is no reload then), nor
is a refused file (nothing of it comes into force).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from pipeline.contracts.audit_events import MONITOR_RULE_MARK, SYSTEM, audit_event, content_event_id
from pipeline.detection.rules import Rule, RuleSet

ENTITY_KINDS = {"cards": "card", "devices": "device", "merchants": "merchant"}
"""The rule file's list names (``blocked_<kinds>``) to the list entries' entity kinds."""


def rule_fields(rule: Rule) -> dict[str, Any]:
    """A rule as the file writes it."""
    return {"id": rule.id, "fraud_type": rule.fraud_type, "action": rule.action, "when": rule.when,
            "reason": rule.reason}  # fmt: skip


def monitor_enabled(text: str) -> set[str]:
    """The ids of the rules whose item is right after the monitor's comment in the file ``text``
    (empty when the text does not parse as YAML: the file was refused anyway)."""
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return set()
    if not isinstance(document, yaml.MappingNode):
        return set()
    sequence = next((v for k, v in document.value if getattr(k, "value", None) == "rules"), None)
    if not isinstance(sequence, yaml.SequenceNode):
        return set()
    lines = text.splitlines()
    marked = set()
    for item in sequence.value:
        line = item.start_mark.line
        if not isinstance(item, yaml.MappingNode) or line == 0:
            continue
        if lines[line - 1].strip().startswith(MONITOR_RULE_MARK.strip()):
            marked.update(str(v.value) for k, v in item.value if getattr(k, "value", None) == "id")
    return marked


def _list_entries(rules: RuleSet) -> dict[str, dict[str, str]]:
    """The file's list entries by key (``<list>:<entity kind>:<value>``)."""
    listed = [("block", ENTITY_KINDS.get(kinds, kinds), values) for kinds, values in rules.blocked.items()]
    listed.append(("allow", "card", rules.allowed_cards))
    return {
        f"{name}:{kind}:{value}": {"list": name, "entity_kind": kind, "value": value}
        for name, kind, values in listed
        for value in values
    }


def file_changes(
    before: RuleSet, after: RuleSet, *, text: str, file: Path, changed_at: datetime
) -> list[dict[str, Any]]:
    """The audit events of a reload from ``before`` to ``after`` (the file's new ``text``,
    modified at ``changed_at``): rules first, in file order, then list entries by key."""
    events = []
    at = changed_at.astimezone(UTC)

    def event(kind: Any, subject: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
        event_id = content_event_id(kind, subject, old, new, at.isoformat(), file.name)
        events.append(audit_event(kind, who=SYSTEM, at=at, subject=subject, before=old, after=new,
                                  event_id=event_id))  # fmt: skip

    old_rules = {r.id: rule_fields(r) for r in before.rules}
    new_rules = {r.id: rule_fields(r) for r in after.rules}
    skipped = monitor_enabled(text) - set(old_rules)
    where = {"file": file.name, "source": "rule file reloaded by the workers"}
    for rule_id in [*new_rules, *(i for i in old_rules if i not in new_rules)]:
        old, new = old_rules.get(rule_id), new_rules.get(rule_id)
        if old == new or (old is None and rule_id in skipped):
            continue
        event("rule_change", rule_id, old and {"rule_id": rule_id, "rule": old, **where},
              new and {"rule_id": rule_id, "rule": new, **where})  # fmt: skip
    old_entries, new_entries = _list_entries(before), _list_entries(after)
    for key in sorted(old_entries.keys() ^ new_entries.keys()):
        entry = new_entries.get(key) or old_entries[key]
        added = {"action": "add", **entry, "reason": f"in the rule file {file.name}", **where}
        if key in new_entries:
            event("list_change", key, None, added)
        else:
            removed = {**added, "action": "remove", "reason": f"removed from the rule file {file.name}"}
            event("list_change", key, added, removed)
    return events


class RuleFileAudit:
    """Publishes the audit events of the rule file's reloads with the worker's producer."""

    def __init__(self, topic: str, producer: Any) -> None:
        self.topic = topic
        self.producer = producer

    def reloaded(self, before: RuleSet, after: RuleSet, *, text: str, file: Path, mtime: float) -> int:
        """Publish the events of a reload; returns how many."""
        changed_at = datetime.fromtimestamp(mtime, UTC)
        events = file_changes(before, after, text=text, file=file, changed_at=changed_at)
        for e in events:
            self.producer.send(self.topic, orjson.dumps(e), str(e["subject"]).encode())
        return len(events)
