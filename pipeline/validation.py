"""Turning raw message bytes into a checked transaction or label, or a reason to dead-letter it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.schemas import SchemaViolation, validator

# A card number as people and systems write it: 13-19 digits in a row, or groups of four (Amex:
# 4-6-5) separated by one space or dash, and not part of a longer alphanumeric token or id.
_CARD_NUMBER = re.compile(
    rb"(?<![A-Za-z0-9_])"
    rb"(?:[0-9]{13,19}|[0-9]{4}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{1,7}|[0-9]{4}([ -])[0-9]{6}\2[0-9]{5})"
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
    spans = []
    for match in _CARD_NUMBER.finditer(payload):
        digits = re.sub(rb"[ -]", b"", match.group()).decode()
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            spans.append(match.span())
    return spans


def mask_card_numbers(payload: bytes) -> bytes:
    """The payload with every card number replaced by its last four digits behind asterisks."""
    out = bytearray(payload)
    for start, end in find_card_numbers(payload):
        digits = re.sub(rb"[ -]", b"", payload[start:end])
        out[start:end] = (b"*" * (end - start - 4) + digits[-4:])[: end - start]
    return bytes(out)


def parse_message(raw: bytes | None, kind: str, max_bytes: int) -> dict[str, Any] | Invalid:
    """Decode and validate one message of ``kind`` (transaction or label)."""
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
    if find_card_numbers(raw):
        return Invalid(
            "card_number_detected", "message contains what looks like a card number (PAN); refused"
        )
    try:
        validator(kind)(data)
    except SchemaViolation as exc:
        field = ".".join(str(part) for part in exc.path[1:]) or None
        return Invalid("schema_violation", exc.message, field)
    return data
