"""Checking a message of the list-updates topic (key and value) into a ``ListUpdate``, or a reason
to refuse it; the lists themselves are pure (pipeline/detection/entity_lists.py)."""

from __future__ import annotations

from pipeline.contracts.validation import Invalid, find_card_numbers, parse_message, text_has_card_number
from pipeline.detection.entity_lists import ENTITY_KINDS, LIST_NAMES, ListUpdate, list_key

MAX_KEY_BYTES = 256


def _parse_key(key: bytes | None) -> tuple[str, str, str] | Invalid:
    if not key:
        return Invalid("schema_violation", "a list update needs a key list:entity_kind:value", "key")
    if len(key) > MAX_KEY_BYTES:
        return Invalid("too_large", f"key of {len(key)} bytes exceeds {MAX_KEY_BYTES}", "key")
    if find_card_numbers(key):
        return Invalid(
            "card_number_detected", "key contains what looks like a card number (PAN); refused", "key"
        )
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return Invalid("not_utf8", "key is not UTF-8 text", "key")
    if text_has_card_number(text):  # e.g. the digits of a card number inside a token
        return Invalid(
            "card_number_detected", "key contains what looks like a card number (PAN); refused", "key"
        )
    parts = text.split(":", 2)
    if len(parts) != 3 or parts[0] not in LIST_NAMES or parts[1] not in ENTITY_KINDS or not parts[2]:
        return Invalid(
            "schema_violation",
            f"key {text[:80]!r} is not <list>:<entity_kind>:<value> with list block|allow "
            "and entity_kind card|device|merchant",
            "key",
        )
    return parts[0], parts[1], parts[2]


def parse_list_update(key: bytes | None, value: bytes | None, max_bytes: int) -> ListUpdate | Invalid:
    """Check one message of the list-updates topic: its key, its value against
    ``list_update.v1`` and that both name the same entry. A null value is a tombstone (remove)."""
    parsed_key = _parse_key(key)
    if isinstance(parsed_key, Invalid):
        return parsed_key
    list_name, kind, entity = parsed_key
    if value is None:
        return ListUpdate(list_key(*parsed_key), list_name, kind, entity, "remove", None)  # type: ignore[arg-type]
    message = parse_message(value, "list_update", max_bytes)
    if isinstance(message, Invalid):
        return message
    named = (message["list"], message["entity_kind"], message["value"])
    if named != parsed_key:
        return Invalid(
            "schema_violation",
            f"key {list_key(*parsed_key)[:80]!r} does not match the message's {list_key(*named)[:80]!r}",
            "key",
        )
    return ListUpdate(list_key(*named), list_name, kind, entity, message["action"], message)  # type: ignore[arg-type]
