"""Turning raw message bytes into a checked transaction or label, or a reason to dead-letter it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from pipeline.contracts.fast_path import may_hold_card_number, transaction_acceptor
from pipeline.contracts.json_schemas import SchemaViolation, validator
from pipeline.detection.vocabulary import parse_timestamp

# A card number as people and systems write it: 13-19 digits in a row, or groups of four (Amex:
# 4-6-5) separated by one space or dash, and not part of a longer alphanumeric token or id.
# It opens with its first digit, so the regex engine skips ahead to digits instead of trying a
# lookbehind at every byte: twice as fast on a transaction, with the same matches (the
# lookbehind then checks the byte before that digit).
_CARD_NUMBER = re.compile(
    rb"[0-9](?<![A-Za-z0-9_][0-9])"
    rb"(?:[0-9]{12,18}|[0-9]{3}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{1,7}|[0-9]{3}([ -])[0-9]{6}\2[0-9]{5})"
    rb"(?![A-Za-z0-9_])"
)


@dataclass(frozen=True)
class Invalid:
    """Why a message was refused: a machine-readable code, a sentence, the failing field."""

    code: str
    reason: str
    field: str | None = None


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def find_card_numbers(payload: bytes) -> list[tuple[int, int]]:
    """Spans of things that look like card numbers (13-19 digits passing the Luhn check)."""
    if not may_hold_card_number(payload):  # most messages: no run of digits long enough
        return []
    spans = []
    for match in _CARD_NUMBER.finditer(payload):
        digits = re.sub(rb"[ -]", b"", match.group()).decode()
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            spans.append(match.span())
    return spans


_DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")


def _embedded_card_number(value: str) -> bool:
    """A card number inside an identifier (``tok_4111111111111111``), where the word boundaries
    ``find_card_numbers`` needs are missing: a whole run of 13-19 digits passing the Luhn check."""
    return any(luhn_valid(run) for run in _DIGIT_RUN.findall(value))


def text_has_card_number(text: str) -> bool:
    """Whether free text or an identifier typed by a person holds a card number, grouped or not,
    or as the digits of a token (``tok_4111111111111111``)."""
    return bool(find_card_numbers(text.encode())) or _embedded_card_number(text)


def contains_card_number(raw: bytes, data: Any = None) -> bool:
    """Whether a message holds a card number: in its bytes, in its decoded text (JSON ``\\u``
    escapes hide digits from the bytes) or inside its ``card_token``."""
    if find_card_numbers(raw):
        return True
    if data is not None and b"\\u" in raw and find_card_numbers(orjson.dumps(data)):
        return True
    token = data.get("card_token") if isinstance(data, dict) else None
    return isinstance(token, str) and _embedded_card_number(token)


def redact_card_numbers(payload: bytes) -> bytes:
    """``payload`` safe to store: card numbers masked; a JSON text whose escapes spell a card
    number is stored decoded and masked; one whose card_token embeds a card number loses the token."""
    masked = mask_card_numbers(payload)
    try:
        data = orjson.loads(masked)
    except orjson.JSONDecodeError:
        return masked
    if b"\\u" in masked and find_card_numbers(orjson.dumps(data)):
        masked = mask_card_numbers(orjson.dumps(data))
        data = orjson.loads(masked)
    token = data.get("card_token") if isinstance(data, dict) else None
    if isinstance(token, str) and _embedded_card_number(token):
        data["card_token"] = "*" * len(token)
        masked = orjson.dumps(data)
    return masked


def mask_card_numbers(payload: bytes) -> bytes:
    """The payload with every card number replaced by its last four digits behind asterisks."""
    out = bytearray(payload)
    for start, end in find_card_numbers(payload):
        digits = re.sub(rb"[ -]", b"", payload[start:end])
        out[start:end] = (b"*" * (end - start - 4) + digits[-4:])[: end - start]
    return bytes(out)


@cache
def _fast_transaction_check() -> Callable[[Any], bool]:
    """True only for a valid transaction; False: ask the compiled schema (fast_path.py)."""
    return transaction_acceptor() or (lambda data: False)


@dataclass(frozen=True)
class EventTimeWindow:
    """How far from now a transaction's event time may lie: later than ``max_future_seconds``
    ahead (clock skew) or older than ``max_age_seconds`` is refused."""

    max_future_seconds: float = 24 * 3600
    max_age_seconds: float = 400 * 86400


def parse_message(
    raw: bytes | None,
    kind: str,
    max_bytes: int,
    *,
    event_time_window: EventTimeWindow | None = None,
    now: float | None = None,
) -> dict[str, Any] | Invalid:
    """Decode and validate one message of ``kind`` (transaction or label); with an
    ``event_time_window``, a transaction's event time must also lie within it."""
    if raw is None:
        return Invalid("not_json", "empty message (null value)")
    if len(raw) > max_bytes:
        return Invalid("too_large", f"message of {len(raw)} bytes exceeds the limit of {max_bytes}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return Invalid("not_utf8", "message is not UTF-8 text")
        return Invalid("not_json", f"not JSON: {exc}")
    if not isinstance(data, dict):
        return Invalid("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    if contains_card_number(raw, data):
        return Invalid(
            "card_number_detected", "message contains what looks like a card number (PAN); refused"
        )
    try:
        if kind != "transaction" or not _fast_transaction_check()(data):  # the schema's verdict
            validator(kind)(data)
    except SchemaViolation as exc:
        field = ".".join(str(part) for part in exc.path[1:]) or None
        return Invalid("schema_violation", exc.message, field)
    if event_time_window is not None and kind == "transaction":
        return _check_event_time(data, event_time_window, time.time() if now is None else now)
    return data


def _check_event_time(txn: dict[str, Any], window: EventTimeWindow, now: float) -> dict[str, Any] | Invalid:
    try:
        at = parse_timestamp(txn["event_time"])
    except ValueError as exc:
        return Invalid("schema_violation", f"event_time is not a valid date-time: {exc}", "event_time")
    if at > now + window.max_future_seconds:
        ahead = (at - now) / 3600
        return Invalid("out_of_range", f"event_time is {ahead:.1f} h in the future", "event_time")
    if at < now - window.max_age_seconds:
        age = (now - at) / 86400
        return Invalid("out_of_range", f"event_time is {age:.0f} days old", "event_time")
    return txn
