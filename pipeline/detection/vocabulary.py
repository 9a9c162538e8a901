"""The words every part of the system shares: the fraud types and the one timestamp parser."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

FraudType = Literal["unauthorized_transactions", "identity_theft", "malicious_behavior"]
FRAUD_TYPES: tuple[FraudType, ...] = ("unauthorized_transactions", "identity_theft", "malicious_behavior")
Features = dict[str, float]
"""A transaction's features by name."""

FRAUD_TYPE_NAMES: dict[str, str] = {
    "unauthorized_transactions": "Unauthorized Transactions",
    "identity_theft": "Identity Theft",
    "malicious_behavior": "Malicious Behavior",
}


def parse_timestamp(value: str) -> float:
    """Seconds since the epoch of an RFC 3339 date-time, including what Python's parser refuses:
    a lower-case ``t``/``z`` and a leap second (``23:59:60`` reads as the next second). Raises
    ValueError for anything else, a time without a UTC offset included (it names no instant)."""
    text = value.upper()
    leap = text[17:19] == "60" and text[16] == ":"
    if leap:
        text = text[:17] + "59" + text[19:]
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp has no UTC offset: {value[:40]!r}")
    return moment.timestamp() + (1.0 if leap else 0.0)
