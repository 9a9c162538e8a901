"""Pure text formatting shared by the page and the reports (no Dash, no Kafka)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from monitor.state.records import InvalidRecordError, record_time
from monitor.state.verdicts import Verdict
from pipeline.config import FRAUD_TYPE_NAMES


def shorten_token(token: Any) -> str:
    """'tok_4f9a2c1b7d3e' -> 'tok_4f9a…3e': enough to compare cards, too little to copy one."""
    if not isinstance(token, str):
        return ""
    head, body = ("tok_", token[4:]) if token.startswith("tok_") else ("", token)
    if len(body) <= 6:
        return token
    return f"{head}{body[:4]}…{body[-2:]}"


def format_time(value: Any) -> str:
    """An ISO-8601 timestamp as 'YYYY-MM-DD HH:MM:SS' in UTC ('' when unreadable)."""
    try:
        return record_time(value, "time").astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    except InvalidRecordError:
        return ""


def format_amount(amount: Any, currency: Any = "") -> str:
    """'1,234.50 EUR' ('' when the amount is not a number)."""
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return ""
    return f"{amount:,.2f} {currency if isinstance(currency, str) else ''}".strip()


def format_amounts(amounts: Mapping[str, float]) -> str:
    """Amounts per currency ('1,234.50 EUR · 9.00 USD'), '0' when empty."""
    return " · ".join(format_amount(a, c) for c, a in amounts.items()) or "0"


def fraud_type_name(code: Any) -> str:
    """Display name of a fraud type code ('' for None, the code itself when unknown)."""
    if not isinstance(code, str):
        return ""
    return FRAUD_TYPE_NAMES.get(code, code)


def verdict_short(verdict: Verdict | None) -> str:
    """'fraud · alice · 2026-11-28 09:01:20' for the queue ('' without a verdict)."""
    if verdict is None:
        return ""
    return f"{verdict.outcome} · {verdict.analyst} · {verdict.labelled_at:%Y-%m-%d %H:%M:%S}"


def verdict_text(verdict: Verdict | None) -> str:
    """The verdict in a sentence, for the detail panel."""
    if verdict is None:
        return "No verdict yet."
    what = (
        f"Confirmed fraud ({fraud_type_name(verdict.fraud_type)})"
        if verdict.is_fraud
        else "Marked legitimate"
    )
    return f"{what} by {verdict.analyst} at {verdict.labelled_at:%Y-%m-%d %H:%M:%S} UTC."
