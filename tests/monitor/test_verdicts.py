"""Analyst feedback offline: the label message, who may send it, the verdict store, the publisher edge
with a fake producer, the detail panel, users and the hash-password helper."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import orjson
import pytest
from confluent_kafka import KafkaError
from dash import dcc, no_update
from dash.exceptions import PreventUpdate

from monitor.feedback import FeedbackError, LabelPublisher
from monitor.state import MonitorState
from monitor.state.alerts import AlertStore
from monitor.state.decisions import DecisionAggregator
from monitor.state.verdicts import VerdictStore
from monitor.users import Accounts, User, demo_notice, hash_password
from monitor.verdict_labels import InvalidVerdictError, VerdictNotAllowedError, build_label
from monitor.views.alert_detail import (
    EXPLANATION_ID,
    alert_detail,
    explanation_section,
    give_verdict,
    update_detail,
)
from monitor.views.alert_queue import clicked_alert
from monitor.views.page import ViewControls, sync_url, type_from_search
from monitor.views.shared import ERROR_STYLE, OK_STYLE
from pipeline.config import REPO_ROOT, ConfigurationError, load_settings
from tests.monitor.conftest import EXPLANATION

NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
ALICE = User("alice", "analyst")
VICTOR = User("victor", "viewer")


@pytest.fixture(scope="module")
def label_schema() -> jsonschema.Validator:
    schema = json.loads((REPO_ROOT / "schemas" / "label.v1.schema.json").read_text("utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture
def alert(make_decision, make_alert) -> dict[str, Any]:
    return make_alert(make_decision("tx-0042", decision="block", fraud_type="identity_theft"))


@pytest.fixture
def state(alert, make_decision, make_alert) -> MonitorState:
    st = MonitorState(DecisionAggregator(60), AlertStore(50))
    st.alerts.add(alert)
    other = make_decision("tx-0041", second=-30, decision="review", fraud_type="unauthorized_transactions")
    st.alerts.add(make_alert(other))
    stranger = make_alert(make_decision("tx-0099", decision="review", fraud_type="malicious_behavior"))
    stranger["card_token"] = "tok_ffff0000aaaa"
    st.alerts.add(stranger)
    return st


# --- the label message ---------------------------------------------------------------------------
def test_confirmed_fraud_is_a_valid_analyst_label(alert, label_schema) -> None:
    label = build_label(
        alert, is_fraud=True, fraud_type="identity_theft", user=ALICE, now=NOW, comment=" seen "
    )
    label_schema.validate(label)
    assert label == {
        "schema_version": 1,
        "transaction_id": "tx-0042",
        "card_token": "tok_4f9a2c1b7d3e",
        "is_fraud": True,
        "fraud_type": "identity_theft",
        "source": "analyst",
        "analyst": "alice",
        "comment": "seen",
        "labelled_at": "2026-11-28T09:30:00.000+00:00",
    }


def test_legitimate_is_a_valid_label_without_a_fraud_type(alert, label_schema) -> None:
    label = build_label(alert, is_fraud=False, fraud_type="identity_theft", user=ALICE, now=NOW)
    label_schema.validate(label)
    assert (label["is_fraud"], label["fraud_type"], label["comment"]) == (False, None, None)


@pytest.mark.parametrize("user", [None, VICTOR])
def test_only_analysts_may_build_a_label(alert, user) -> None:
    with pytest.raises(VerdictNotAllowedError):
        build_label(alert, is_fraud=True, fraud_type="identity_theft", user=user, now=NOW)


def test_invalid_verdicts_are_refused(alert) -> None:
    with pytest.raises(InvalidVerdictError, match="fraud type"):
        build_label(alert, is_fraud=True, fraud_type=None, user=ALICE, now=NOW)
    with pytest.raises(InvalidVerdictError, match="longer than"):
        build_label(alert, is_fraud=False, fraud_type=None, user=ALICE, now=NOW, comment="x" * 2001)
    with pytest.raises(InvalidVerdictError, match="not a valid label"):
        build_label(
            {**alert, "card_token": "4111111111111111"}, is_fraud=False, fraud_type=None, user=ALICE, now=NOW
        )
    with pytest.raises(InvalidVerdictError, match="timezone"):
        build_label(alert, is_fraud=False, fraud_type=None, user=ALICE, now=NOW.replace(tzinfo=None))


# --- the verdict store ----------------------------------------------------------------------------
def _label(**changes: Any) -> dict[str, Any]:
    alert = {"transaction_id": "tx-1", "card_token": "tok_4f9a2c1b7d3e"}
    label = build_label(alert, is_fraud=True, fraud_type="identity_theft", user=ALICE, now=NOW)
    label.update(changes)
    return label


def test_verdict_store_keeps_the_latest_analyst_verdict() -> None:
    store = VerdictStore(max_verdicts=2)
    assert store.add(_label()) == "added"
    assert store.add(_label()) == "duplicate"
    assert store.add(_label(source="chargeback", analyst=None)) == "other_source"
    earlier = (NOW - timedelta(minutes=1)).isoformat()
    assert store.add(_label(is_fraud=False, fraud_type=None, labelled_at=earlier)) == "too_old"
    later = (NOW + timedelta(minutes=1)).isoformat()
    assert store.add(_label(is_fraud=False, fraud_type=None, analyst="bob", labelled_at=later)) == "added"
    verdict = store.get("tx-1")
    assert (verdict.outcome, verdict.analyst, verdict.fraud_type) == ("legitimate", "bob", None)
    assert store.add(_label(transaction_id="tx-2")) == "added"
    assert store.add(_label(transaction_id="tx-3")) == "added"
    assert store.get("tx-1") is None, "the oldest verdict made room"
    assert sorted(store.snapshot()) == ["tx-2", "tx-3"]
    assert store.version == 4


# --- giving a verdict (the callback body) ----------------------------------------------------------
def test_give_verdict_publishes_and_records(state, label_schema) -> None:
    sent: list[dict[str, Any]] = []
    feedback = give_verdict(state, sent.append, ALICE, "tx-0042", "confirm", "Malicious Behavior", "bot", NOW)
    assert feedback == ("Recorded: tx-0042 confirmed as fraud (Malicious Behavior) by alice.", OK_STYLE)
    [label] = sent
    label_schema.validate(label)
    assert (label["fraud_type"], label["comment"], label["analyst"]) == ("malicious_behavior", "bot", "alice")
    assert state.verdicts.get("tx-0042").fraud_type == "malicious_behavior"


def test_viewer_verdict_is_refused_server_side(state) -> None:
    sent: list[dict[str, Any]] = []
    feedback = give_verdict(state, sent.append, VICTOR, "tx-0042", "legitimate", None, None, NOW)
    assert feedback.style == ERROR_STYLE
    assert feedback.text == "Not allowed: victor is a viewer: only analysts may give verdicts."
    feedback = give_verdict(state, sent.append, None, "tx-0042", "legitimate", None, None, NOW)
    assert feedback.text == "Not allowed: log in to give verdicts."
    assert sent == [] and len(state.verdicts) == 0


def test_a_failed_delivery_is_shown_and_not_recorded(state) -> None:
    def broken(_label: Any) -> None:
        raise FeedbackError("the verdict was not acknowledged by Kafka within 10 s")

    feedback = give_verdict(state, broken, ALICE, "tx-0042", "confirm", "Identity Theft", None, NOW)
    assert feedback == ("Not recorded: the verdict was not acknowledged by Kafka within 10 s", ERROR_STYLE)
    assert state.verdicts.get("tx-0042") is None


def test_give_verdict_needs_a_kept_alert(state) -> None:
    assert (
        give_verdict(state, print, ALICE, None, "confirm", "Identity Theft").text == "Choose an alert first."
    )
    assert "no longer kept" in give_verdict(state, print, ALICE, "tx-gone", "confirm", "Identity Theft").text


# --- the detail panel -------------------------------------------------------------------------------
def _texts(component: Any) -> list[str]:
    if isinstance(component, str):
        return [component]
    if isinstance(component, list | tuple):
        return [t for c in component for t in _texts(c)]
    children = getattr(component, "children", None)
    return _texts(children) if children is not None else []


def test_detail_shows_fields_reasons_features_card_alerts_and_verdict(state) -> None:
    view = update_detail(state, ALICE, "tx-0042", None, selection_changed=True)
    text = " | ".join(_texts(view.children))
    for needle in (
        "Alert tx-0042",
        "No verdict yet.",
        "tok_4f9a…3e",
        "cust-000123",
        "m-00042",
        "t-00042-web",
    ):
        assert needle in text
    assert "test reason" in text and "amount" in text and "10" in text  # reasons and features
    assert "tx-0041" in text, "the card's other alert"
    assert "tx-0099" not in text, "another card's alert"
    assert "tok_4f9a2c1b7d3e" not in text
    assert (view.confirm_disabled, view.legitimate_disabled) == (False, False)
    assert view.verdict_type == "Identity Theft", "the alert's own type is preselected"
    with pytest.raises(PreventUpdate):
        update_detail(state, ALICE, "tx-0042", view.key, selection_changed=False)
    give_verdict(state, lambda _l: None, ALICE, "tx-0042", "confirm", "Identity Theft", None, NOW)
    again = update_detail(state, ALICE, "tx-0042", view.key, selection_changed=False)
    assert "Confirmed fraud (Identity Theft) by alice at 2026-11-28 09:30:00 UTC." in _texts(again.children)
    assert again.verdict_type is no_update


def test_detail_shows_the_factors_of_an_alert_v2_as_bars(make_decision, make_alert) -> None:
    v2 = make_alert(make_decision("tx-v2", decision="block", amount=70), explanation=EXPLANATION)
    section = explanation_section(v2)
    heading, graph = section.children
    assert section.id == EXPLANATION_ID and _texts(heading) == ["Why the model scored it"]
    assert isinstance(graph, dcc.Graph)
    assert list(graph.figure.data[0].x) == [f["contribution"] for f in EXPLANATION["factors"]]
    assert graph.figure.data[0].y[0] == "5.2× this card's 30-day mean amount"
    v1 = explanation_section(make_alert(make_decision("tx-v1", decision="review")))
    assert v1.id == EXPLANATION_ID and "No explanation" in _texts(v1)[1]
    children = alert_detail(v2, "tx-v2", None, [], {})
    assert any(getattr(c, "id", None) == EXPLANATION_ID for c in children), "shown in the detail"


def test_detail_buttons_are_off_for_viewers_and_without_an_alert(state) -> None:
    assert update_detail(state, VICTOR, "tx-0042", None, True).confirm_disabled is True
    nothing = update_detail(state, ALICE, None, None, False)
    assert (nothing.confirm_disabled, _texts(nothing.children)) == (True, ["No alert selected."])
    gone = update_detail(state, ALICE, "tx-gone", None, True)
    assert gone.confirm_disabled and "no longer kept" in _texts(gone.children)[0]


def test_clicked_alert() -> None:
    assert clicked_alert({"type": "alert-row", "index": "tx-1"}, 1) == "tx-1"
    for triggered, clicks in (({"type": "alert-row", "index": "tx-1"}, 0), (None, 1), ("refresh", 3)):
        with pytest.raises(PreventUpdate):
            clicked_alert(triggered, clicks)


def test_url_and_dropdown_stay_in_step() -> None:
    assert type_from_search("?type=Identity+Theft") == "Identity Theft"
    assert type_from_search("?type=Phishing") is None
    assert sync_url("?type=Identity+Theft", ViewControls("Unauthorized Transactions"), True) == (
        no_update,
        "Identity Theft",
        no_update,
        no_update,
        no_update,
    )
    assert sync_url("", ViewControls("Malicious Behavior"), False) == (
        "?type=Malicious+Behavior",
        no_update,
        no_update,
        no_update,
        no_update,
    )
    for search, chosen, url_changed in (
        ("", "Unauthorized Transactions", True),
        ("?type=X", "Identity Theft", True),
    ):
        with pytest.raises(PreventUpdate):
            sync_url(search, ViewControls(chosen), url_changed)


# --- the publisher edge with a fake producer ------------------------------------------------------------
class FakeProducer:
    def __init__(self, config: dict[str, Any], error: KafkaError | None = None, deliver: bool = True) -> None:
        self.config = config
        self.error = error
        self.deliver = deliver
        self.sent: list[tuple[str, bytes, bytes]] = []
        self._pending: list[Any] = []

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any) -> None:
        self.sent.append((topic, value, key))
        self._pending.append(on_delivery)

    def flush(self, timeout: float) -> int:
        if not self.deliver:
            return len(self._pending)
        for callback in self._pending:
            callback(self.error, None)
        self._pending.clear()
        return 0


def _publisher(**fake: Any) -> tuple[LabelPublisher, list[FakeProducer]]:
    made: list[FakeProducer] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(config, **fake))
        return made[-1]

    return LabelPublisher(load_settings(topic_labels="lab-t", app_id="unit"), producer_factory=factory), made


def test_publisher_keys_by_card_and_checks_delivery() -> None:
    publisher, made = _publisher()
    label = _label()
    publisher.publish(label)
    publisher.publish(label)
    [producer] = made
    assert producer.sent == [("lab-t", orjson.dumps(label), b"tok_4f9a2c1b7d3e")] * 2
    assert producer.config["acks"] == "all" and producer.config["enable.idempotence"] is True
    assert producer.config["message.timeout.ms"] == 10_000


def test_publisher_reports_refusals_and_timeouts() -> None:
    publisher, _ = _publisher(error=KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    with pytest.raises(FeedbackError, match="Kafka refused the verdict"):
        publisher.publish(_label())
    publisher, _ = _publisher(deliver=False)
    with pytest.raises(FeedbackError, match="not acknowledged"):
        publisher.publish(_label())
    with pytest.raises(FeedbackError, match="card token"):
        publisher.publish({"transaction_id": "tx-1"})


def test_publisher_without_a_broker_fails_in_time() -> None:
    settings = load_settings(kafka_bootstrap_servers="127.0.0.1:9", topic_labels="lab-t")
    publisher = LabelPublisher(settings, timeout=1.0)
    with pytest.raises(FeedbackError, match="Kafka"):
        publisher.publish(_label())


# --- users -----------------------------------------------------------------------------------------------
def test_users_from_settings_and_password_checks() -> None:
    users = {
        "alice": {"password_hash": hash_password("s3cret"), "role": "analyst"},
        "victor": {"password_hash": hash_password("v1ew"), "role": "viewer"},
    }
    accounts = Accounts.from_settings(load_settings(monitor_users=json.dumps(users)))
    assert not accounts.demo
    assert accounts.authenticate("alice", "s3cret") == ALICE
    assert accounts.authenticate("victor", "v1ew") == VICTOR
    assert accounts.authenticate("alice", "wrong") is None
    assert accounts.authenticate("alice", "") is None
    assert accounts.authenticate("nobody", "s3cret") is None
    assert accounts.names == ["alice", "victor"]


def test_demo_logins_when_no_users_are_configured() -> None:
    accounts = Accounts.from_settings(load_settings())
    assert accounts.demo
    assert accounts.authenticate("analyst", "analyst") == User("analyst", "analyst")
    assert accounts.authenticate("viewer", "viewer") == User("viewer", "viewer")
    assert "for the local demo only" in demo_notice()


@pytest.mark.parametrize(
    ("users", "problem"),
    [
        ("not json", "not valid JSON"),
        ("{}", "non-empty JSON object"),
        ('{"a": {"password_hash": "plain", "role": "analyst"}}', "not a werkzeug password hash"),
        ('{"a": {"password_hash": "scrypt:1$x$y", "role": "admin"}}', "viewer or analyst"),
        ('{"a": {"password": "x", "role": "viewer"}}', "password_hash and role"),
    ],
)
def test_invalid_monitor_users_stop_start_up(users: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        load_settings(monitor_users=users)


def test_hash_password_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "hash-password", "--user", "carol", "--role", "viewer"],
        input="pa55word\n",
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
    )
    entry = json.loads(result.stdout)
    accounts = Accounts.from_settings(load_settings(monitor_users=json.dumps(entry)))
    assert accounts.authenticate("carol", "pa55word") == User("carol", "viewer")
    assert "pa55word" not in result.stdout
