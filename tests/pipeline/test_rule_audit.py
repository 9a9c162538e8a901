"""The rule file's changes made outside the monitor are audited when a worker reloads the file
(pipeline/worker/rule_audit.py, pipeline/worker/upkeep.py): rules added, changed and removed, and
the file's own block/allow list entries, as ``system`` at the file's time; a rule the monitor
enabled (audited by the monitor) is not audited again; two workers publish the same events, which
the monitor's audit trail keeps once and shows."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from monitor.rule_drafts import parse_draft, with_rule
from monitor.state.audit import AuditStore, audit_row
from pipeline.config import REPO_ROOT
from pipeline.contracts.json_schemas import validator
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.rules import parse_rules
from pipeline.worker.rule_audit import RuleFileAudit, file_changes, monitor_enabled
from pipeline.worker.telemetry import PipelineMetrics
from pipeline.worker.upkeep import RuleReloader

SHIPPED = (REPO_ROOT / "pipeline" / "detection" / "rules.yaml").read_text()
CHANGED_AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
FILE = Path("/etc/fraud/rules.yaml")
HAND_RULE = """\
  - id: HAND-big
    fraud_type: unauthorized_transactions
    action: block
    when: amount >= 9000
    reason: "{amount:.0f} is too much"
"""
MONITOR_DRAFT = """\
- action: review
  id: WHATIF-big
  fraud_type: unauthorized_transactions
  when: amount >= 500 and is_foreign == 1
  reason: "{amount:.0f} abroad"
"""


def rules(text: str) -> Any:
    return parse_rules(text, FEATURE_NAMES, source="rules.yaml")


def hand_edited() -> str:
    """The shipped file edited by hand: a rule added, one changed, one removed, list entries."""
    text = SHIPPED.replace("rules:\n", "rules:\n" + HAND_RULE, 1)
    text = text.replace("terminal_small_amount_cards_10m >= 8", "terminal_small_amount_cards_10m >= 6", 1)
    start = text.index("  - id: UT-burst-abroad-large")
    text = text[:start] + text[text.index("\n\n", start) + 1 :]
    text = text.replace("blocked_cards: []", "blocked_cards: [tok_handblocked01]")
    return text.replace("allowed_cards: []", "allowed_cards: [tok_handallowed01]")


def test_each_change_of_a_hand_edited_file_is_an_event_of_the_system() -> None:
    events = file_changes(
        rules(SHIPPED), rules(hand_edited()), text=hand_edited(), file=FILE, changed_at=CHANGED_AT
    )
    check = validator("audit_event")
    for event in events:
        check(event)
        assert (event["who"], event["at"]) == ("system", "2026-12-07T09:30:00.000+00:00")
    by_subject = {e["subject"]: e for e in events}
    assert [(e["kind"], e["subject"]) for e in events] == [
        ("rule_change", "HAND-big"),
        ("rule_change", "MB-card-testing-burst"),
        ("rule_change", "UT-burst-abroad-large"),
        ("list_change", "allow:card:tok_handallowed01"),
        ("list_change", "block:card:tok_handblocked01"),
    ]
    added = by_subject["HAND-big"]
    assert added["before"] is None
    assert added["after"]["rule"] == {"id": "HAND-big", "fraud_type": "unauthorized_transactions",
                                      "action": "block", "when": "amount >= 9000",
                                      "reason": "{amount:.0f} is too much"}  # fmt: skip
    assert added["after"]["file"] == "rules.yaml"
    changed = by_subject["MB-card-testing-burst"]
    assert changed["before"]["rule"]["when"].endswith(">= 8") and changed["after"]["rule"]["when"].endswith(
        ">= 6"
    )
    removed = by_subject["UT-burst-abroad-large"]
    assert removed["before"]["rule_id"] == "UT-burst-abroad-large" and removed["after"] is None
    blocked = by_subject["block:card:tok_handblocked01"]
    assert blocked["before"] is None
    assert {k: blocked["after"][k] for k in ("action", "list", "entity_kind", "value")} == {
        "action": "add", "list": "block", "entity_kind": "card", "value": "tok_handblocked01"
    }  # fmt: skip

    back = file_changes(rules(hand_edited()), rules(SHIPPED), text=SHIPPED, file=FILE, changed_at=CHANGED_AT)
    unblocked = next(e for e in back if e["subject"] == "block:card:tok_handblocked01")
    assert unblocked["before"]["action"] == "add" and unblocked["after"]["action"] == "remove"
    assert next(e for e in back if e["subject"] == "HAND-big")["after"] is None
    assert file_changes(rules(SHIPPED), rules(SHIPPED), text=SHIPPED, file=FILE, changed_at=CHANGED_AT) == []


def test_a_rule_the_monitor_enabled_is_left_to_the_monitors_own_event() -> None:
    enabled = with_rule(SHIPPED, parse_draft(MONITOR_DRAFT), who="alice", at=CHANGED_AT)
    assert monitor_enabled(enabled) == {"WHATIF-big"} and monitor_enabled(SHIPPED) == set()
    assert monitor_enabled("rules: [") == set(), "a file that does not parse marks nothing"
    assert file_changes(rules(SHIPPED), rules(enabled), text=enabled, file=FILE, changed_at=CHANGED_AT) == []
    # then edited by hand: that change is the system's
    edited = enabled.replace("amount >= 500 and is_foreign == 1", "amount >= 400 and is_foreign == 1")
    (event,) = file_changes(rules(enabled), rules(edited), text=edited, file=FILE, changed_at=CHANGED_AT)
    assert (event["who"], event["subject"]) == ("system", "WHATIF-big")
    assert event["before"]["rule"]["when"].startswith("amount >= 500")
    # the same rule pasted by hand, without the monitor's comment, is the system's too
    pasted = SHIPPED.replace("rules:\n", "rules:\n" + HAND_RULE.replace("HAND-big", "WHATIF-big"), 1)
    (by_hand,) = file_changes(rules(SHIPPED), rules(pasted), text=pasted, file=FILE, changed_at=CHANGED_AT)
    assert by_hand["subject"] == "WHATIF-big"


def test_two_workers_publish_the_same_events_and_the_monitor_keeps_each_once() -> None:
    def seen_by_a_worker() -> list[dict[str, Any]]:
        return file_changes(rules(SHIPPED), rules(hand_edited()), text=hand_edited(), file=FILE,
                            changed_at=CHANGED_AT)  # fmt: skip

    first, second = seen_by_a_worker(), seen_by_a_worker()
    assert [e["event_id"] for e in first] == [e["event_id"] for e in second]
    assert len({e["event_id"] for e in first}) == len(first)
    store = AuditStore()
    assert [store.add(e) for e in first] == ["added"] * len(first)
    assert [store.add(e) for e in second] == ["duplicate"] * len(second)
    shown = [audit_row(e) for e in store.events(who="system", kind="rule_change")]
    hand = next(row for row in shown if row[3] == "HAND-big")
    assert hand[:4] == ("2026-12-07 09:30:00", "system", "Rule change", "HAND-big")
    assert hand[4] == "-" and "rule_id=HAND-big" in hand[5] and "when: amount >= 9000" in hand[5]
    (listed,) = [audit_row(e) for e in store.events(subject="handblocked")]
    assert listed[2] == "List change" and "action=add; list=block; entity_kind=card" in listed[5]


def test_the_worker_publishes_the_events_of_a_reload_and_none_for_a_refused_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(SHIPPED)
    sent: list[tuple[str, dict[str, Any], bytes]] = []
    producer = SimpleNamespace(send=lambda topic, value, key: sent.append((topic, orjson.loads(value), key)))
    engine = SimpleNamespace(rules=rules(SHIPPED))
    reloader = RuleReloader(path, SimpleNamespace(engine=engine), PipelineMetrics(CollectorRegistry()),
                            RuleFileAudit("app-audit", producer))  # type: ignore[arg-type]  # fmt: skip

    def edit(text: str, mtime: float) -> None:
        path.write_text(text)
        os.utime(path, (mtime, mtime))
        asyncio.run(reloader.reload_if_changed())

    edit(hand_edited(), CHANGED_AT.timestamp())
    assert [s[0] for s in sent] == ["app-audit"] * 5
    assert {s[2] for s in sent} == {e["subject"].encode() for _, e, _ in sent}, "keyed by the subject"
    assert all(e["at"] == "2026-12-07T09:30:00.000+00:00" for _, e, _ in sent), "the file's time"
    assert engine.rules.rules[0].id == "HAND-big", "in force"
    sent.clear()
    edit(hand_edited().replace("when: amount >= 9000", "when: amount >="), CHANGED_AT.timestamp() + 60)
    assert sent == [] and engine.rules.rules[0].id == "HAND-big", "a refused file changes nothing"
