"""The emitted messages validate against their schemas (the contracts of the output topics)."""

from __future__ import annotations

import base64
import textwrap
from typing import Any

import jsonschema
import orjson
import pytest

from pipeline.contracts.json_schemas import load_schema, validator
from pipeline.contracts.messages import alert_message, dead_letter_message, decision_message, utc_now_iso
from pipeline.contracts.validation import Invalid, contains_card_number
from pipeline.detection.engine import Decision, DetectionEngine
from pipeline.detection.explanations import ExplainedFeatures, explain
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.model import OnlineFraudModel
from pipeline.detection.rules import parse_rules
from tests.pipeline.factories import features_for, make_digital_txn, make_txn

RULES = textwrap.dedent(
    """\
    rules:
      - id: R-review
        fraud_type: identity_theft
        action: review
        when: amount >= 1000
        reason: "Amount {amount:.0f}"
      - id: R-block
        fraud_type: malicious_behavior
        action: block
        when: amount >= 5000
        reason: "Huge {amount:.0f}"
    """
)
AMOUNT_FOR = {"allow": 20.0, "review": 1500.0, "block": 6000.0}


def check(kind: str, message: dict[str, Any]) -> None:
    """Both the pipeline's compiled validator and the reference implementation accept it."""
    validator(kind)(message)
    jsonschema.Draft202012Validator(
        load_schema(kind), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(message)


def scored(decision: str, digital: bool = False) -> tuple[dict[str, Any], Decision, dict[str, float]]:
    eng = DetectionEngine(parse_rules(RULES, FEATURE_NAMES), OnlineFraudModel())
    txn = (make_digital_txn if digital else make_txn)(amount=AMOUNT_FOR[decision])
    features = features_for(txn)
    decided = eng.decide(txn, features)
    assert decided.action == decision
    return txn, decided, features


@pytest.mark.parametrize("decision", ["allow", "review", "block"])
@pytest.mark.parametrize("digital", [False, True])
def test_decision_message_validates(decision: str, digital: bool) -> None:
    txn, decided, _ = scored(decision, digital)
    message = decision_message(txn, decided, utc_now_iso(), 3.14159)
    check("decision", message)
    assert message["transaction_id"] == txn["transaction_id"]
    assert message["decision"] == decision
    assert message["score"] == decided.score
    assert message["fraud_type"] == decided.fraud_type
    assert message["reasons"] == list(decided.reasons)
    assert message["rule_hits"] == list(decided.rule_hits)
    assert message["processing_ms"] == 3.142


def test_negative_processing_time_is_clamped() -> None:
    txn, decided, _ = scored("allow")
    message = decision_message(txn, decided, utc_now_iso(), -5.0)
    assert message["processing_ms"] == 0.0
    check("decision", message)


@pytest.mark.parametrize("decision", ["review", "block"])
@pytest.mark.parametrize("digital", [False, True])
def test_alert_message_validates(decision: str, digital: bool) -> None:
    txn, decided, features = scored(decision, digital)
    decision_msg = decision_message(txn, decided, utc_now_iso(), 1.0)
    alert = alert_message(decision_msg, txn, features)
    check("alert", alert)
    assert alert["alert_id"] == alert["transaction_id"] == txn["transaction_id"]
    assert alert["device_id"] == txn["device_id"]
    assert "model_score" not in alert and "processing_ms" not in alert
    assert set(alert["features"]) == set(FEATURE_NAMES)
    assert alert["features"]["amount"] == AMOUNT_FOR[decision]
    assert alert["reasons"] == list(decided.reasons)


def test_an_alert_carries_the_explanation_its_features_carry() -> None:
    """An alert is written as version 2; with the detector's explanation (explain_alerts) it carries
    the factors, values of features only: the card's token appears where v1 had it, nowhere else."""
    txn, decided, features = scored("block")
    txn["card_token"] = "tok_4111111111111111x"  # a token that embeds a card number
    explanation = explain("linear", -2.0, {"amount": 1.5, "is_foreign": 0.7, "hour_sin": 0.2}, features)
    decision = decision_message(txn, decided, utc_now_iso(), 1.0)
    plain = alert_message(decision, txn, features)
    alert = alert_message(decision, txn, ExplainedFeatures(features, explanation))
    check("alert", alert)
    check("alert", plain)
    assert alert["schema_version"] == plain["schema_version"] == 2
    assert "explanation" not in plain
    assert alert["explanation"] == explanation.message()
    assert [f["feature"] for f in alert["explanation"]["factors"]] == ["amount", "is_foreign", "time_of_day"]
    assert alert["features"] == plain["features"]
    del alert["card_token"]
    assert not contains_card_number(orjson.dumps(alert), alert)
    assert "tok_" not in orjson.dumps(alert["explanation"]).decode()


def test_alert_without_reasons_gets_one() -> None:
    txn = make_txn()
    decided = Decision("review", 0.61, 0.61, "identity_theft", (), (), "m@1")
    alert = alert_message(decision_message(txn, decided, utc_now_iso(), 1.0), txn, features_for(txn))
    assert alert["reasons"] == ["Score 0.61 above the review threshold"]
    check("alert", alert)


@pytest.mark.parametrize(
    "code",
    [
        "not_utf8",
        "not_json",
        "not_an_object",
        "schema_violation",
        "too_large",
        "card_number_detected",
        "processing_error",
    ],
)
def test_dead_letter_message_validates(code: str) -> None:
    message = dead_letter_message(
        Invalid(code, "x" * 5000, "amount" if code == "schema_violation" else None),
        topic="transactions",
        partition=3,
        offset=42,
        key=b"tok_abc12345",
        payload=b"\xff not json",
        component="validate",
    )
    check("dead_letter", message)
    assert message["reason_code"] == code
    assert len(message["reason"]) == 2000
    assert base64.b64decode(message["payload_base64"]) == b"\xff not json"
    assert base64.b64decode(message["source_key_base64"]) == b"tok_abc12345"


def test_dead_letter_masks_card_numbers_in_payload_and_key() -> None:
    message = dead_letter_message(
        Invalid("card_number_detected", "pan"),
        topic="transactions",
        partition=0,
        offset=0,
        key=b"4111111111111111",
        payload=b'{"pan": "4111 1111 1111 1111"}',
        component="validate",
    )
    check("dead_letter", message)
    assert base64.b64decode(message["payload_base64"]) == b'{"pan": "***************1111"}'
    assert base64.b64decode(message["source_key_base64"]) == b"************1111"


def test_dead_letter_of_a_null_message() -> None:
    message = dead_letter_message(
        Invalid("not_json", "empty message (null value)"),
        topic="labels",
        partition=1,
        offset=7,
        key=None,
        payload=None,
        component="learn",
    )
    check("dead_letter", message)
    assert message["source_key_base64"] is None
    assert message["payload_base64"] == ""
