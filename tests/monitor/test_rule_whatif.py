"""The rule what-if without a broker: drafts checked with their line and reason, the scored store
and its bound, the evaluation against the project's rule code, the figures, the rule file written
for the workers' reload, and the analyst-only enable (through the Dash callback route too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.app import create_app
from monitor.consumer import KafkaFeed
from monitor.rule_drafts import DRAFT_EXAMPLE, DraftError, parse_draft, with_rule
from monitor.rules_file import RulesFile
from monitor.state import MonitorState
from monitor.state.alerts import AlertStore
from monitor.state.decisions import DecisionAggregator
from monitor.state.scored import ScoredStore, pending_labels_topic
from monitor.users import User
from monitor.views.rule_whatif import enable_draft, try_draft
from monitor.whatif import evaluate, result_rows, whatif_figure
from pipeline.config import REPO_ROOT, load_settings
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.rules import RuleError, RuleSet, load_rules, parse_rules
from pipeline.worker.topics import changelog_topic_names
from tests.monitor.conftest import decision_record
from tests.monitor.logins import ANALYST, VIEWER, login_client, make_accounts

SHIPPED = REPO_ROOT / "pipeline" / "detection" / "rules.yaml"
NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
ALICE = User("alice", "analyst")
VICTOR = User("victor", "viewer")
BIG = """\
- id: WHATIF-big
  fraud_type: unauthorized_transactions
  action: block
  when: amount >= 500 and is_foreign == 1
  reason: "{amount:.0f} abroad"
"""


def entry(tx: str, *, hours_ago: float, amount: float, foreign: float = 1.0, decision: str = "allow",
          rule_hits: list[str] | None = None, now: datetime = NOW) -> dict[str, Any]:  # fmt: skip
    """A pending-labels entry as the worker writes it: the features and the decision."""
    base = now - timedelta(hours=hours_ago)
    record = decision_record(tx, decision=decision, amount=amount, base=base)
    record["rule_hits"] = rule_hits or []
    features = dict.fromkeys(FEATURE_NAMES, 0.0) | {"is_foreign": foreign, "amount": amount}
    return {"features": features, "decision": record, "at": base.timestamp(), "partition": 0}


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("", None, "the draft is empty"),
        ("- id: x\n  fraud_type: identity_theft\n  action: review\n  when: amount >\n  reason: r\n", 4,
         "cannot parse when"),
        ("id: x\nfraud_type: nope\naction: review\nwhen: amount > 1\nreason: r\n", 2,
         "fraud_type must be one of"),
        ("id: x\nfraud_type: identity_theft\naction: review\nwhen: amont > 1\nreason: r\n", 4,
         "unknown name 'amont'"),
        ("id: x\nfraud_type: identity_theft\naction: review\nwhen: amount > 1\nreason: '{nope}'\n", 5,
         "unknown name {nope}"),
        ("id: x\nfraud_type: identity_theft\naction: allow\nwhen: amount > 1\nreason: r\n", 3,
         "action must be"),
        ("id: x\n  when: [\n", 2, "not valid YAML"),
        ("id: MB-card-testing\nfraud_type: identity_theft\naction: review\nwhen: amount > 1\nreason: r\n", 1,
         "already in force"),
        ("- 1\n- 2\n", 1, "a draft is one rule"),
    ],
)  # fmt: skip
def test_a_draft_that_does_not_validate_is_refused_with_its_line_and_reason(text, line, reason) -> None:
    with pytest.raises(DraftError) as refused:
        parse_draft(text, load_rules(SHIPPED, FEATURE_NAMES))
    assert refused.value.line == line and reason in refused.value.reason


def test_with_rule_adds_the_draft_after_the_last_rule_and_keeps_the_file() -> None:
    text = SHIPPED.read_text()
    new = with_rule(text, parse_draft(BIG), who="alice", at=NOW)
    before, after = parse_rules(text, FEATURE_NAMES), parse_rules(new, FEATURE_NAMES)
    assert [r.id for r in after.rules] == [*(r.id for r in before.rules), "WHATIF-big"]
    assert after.rules[-1].when == "amount >= 500 and is_foreign == 1"
    assert "# enabled in the monitor by alice at 2026-11-29T10:00:00+00:00" in new
    assert new.replace(new[new.index("  # enabled") : new.index("\n# Block and allow")], "") == text
    with pytest.raises(RuleError, match="already in force"):
        with_rule(new, parse_draft(BIG), who="alice", at=NOW)


def test_the_store_keeps_the_newest_rows_within_its_days_and_labels_of_every_source() -> None:
    store = ScoredStore(max_rows=3, max_days=1)
    for i in range(5):
        assert store.add_pending(entry(f"t{i}", hours_ago=5 - i, amount=10)) == "added"
    assert len(store) == 3, "at most max_rows"
    assert store.add_pending(entry("t4", hours_ago=1, amount=10)) == "duplicate"
    assert store.add_pending(entry("old", hours_ago=30, amount=10)) == "too_old"
    assert store.add_label({"transaction_id": "t4", "is_fraud": True, "source": "chargeback"}) == "added"
    sample = store.sample(0)
    assert [r.transaction_id for r in sample.rows] == ["t2", "t3", "t4"] and sample.labels == {"t4": True}


def test_evaluate_counts_hits_precision_amounts_and_overlap_with_the_alerts() -> None:
    store = ScoredStore()
    store.add_pending(entry("a", hours_ago=3, amount=600))  # hit, new, labelled fraud
    store.add_pending(entry("b", hours_ago=2, amount=900, decision="block", rule_hits=["R"]))  # hit, alerted
    store.add_pending(entry("c", hours_ago=2, amount=700, decision="review"))  # hit, the model's alert
    store.add_pending(entry("d", hours_ago=1, amount=800, foreign=0))  # no hit
    store.add_pending(entry("e", hours_ago=1, amount=50))  # no hit, labelled fraud
    store.add_pending(entry("f", hours_ago=0.5, amount=550))  # hit, labelled legitimate
    for tx, fraud in (("a", True), ("e", True), ("f", False)):
        store.add_label({"transaction_id": tx, "is_fraud": fraud})
    draft = parse_draft(BIG)
    result = evaluate(draft.rule, store.sample(0), days=1)
    assert (result.evaluated, result.hits, result.labelled_hits, result.fraud_hits) == (6, 4, 2, 1)
    assert result.precision == 0.5 and result.labelled_frauds == 2 and result.hit_rate == pytest.approx(4 / 6)
    assert dict(result.amounts) == {"EUR": 600 + 900 + 700 + 550}
    assert (result.already_alerted, result.by_model, result.new_alerts) == (2, 1, 2)
    assert sum(result.new_per_hour) == 2 and sum(result.alerted_per_hour) == 2
    # the project's own rule code decides, row by row as the engine would
    rows = store.sample(0).rows
    single = RuleSet((draft.rule,))
    expected = [
        r.transaction_id
        for r in rows
        if single.evaluate({"amount": r.amount, "is_foreign": r.features[FEATURE_NAMES.index("is_foreign")]})
    ]
    assert expected == ["a", "b", "c", "f"]
    table = dict(result_rows(result))
    assert table["Labelled precision"] == "50.0% (1 frauds of 2 labelled hits)"
    assert table["Amount that would be blocked"] == "2,750.00 EUR"
    figure = whatif_figure(result)
    assert [t.name for t in figure.data] == ["New alerts", "Already alerted"]


def test_a_name_the_store_does_not_keep_reads_as_missing_and_is_named() -> None:
    store = ScoredStore()
    store.add_pending(entry("a", hours_ago=1, amount=600))
    text = BIG.replace("amount >= 500 and is_foreign == 1", "merchant_category == 'gambling' or amount > 100")
    result = evaluate(parse_draft(text).rule, store.sample(0), days=1)
    assert result.hits == 1 and result.unseen_names == ("merchant_category",)
    assert dict(result_rows(result))["Not kept, read as missing"] == "merchant_category"


def test_try_draft_refuses_bad_drafts_and_days_and_runs_good_ones(tmp_path: Path) -> None:
    rules = RulesFile(tmp_path / "rules.yaml")
    rules.path.write_text(SHIPPED.read_text())
    store = ScoredStore()
    store.add_pending(entry("a", hours_ago=3, amount=600))
    store.add_pending(entry("old", hours_ago=30, amount=600))
    tried = try_draft(store, rules, BIG.replace("amount >=", "amount >=>"), 1, NOW.timestamp())
    assert tried.feedback.text.startswith("Draft refused. Line 4: cannot parse when") and tried.figure is None
    assert try_draft(store, rules, BIG, 0, NOW.timestamp()).feedback.text.startswith("Draft refused. days")
    tried = try_draft(store, rules, BIG, 1, NOW.timestamp())
    assert tried.feedback.text.startswith("WHATIF-big: 1 hits in 1 transactions of the last 1 day(s)")
    assert try_draft(store, rules, BIG, 2, NOW.timestamp()).feedback.text.startswith("WHATIF-big: 2 hits")
    assert tried.figure is not None and dict(tried.rows)["Hits"] == "1"


def test_only_an_analyst_enables_a_rule_and_the_worker_loads_the_file(tmp_path: Path) -> None:
    rules = RulesFile(tmp_path / "rules.yaml")
    rules.path.write_text(SHIPPED.read_text())
    for user in (VICTOR, None):
        refused = enable_draft(rules, user, BIG, NOW)
        assert refused.text.startswith("Not allowed:") and rules.path.read_text() == SHIPPED.read_text()
    done = enable_draft(rules, ALICE, BIG, NOW)
    assert done.text.startswith("Enabled: WHATIF-big added to rules.yaml by alice")
    assert load_rules(rules.path, FEATURE_NAMES).rules[-1].id == "WHATIF-big"  # as RuleReloader loads it
    again = enable_draft(rules, ALICE, BIG, NOW)
    assert (
        again.text
        == "Draft refused. Line 1: rule id 'WHATIF-big' is already in force (" + str(rules.path) + ")"
    )
    assert list(tmp_path.iterdir()) == [rules.path], "no temporary file left"


_FORGED_ENABLE = {
    "output": "..whatif-enable-status.children...whatif-enable-status.style..",
    "outputs": [
        {"id": "whatif-enable-status", "property": "children"},
        {"id": "whatif-enable-status", "property": "style"},
    ],
    "inputs": [{"id": "whatif-enable", "property": "n_clicks", "value": 1}],
    "state": [{"id": "rule-draft", "property": "value", "value": BIG}],
    "changedPropIds": ["whatif-enable.n_clicks"],
}


def test_the_callback_route_refuses_a_viewer_and_enables_for_an_analyst(tmp_path: Path) -> None:
    rules = RulesFile(tmp_path / "rules.yaml")
    rules.path.write_text(SHIPPED.read_text())
    app = create_app(
        MonitorState(DecisionAggregator(60), AlertStore(50)),
        load_settings(),
        publish=lambda _label: None,
        accounts=make_accounts(),
        publish_list=lambda _key, _message: None,
        rules=rules,
    )
    viewer = app.server.test_client()
    assert login_client(viewer, *VIEWER).status_code == 302
    answer = viewer.post("/_dash-update-component", json=_FORGED_ENABLE)
    status = answer.get_json()["response"]["whatif-enable-status"]["children"]
    assert status == "Not allowed: victor is a viewer: only analysts may enable rules."
    assert rules.path.read_text() == SHIPPED.read_text()

    analyst = app.server.test_client()
    assert login_client(analyst, *ANALYST).status_code == 302
    answer = analyst.post("/_dash-update-component", json=_FORGED_ENABLE)
    assert answer.get_json()["response"]["whatif-enable-status"]["children"].startswith("Enabled: WHATIF-big")
    assert load_rules(rules.path, FEATURE_NAMES).rules[-1].id == "WHATIF-big"


def test_the_feed_reads_the_workers_pending_labels_changelog() -> None:
    settings = load_settings()
    assert pending_labels_topic(settings) == changelog_topic_names(settings)[-1]
    feed = KafkaFeed(settings, consumer_factory=lambda _config: None)  # type: ignore[arg-type,return-value]
    import orjson

    assert feed.process(feed.scored_topic, orjson.dumps(entry("a", hours_ago=1, amount=600))) == "added"
    assert feed.process(feed.scored_topic, None) == "deleted", "a tombstone deletes nothing here"
    label = {
        "transaction_id": "a",
        "card_token": "tok_4f9a2c1b7d3e",
        "is_fraud": True,
        "source": "chargeback",
    }
    assert feed.process(settings.topic_labels, orjson.dumps(label)) == "other_source"
    assert feed.state.scored.sample(0).labels == {"a": True} and len(feed.state.scored) == 1


def test_the_draft_example_is_a_valid_rule() -> None:
    assert parse_draft(DRAFT_EXAMPLE, load_rules(SHIPPED, FEATURE_NAMES)).rule.action == "review"


def test_a_rule_enabled_but_not_audited_is_reported_as_in_force(tmp_path: Path) -> None:
    from monitor.audit import Audit, AuditError

    def unreachable(event: object) -> None:
        raise AuditError("the audit topic cannot be reached")

    rules = Audit(unreachable).rules(RulesFile(tmp_path / "rules.yaml"))
    rules.path.write_text(SHIPPED.read_text())
    done = enable_draft(rules, ALICE, BIG, NOW)
    assert done.text.startswith("Enabled: WHATIF-big is in force in rules.yaml; the change was made but not")
    assert load_rules(rules.path, FEATURE_NAMES).rules[-1].id == "WHATIF-big"
