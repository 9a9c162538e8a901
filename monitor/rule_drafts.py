"""Pure: an analyst's draft rule, checked as the rule file's own loader checks it, and the rule
file with the draft added (no Kafka, no Dash, no file I/O).

A draft is one rule in the rule file's syntax (``pipeline/detection/rules.yaml``), with or without
the leading ``- `` of a list item. It is checked by the project's rule code
(``pipeline.detection.rules.compile_rule``, the same check the worker's loader makes) against the
names the worker knows, and against the rules in force (a draft may not reuse an id). A problem is
a ``DraftError`` with the draft's line and the reason.

``with_rule`` adds a checked rule at the end of the file's ``rules:`` list, as text, so the file's
comments and layout stay; the result is parsed again by ``parse_rules`` and refused unless it holds
the rules in force plus the draft. Only an analyst may enable a rule (``check_may_enable_rules``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from monitor.users import User
from pipeline.contracts.audit_events import MONITOR_RULE_MARK
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.rules import TRANSACTION_FIELDS, Rule, RuleError, RuleSet, compile_rule, parse_rules

RULE_KEYS = ("id", "fraud_type", "action", "when", "reason", "description")
DRAFT_EXAMPLE = """\
- id: WHATIF-large-foreign
  fraud_type: unauthorized_transactions
  action: review
  when: amount >= 500 and is_foreign == 1
  reason: "{amount:.0f} {currency} abroad ({country})"
"""
"""What the draft box holds at first: a rule in the file's syntax."""

# Which key of the rule a problem of compile_rule is about (for its line).
_KEY_OF_PROBLEM = (
    (re.compile(r"\bwhen\b"), "when"),
    (re.compile(r"\breason\b"), "reason"),
    (re.compile(r"^fraud_type "), "fraud_type"),
    (re.compile(r"^action "), "action"),
)


class DraftError(ValueError):
    """The draft is not a valid rule: ``line`` (1-based, of the draft) and ``reason``."""

    def __init__(self, line: int | None, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


class RuleChangeNotAllowedError(PermissionError):
    """The user may not change the rules (not logged in, or a viewer)."""


def check_may_enable_rules(user: User | None) -> User:
    """``user`` when it is an analyst; raises RuleChangeNotAllowedError otherwise."""
    if user is None:
        raise RuleChangeNotAllowedError("log in to enable rules")
    if user.role != "analyst":
        raise RuleChangeNotAllowedError(f"{user.name} is a {user.role}: only analysts may enable rules")
    return user


@dataclass(frozen=True)
class Draft:
    """A checked draft: the compiled rule and its fields as written (for the rule file)."""

    rule: Rule
    fields: dict[str, Any]


def known_names() -> frozenset[str]:
    """The names a rule may read: the features and the transaction fields (as the worker loads)."""
    return frozenset(FEATURE_NAMES) | TRANSACTION_FIELDS


def parse_draft(text: str | None, in_force: RuleSet | None = None) -> Draft:
    """The draft ``text`` as a checked rule; raises DraftError with the line and the reason."""
    if not (text or "").strip():
        raise DraftError(None, "the draft is empty: write one rule (id, fraud_type, action, when, reason)")
    assert text is not None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise DraftError(mark.line + 1 if mark is not None else None, f"not valid YAML: {problem}") from None
    if isinstance(data, list):
        if len(data) != 1:
            raise DraftError(1, f"a draft is one rule, not {len(data)}")
        data = data[0]
        node = node.value[0] if isinstance(node, yaml.SequenceNode) else node
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise DraftError(1, "a rule is a mapping of id, fraud_type, action, when and reason")
    start = node.start_mark.line + 1
    lines = {key.value: key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}
    try:
        rule = compile_rule(data, known_names(), "draft")
    except RuleError as exc:
        problem = str(exc).removeprefix("draft: ")
        key = next((key for pattern, key in _KEY_OF_PROBLEM if pattern.search(problem)), None)
        raise DraftError(lines.get(key, start) if key else start, problem) from None
    if in_force is not None and rule.id in {r.id for r in in_force.rules}:
        raise DraftError(
            lines.get("id", start), f"rule id {rule.id!r} is already in force ({in_force.source})"
        )
    return Draft(rule, {key: data[key] for key in RULE_KEYS if key in data})


def with_rule(rules_text: str, draft: Draft, *, who: str, at: datetime) -> str:
    """The rule file ``rules_text`` with ``draft`` added at the end of its ``rules:`` list.

    Raises RuleError when the file does not parse, or the result is not exactly the rules in
    force plus the draft (then nothing must be written)."""
    before = parse_rules(rules_text, FEATURE_NAMES, source="rule file")
    if draft.rule.id in {r.id for r in before.rules}:
        raise RuleError(f"rule id {draft.rule.id!r} is already in force")
    document = yaml.compose(rules_text, Loader=yaml.SafeLoader)
    sequence = next(v for k, v in document.value if k.value == "rules")
    if not isinstance(sequence, yaml.SequenceNode) or sequence.flow_style or not sequence.value:
        raise RuleError("the rule file's 'rules' is not a block list with a rule: add the rule by hand")
    column = sequence.value[0].start_mark.column - 2  # where the items' "- " starts
    last_line = sequence.value[-1].end_mark.line  # 0-based; the last item ends before this line
    if sequence.value[-1].end_mark.column > 0:
        last_line += 1
    block = yaml.safe_dump([draft.fields], sort_keys=False, allow_unicode=True, width=10_000)
    indent = " " * max(column, 0)
    who = re.sub(r"[^\w.@-]", "_", who)  # a comment of one line
    added = f"{indent}{MONITOR_RULE_MARK}{who} at {at.isoformat(timespec='seconds')}\n"  # workers skip it
    added += "".join(indent + line + "\n" for line in block.splitlines())
    lines = rules_text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    while last_line > 0 and (
        not lines[last_line - 1].strip() or lines[last_line - 1].lstrip().startswith("#")
    ):
        last_line -= 1  # after the last rule, before the blank lines and comments that follow it
    result = "".join(lines[:last_line]) + added + "".join(lines[last_line:])
    after = parse_rules(result, FEATURE_NAMES, source="rule file")
    if [r.id for r in after.rules] != [*(r.id for r in before.rules), draft.rule.id] or (
        after.blocked != before.blocked or after.allowed_cards != before.allowed_cards
    ):
        raise RuleError("adding the rule would change more than the rule: add it by hand")
    return result
