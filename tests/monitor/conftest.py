"""Factories of schema-valid decision and alert records for the monitor tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

BASE_MINUTE = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)

DecisionFactory = Callable[..., dict[str, Any]]


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds")


def decision_record(
    transaction_id: str,
    *,
    minute: int = 0,
    second: float = 0.0,
    decision: str = "allow",
    fraud_type: str | None = None,
    amount: float = 10.0,
    currency: str = "EUR",
    score: float | None = None,
    base: datetime = BASE_MINUTE,
) -> dict[str, Any]:
    """A decision.v1 record at ``base + minute min + second s``."""
    event_time = base + timedelta(minutes=minute, seconds=second)
    if score is None:
        score = {"allow": 0.05, "review": 0.6, "block": 0.95}[decision]
    return {
        "schema_version": 1,
        "transaction_id": transaction_id,
        "event_time": _iso(event_time),
        "decided_at": _iso(event_time + timedelta(milliseconds=20)),
        "card_token": "tok_4f9a2c1b7d3e",
        "customer_id": "cust-000123",
        "merchant_id": "m-00042",
        "terminal_id": "t-00042-web",
        "amount": amount,
        "currency": currency,
        "channel": "ecommerce",
        "country": "DE",
        "decision": decision,
        "score": score,
        "model_score": score,
        "fraud_type": fraud_type,
        "reasons": ["test reason"] if decision != "allow" else [],
        "rule_hits": [],
        "model_version": "softmax-1@120",
        "processing_ms": 1.5,
    }


EXPLANATION: dict[str, Any] = {
    "method": "linear",
    "base": -2.6151,
    "factors": [
        {
            "feature": "amount",
            "name": "5.2× this card's 30-day mean amount",
            "value": 70.0,
            "typical": 13.4615,
            "contribution": 2.3104,
        },
        {
            "feature": "terminal_frauds_7d",
            "name": "terminal had 3 confirmed frauds in 7 days (30-day pace 1.4)",
            "value": 3.0,
            "typical": 1.4,
            "contribution": 1.2407,
        },
        {
            "feature": "is_new_device",
            "name": "first payment of this card from this device",
            "value": 1.0,
            "typical": None,
            "contribution": 0.4562,
        },
    ],
}
"""The explanation of an alert v2 (pipeline/detection/explanations.py builds them)."""


def alert_record(
    decision: dict[str, Any],
    *,
    features: dict[str, float] | None = None,
    explanation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The alert record of a flagged decision: v1, or v2 with ``explanation``."""
    alert = {k: v for k, v in decision.items() if k not in ("model_score", "processing_ms")}
    alert.update(
        alert_id=decision["transaction_id"],
        device_id=None,
        reasons=decision["reasons"] or ["test reason"],
        features=features or {"amount": float(decision["amount"])},
    )
    if explanation is not None:
        alert.update(schema_version=2, explanation=explanation)
    return alert


@pytest.fixture(scope="session")
def make_decision() -> DecisionFactory:
    """``make_decision(tx_id, minute=0, second=0, decision='allow', fraud_type=None, ...)``."""
    return decision_record


@pytest.fixture(scope="session")
def make_alert() -> Callable[..., dict[str, Any]]:
    """``make_alert(decision_record, explanation=None)``: the alert (v1, or v2 with an explanation)
    of a flagged decision."""
    return alert_record


@pytest.fixture(scope="session")
def base_minute() -> datetime:
    """The minute (UTC) that ``make_decision(minute=0)`` falls in."""
    return BASE_MINUTE
