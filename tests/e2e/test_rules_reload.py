"""Editing the rule file while a worker runs: the new rules apply without a restart, a malformed
file is refused and the rules in force stay. Each change of the rules in force made outside the
monitor is an audit event of the system on the audit topic, which the monitor's audit trail shows;
a rule the monitor enabled is left to the monitor's own event."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from monitor.consumer import KafkaFeed
from monitor.rule_drafts import parse_draft, with_rule
from monitor.state.audit import audit_row
from monitor.views.audit import filtered
from pipeline.config import REPO_ROOT
from tests.e2e.test_pipeline import metric_value
from tests.e2e.test_restart import transaction
from tests.support import consume_until, produce

pytestmark = pytest.mark.kafka

BIG_AMOUNT_RULE = """
  - id: TEST-big-amount
    fraud_type: unauthorized_transactions
    action: block
    when: amount >= 5000
    reason: "{amount:.0f} is above the test limit"
"""


MONITOR_RULE = """\
- id: WHATIF-monitor
  fraud_type: unauthorized_transactions
  action: review
  when: amount >= 4000
  reason: "enabled in the monitor"
"""


def _wait_for_reload(worker, outcome: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while metric_value(worker.metrics(), "fraud_rule_reloads_total", outcome=outcome) < count:
        assert time.monotonic() < deadline, f"no {outcome} reload:\n{worker.log()}"
        time.sleep(0.2)


def _decide(settings, txn) -> dict:
    produce(settings, settings.topic_transactions, [(txn["card_token"], txn)])
    got = consume_until(settings, settings.topic_decisions,
                        lambda m: txn["transaction_id"] in {d["transaction_id"] for d in m})  # fmt: skip
    return next(d for d in got if d["transaction_id"] == txn["transaction_id"])


def test_rules_reload_while_running_and_a_bad_file_is_refused(make_settings, start_worker, tmp_path) -> None:
    rules = tmp_path / "rules.yaml"
    original = (REPO_ROOT / "pipeline" / "detection" / "rules.yaml").read_text()
    rules.write_text(original)
    settings = make_settings(rules_file=rules, rules_reload_seconds=0.5)
    worker = start_worker(settings)

    before = _decide(settings, transaction("reload-1", 5, amount=6000.0, card_token="tok_reload0001"))
    assert before["decision"] == "allow"

    rules.write_text(original.replace("rules:\n", "rules:" + BIG_AMOUNT_RULE, 1))
    _wait_for_reload(worker, "loaded", 1)
    after = _decide(settings, transaction("reload-2", 4, amount=6000.0, card_token="tok_reload0002"))
    assert after["decision"] == "block" and after["rule_hits"] == ["TEST-big-amount"]
    assert after["reasons"] == ["6000 is above the test limit"]

    rules.write_text(original.replace("rules:\n", "rules:\n  - id: broken\n    when: amount >\n", 1))
    _wait_for_reload(worker, "refused", 1)
    still = _decide(settings, transaction("reload-3", 3, amount=6000.0, card_token="tok_reload0003"))
    assert still["decision"] == "block", "a malformed file leaves the rules in force"
    assert "rule file refused" in worker.log()

    # the hand edit is the system's audit event; the refused file and a rule the monitor enabled
    # (audited by the monitor itself) are not
    enabled = original.replace("rules:\n", "rules:" + BIG_AMOUNT_RULE, 1)
    rules.write_text(with_rule(enabled, parse_draft(MONITOR_RULE), who="alice", at=datetime.now(UTC)))
    _wait_for_reload(worker, "loaded", 2)
    time.sleep(3)  # a worker's event would be on the topic by now
    with KafkaFeed(settings) as feed:  # the monitor's audit trail, read to the topic's end
        assert feed.wait_until(lambda: feed.ready and len(feed.state.audit) >= 1, 60), feed.failure
        time.sleep(2)  # the audit topic is not among those readiness waits for: any second event too
        (event,) = feed.state.audit.events()
        assert (event.who, event.kind, event.subject, event.before) == (
            "system",
            "rule_change",
            "TEST-big-amount",
            None,
        )
        assert event.after is not None and event.after["rule"]["when"] == "amount >= 5000"
        (row,) = [audit_row(e) for e in filtered(feed.state.audit, "rule_change", "system", "")]
        assert row[1:4] == ("system", "Rule change", "TEST-big-amount") and "amount >= 5000" in row[5]
