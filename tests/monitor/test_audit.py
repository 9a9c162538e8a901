"""The audit trail (issue 19, item 4): every verdict, list change and rule enabled in the monitor is
an audit event on the append-only ``<app id>-audit`` topic, read back into the "Audit trail"
section and the reports; a viewer changes nothing, whatever the browser sends (the server
refuses it, and leaves no event). Against the real broker: the changes and the events are real
Kafka messages, read back by the monitor's own feed."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from monitor.app import create_app
from monitor.audit import Audit, AuditPublisher, audit_event
from monitor.consumer import KafkaFeed
from monitor.feedback import LabelPublisher
from monitor.lists_feed import ListPublisher
from monitor.reports.data import collect_report
from monitor.reports.excel import build_excel
from monitor.reports.pdf import build_pdf
from monitor.rules_file import RulesFile
from monitor.state import MonitorState
from monitor.state.audit import AuditStore, audit_row
from monitor.state.shared_lists import SharedLists
from monitor.views.audit import filtered
from pipeline.config import REPO_ROOT
from tests.monitor.logins import ANALYST, VIEWER, login_client, make_accounts
from tests.monitor.test_lists_view import _FORGED_ADD, TOKEN
from tests.monitor.test_monitor_app import _verdict
from tests.monitor.test_reports import _pdf_text
from tests.monitor.test_rule_whatif import _FORGED_ENABLE
from tests.support import consume_until

SHIPPED = REPO_ROOT / "pipeline" / "detection" / "rules.yaml"
AT = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def test_events_are_schema_checked_kept_once_filtered_and_shown_without_whole_tokens() -> None:
    store = AuditStore(max_events=2)
    listed = audit_event(
        "list_change", who="alice", at=AT, subject=f"block:card:{TOKEN}", before=None,
        after={"action": "add", "list": "block", "entity_kind": "card", "value": TOKEN, "reason": "stolen"},
    )  # fmt: skip
    assert store.add(listed) == "added" and store.add(listed) == "duplicate"
    verdict = audit_event("verdict", who="bob", at=AT.replace(hour=9), subject="tx-1", before=None,
                          after={"is_fraud": True, "fraud_type": "identity_theft"})  # fmt: skip
    store.add(verdict)
    assert [e.kind for e in store.events()] == ["verdict", "list_change"], "newest first"
    assert [e.who for e in store.events(kind="list_change")] == ["alice"]
    assert [e.subject for e in store.events(who="BO")] == ["tx-1"]
    assert store.events(subject="block:card", since=AT.replace(hour=9)) == []
    row = audit_row(store.events(kind="list_change")[0])
    assert TOKEN not in " ".join(row) and "tok_4f9a…3e" in row[3] and "reason=stolen" in row[5]
    with pytest.raises(ValueError, match="audit_event"):
        store.add({**verdict, "kind": "delete_everything"})
    store.add(audit_event("rule_change", who="carol", at=AT, subject="R1", before=None, after={}))
    assert len(store) == 2, "bounded: the oldest goes"


def _audit_topic_config(settings) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    resource = ConfigResource(ConfigResource.Type.TOPIC, settings.topic_audit)
    config = admin.describe_configs([resource])[resource].result(timeout=30)
    return {name: entry.value for name, entry in config.items()}


def test_every_change_is_an_audit_event_and_a_viewer_changes_nothing(
    make_settings, make_decision, make_alert, tmp_path: Path
) -> None:
    settings = make_settings()
    state = MonitorState.from_settings(settings)
    state.alerts.add(make_alert(make_decision("u1", decision="review", fraud_type="identity_theft")))
    rules = RulesFile(tmp_path / "rules.yaml")
    rules.path.write_text(SHIPPED.read_text())
    labels, lists, audit = LabelPublisher(settings), ListPublisher(settings), AuditPublisher(settings)
    try:
        _changes(settings, state, rules, labels, lists, audit)
    finally:
        for publisher in (labels, lists, audit):
            publisher.close()


def _changes(settings, state, rules, labels, lists, audit) -> None:
    app = create_app(
        state,
        settings,
        accounts=make_accounts(),
        publish=labels.publish,
        lists=SharedLists(),
        publish_list=lists.publish,
        rules=rules,
        audit=Audit(audit.publish),
    )
    viewer, analyst = app.server.test_client(), app.server.test_client()
    assert login_client(viewer, *VIEWER).status_code == 302
    assert login_client(analyst, *ANALYST).status_code == 302

    def status(response, output: str) -> str:
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return response.get_json()["response"][output]["children"]

    # the viewer forges each change through the callback route: all refused on the server
    assert status(_verdict(viewer, "confirm", "u1"), "verdict-status").startswith("Not allowed: victor")
    assert status(viewer.post("/_dash-update-component", json=_FORGED_ADD), "list-status").startswith(
        "Not allowed"
    )
    assert status(
        viewer.post("/_dash-update-component", json=_FORGED_ENABLE), "whatif-enable-status"
    ).startswith("Not allowed")
    assert rules.path.read_text() == SHIPPED.read_text()
    # the analyst makes the same changes (a second verdict on u1 changes the first)
    assert status(_verdict(analyst, "confirm", "u1"), "verdict-status").startswith("Recorded: u1")
    assert status(_verdict(analyst, "legitimate", "u1"), "verdict-status").startswith("Recorded: u1")
    assert status(analyst.post("/_dash-update-component", json=_FORGED_ADD), "list-status").startswith(
        "Recorded: card"
    )
    assert status(
        analyst.post("/_dash-update-component", json=_FORGED_ENABLE), "whatif-enable-status"
    ).startswith("Enabled: WHATIF-big")

    with KafkaFeed(settings) as feed:
        assert feed.wait_until(lambda: len(feed.state.audit) >= 4, 30), len(feed.state.audit)
        events = feed.state.audit.events()
        assert [(e.kind, e.who) for e in reversed(events)] == [
            ("verdict", "alice"), ("verdict", "alice"), ("list_change", "alice"), ("rule_change", "alice"),
        ]  # fmt: skip
        first, second = [e for e in reversed(events) if e.kind == "verdict"]
        assert (first.before, first.after["is_fraud"]) == (None, True)
        assert (second.before["is_fraud"], second.after["is_fraud"]) == (True, False), "before and after"
        listed = next(e for e in events if e.kind == "list_change")
        assert listed.subject == f"block:card:{TOKEN}" and listed.after["reason"] == "forged"
        rule = next(e for e in events if e.kind == "rule_change")
        assert rule.subject == "WHATIF-big" and rule.after["rule"]["action"]
        assert [e.kind for e in filtered(feed.state.audit, "verdict", "ALI", "u1")] == ["verdict", "verdict"]
        assert filtered(feed.state.audit, "list_change", "victor", None) == []

        report = collect_report(feed.state, generated_by="alice")
        sheet = openpyxl.load_workbook(io.BytesIO(build_excel(report)))["Audit"]
        rows = list(sheet.iter_rows(values_only=True))
        assert rows[0][:4] == ("When (UTC)", "Who", "What", "Subject") and len(rows) == 5
        assert [r[2] for r in rows[1:]] == ["Rule change", "List change", "Verdict", "Verdict"]
        assert not any(TOKEN in str(cell) for r in rows for cell in r), "no whole card token in the report"
        # the PDF has the same changes, newest first, in the same plain form
        pdf = _pdf_text(build_pdf(report))
        audit_part = pdf[pdf.index("Audit trail (changes in the range") :]
        for row in (audit_row(e) for e in events):
            assert row[2] in audit_part and row[1] in audit_part
        assert audit_part.index("Rule change") < audit_part.index("List change") < audit_part.index("Verdict")
        assert "tok_" in audit_part and "is_fraud=True" in audit_part and "reason=forged" in audit_part
        assert "left out" not in audit_part and TOKEN not in pdf, "all four shown, no whole card token"

    labels = consume_until(settings, settings.topic_labels, lambda m: len(m) >= 2)
    assert [label["is_fraud"] for label in labels] == [True, False], "the viewer's verdict never went out"
    config = _audit_topic_config(settings)
    assert (config["retention.ms"], config["cleanup.policy"]) == ("-1", "delete"), "append-only, kept"
