"""Building the messages the pipeline emits (decision, alert, dead letter): pure functions."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pipeline.contracts.json_schemas import latest_version
from pipeline.contracts.validation import Invalid, mask_card_numbers, redact_card_numbers
from pipeline.detection.engine import Decision
from pipeline.detection.explanations import explanation_of
from pipeline.detection.features import Features

_COPIED = (
    "transaction_id",
    "event_time",
    "card_token",
    "customer_id",
    "merchant_id",
    "terminal_id",
    "amount",
    "currency",
    "channel",
    "country",
)


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def decision_message(
    txn: Mapping[str, Any], decided: Decision, decided_at: str, processing_ms: float
) -> dict[str, Any]:
    message: dict[str, Any] = {"schema_version": 1}
    for key in _COPIED:
        message[key] = txn[key]
    message.update(
        decided_at=decided_at,
        decision=decided.action,
        score=decided.score,
        model_score=decided.model_score,
        fraud_type=decided.fraud_type,
        reasons=list(decided.reasons),
        rule_hits=list(decided.rule_hits),
        model_version=decided.model_version,
        processing_ms=round(max(processing_ms, 0.0), 3),
    )
    return message


def alert_message(decision: dict[str, Any], txn: Mapping[str, Any], features: Features) -> dict[str, Any]:
    """The alert for a review/block decision; its id is the transaction id. With the explanation
    the detector gave its features (``pipeline.detection.explanations``): why the model scored it
    so, as plain-language factors of feature values (never identifiers or card numbers)."""
    alert = {key: value for key, value in decision.items() if key not in ("model_score", "processing_ms")}
    alert["schema_version"] = latest_version("alert")  # 2: v1 and the optional explanation
    alert["alert_id"] = decision["transaction_id"]
    alert["device_id"] = txn.get("device_id")
    if not alert["reasons"]:
        alert["reasons"] = [f"Score {decision['score']:.2f} above the review threshold"]
    alert["features"] = {name: round(value, 4) for name, value in features.items()}
    explanation = explanation_of(features)
    if explanation is not None:
        alert["explanation"] = explanation.message()
    return alert


def dead_letter_message(
    invalid: Invalid,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    payload: bytes | None,
    component: str,
) -> dict[str, Any]:
    """The dead-letter envelope; card numbers in the payload are masked before it is stored."""
    body = redact_card_numbers(payload or b"")
    return {
        "schema_version": 1,
        "reason_code": invalid.code,
        "reason": invalid.reason[:2000],
        "field": invalid.field,
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "source_key_base64": base64.b64encode(mask_card_numbers(key)).decode() if key else None,
        "payload_base64": base64.b64encode(body).decode(),
        "failed_at": utc_now_iso(),
        "component": component,
    }
