"""The rule what-if against a real worker: the monitor's feed reads the features and decisions the
worker keeps for its labels (its pending-labels changelog), a draft runs over them, and the rule an
analyst enables from the monitor decides the worker's next transaction without a restart."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from monitor.consumer import KafkaFeed
from monitor.rules_file import RulesFile
from monitor.users import User
from monitor.views.rule_whatif import enable_draft, try_draft
from pipeline.config import REPO_ROOT
from tests.e2e.test_restart import label, transaction
from tests.e2e.test_rules_reload import _decide, _wait_for_reload
from tests.support import produce

pytestmark = pytest.mark.kafka

DRAFT = """\
- id: WHATIF-big-amount
  fraud_type: unauthorized_transactions
  action: block
  when: amount >= 5000
  reason: "{amount:.0f} is above the what-if limit"
"""


def test_a_rule_tried_on_the_workers_transactions_and_enabled_from_the_monitor(
    make_settings, start_worker, tmp_path
) -> None:
    rules = RulesFile(tmp_path / "rules.yaml")
    rules.path.write_text((REPO_ROOT / "pipeline" / "detection" / "rules.yaml").read_text())
    settings = make_settings(rules_file=rules.path, rules_reload_seconds=0.5)
    worker = start_worker(settings)
    txns = [
        transaction(f"whatif-{i}", 30 - i, amount=amount, card_token=f"tok_whatif000{i}")
        for i, amount in enumerate((6000.0, 7000.0, 40.0, 25.0))
    ]
    assert _decide(settings, txns[-1])["decision"] == "allow"
    produce(settings, settings.topic_transactions, [(t["card_token"], t) for t in txns[:-1]])

    with KafkaFeed(settings) as feed:
        store = feed.state.scored
        assert feed.wait_until(lambda: len(store) == 4, 60), f"{len(store)} kept\n{worker.log()}"
        # labels come later than the scoring (one in the same flush would leave only its tombstone)
        produce(settings, settings.topic_labels, [label(txns[0], True), label(txns[2], False)])
        assert feed.wait_until(lambda: len(store.sample(0).labels) == 2, 30), store.sample(0).labels
    [first] = [r for r in store.sample(0).rows if r.transaction_id == "whatif-0"]
    assert first.decision == "allow" and first.features.size == 70, "the worker's own features"

    tried = try_draft(store, rules, DRAFT, 1, time.time())
    assert tried.feedback.text.startswith("WHATIF-big-amount: 2 hits in 4 transactions"), tried.feedback
    table = dict(tried.rows)
    assert table["Labelled precision"] == "100.0% (1 frauds of 1 labelled hits)"
    assert table["Amount that would be blocked"] == "13,000.00 " + txns[0]["currency"]

    viewer = enable_draft(rules, User("victor", "viewer"), DRAFT, datetime.now(UTC))
    assert viewer.text.startswith("Not allowed:")
    assert enable_draft(rules, User("alice", "analyst"), DRAFT, datetime.now(UTC)).text.startswith("Enabled:")
    _wait_for_reload(worker, "loaded", 1)
    after = _decide(settings, transaction("whatif-after", 1, amount=8000.0, card_token="tok_whatif0009"))
    assert after["decision"] == "block" and after["rule_hits"] == ["WHATIF-big-amount"]
