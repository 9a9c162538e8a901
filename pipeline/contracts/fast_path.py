"""A fast acceptor for the common transaction, in front of the compiled JSON Schema (issue 17).

The compiled validator (fastjsonschema) costs about 9 µs a transaction, most of it in the schema's
``if``/``then`` (digital channels need a device and an IP): for every card-present transaction the
``if`` fails, and failing builds an exception with the whole schema in it. ``accepts`` checks the
same constraints directly and answers only "valid" or "ask the schema": a True is always a valid
transaction, a False sends the message to the compiled validator, which gives the verdict and the
reason. So what is accepted and refused, and why, is the schema's alone; the fast path only has to
be sound, which tests/pipeline/test_fast_path.py checks against the compiled validator on valid and
fuzzed messages.

It is built from the schema file itself (required and allowed fields, enums, and the compiled
validator's own regular expressions) and only when the schema's properties are still the ones it
was written for (``_KNOWN_PROPERTIES``); a schema changed in any other way turns it off (every
message then goes to the compiled validator) until this module is updated.

The card-number scan has a fast path of the same kind: ``may_hold_card_number``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.contracts.json_schemas import load_schema, validator

_ID = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"}
_COUNTRY = {"type": "string", "pattern": "^[A-Z]{2}$"}
_KNOWN_PROPERTIES: dict[str, dict[str, Any]] = {
    "schema_version": {"const": 1},
    "transaction_id": _ID,
    "event_time": {"type": "string", "format": "date-time"},
    "card_token": {"type": "string", "pattern": "^tok_[A-Za-z0-9]{8,64}$"},
    "customer_id": _ID,
    "merchant_id": _ID,
    "terminal_id": _ID,
    "merchant_category": {"type": "string", "pattern": "^[0-9]{4}$"},
    "amount": {"type": "number", "minimum": 0, "maximum": 1000000},
    "currency": {"enum": ...},
    "channel": {"enum": ...},
    "country": _COUNTRY,
    "card_country": _COUNTRY,
    "device_id": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
    "ip_address": {
        "anyOf": [
            {"type": "null"},
            {"type": "string", "maxLength": 45, "format": "ipv4"},
            {"type": "string", "maxLength": 45, "format": "ipv6"},
        ]
    },
    "account_age_days": {"type": "integer", "minimum": 0, "maximum": 36500},
    "hours_since_contact_change": {"type": ["number", "null"], "minimum": 0},
    "shipping_matches_billing": {"type": ["boolean", "null"]},
}
"""The transaction schema's properties this fast path implements (descriptions aside; ``...``: any
enum, read from the schema)."""
_KNOWN_CONDITIONS = [
    {
        "if": {"properties": {"channel": {"enum": ["ecommerce", "mobile_app"]}}},
        "then": {
            "required": ["device_id", "ip_address"],
            "properties": {"device_id": {"type": "string"}, "ip_address": {"type": "string"}},
        },
    }
]


def _implemented(schema: dict[str, Any]) -> bool:
    """Whether ``schema`` is still the transaction schema this module implements."""
    if schema.get("type") != "object" or schema.get("additionalProperties") is not False:
        return False
    if schema.get("allOf") != _KNOWN_CONDITIONS or set(schema) - {
        "$schema", "$id", "title", "description", "type", "additionalProperties", "required",
        "properties", "allOf", "examples",
    }:  # fmt: skip
        return False
    properties = schema["properties"]
    if set(properties) != set(_KNOWN_PROPERTIES):
        return False
    for name, known in _KNOWN_PROPERTIES.items():
        actual = {k: v for k, v in properties[name].items() if k != "description"}
        if known.get("enum") is ...:
            if set(actual) != {"enum"} or not all(isinstance(v, str) for v in actual["enum"]):
                return False
        elif actual != known:
            return False
    return True


def transaction_acceptor() -> Callable[[Any], bool] | None:
    """``accepts(data)``: True only for a valid transaction; None when the fast path is off (the
    schema changed, or the compiled validator keeps its regular expressions elsewhere)."""
    schema = load_schema("transaction")
    patterns = getattr(validator("transaction"), "__globals__", {}).get("REGEX_PATTERNS")
    if not _implemented(schema) or not isinstance(patterns, dict):
        return None
    try:
        identifier = patterns[_ID["pattern"]].search
        token = patterns[_KNOWN_PROPERTIES["card_token"]["pattern"]].search
        category = patterns[_KNOWN_PROPERTIES["merchant_category"]["pattern"]].search
        country = patterns[_COUNTRY["pattern"]].search
        date_time = patterns["date-time_re_pattern"].match
        ipv4 = patterns["ipv4_re_pattern"].match
    except KeyError:
        return None
    required = frozenset(schema["required"])
    allowed = frozenset(schema["properties"])
    currencies = frozenset(schema["properties"]["currency"]["enum"])
    channels = frozenset(schema["properties"]["channel"]["enum"])
    digital = frozenset(_KNOWN_CONDITIONS[0]["if"]["properties"]["channel"]["enum"])  # type: ignore[index]
    get = dict.get

    def accepts(data: Any) -> bool:
        if type(data) is not dict:
            return False
        keys = data.keys()
        if not (required <= keys and keys <= allowed):
            return False
        version, amount, age = data["schema_version"], data["amount"], data["account_age_days"]
        channel, device, ip = data["channel"], get(data, "device_id"), get(data, "ip_address")
        hours, shipping = get(data, "hours_since_contact_change"), get(data, "shipping_matches_billing")
        return (
            type(version) is int
            and version == 1
            and _is_str(data["transaction_id"]) and identifier(data["transaction_id"]) is not None
            and _is_str(data["event_time"]) and date_time(data["event_time"]) is not None
            and _is_str(data["card_token"]) and token(data["card_token"]) is not None
            and _is_str(data["customer_id"]) and identifier(data["customer_id"]) is not None
            and _is_str(data["merchant_id"]) and identifier(data["merchant_id"]) is not None
            and _is_str(data["terminal_id"]) and identifier(data["terminal_id"]) is not None
            and _is_str(data["merchant_category"]) and category(data["merchant_category"]) is not None
            and (type(amount) is float or type(amount) is int) and 0 <= amount <= 1000000
            and _is_str(data["currency"]) and data["currency"] in currencies
            and _is_str(channel) and channel in channels
            and _is_str(data["country"]) and country(data["country"]) is not None
            and _is_str(data["card_country"]) and country(data["card_country"]) is not None
            and type(age) is int and 0 <= age <= 36500
            and (device is None or (_is_str(device) and identifier(device) is not None))
            and (ip is None or (_is_str(ip) and len(ip) <= 45 and ipv4(ip) is not None))
            and (hours is None or ((type(hours) is float or type(hours) is int) and hours >= 0))
            and (shipping is None or type(shipping) is bool)
            and (channel not in digital or (_is_str(device) and _is_str(ip)))
        )  # fmt: skip

    return accepts


def _is_str(value: Any) -> bool:
    return type(value) is str


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_CARD_NUMBER_SHAPES = (
    b"0" * 13,
    b"0000 0000 0000 0",
    b"0000-0000-0000-0",
    b"0000 000000 00000",
    b"0000-000000-00000",
)
"""With every digit written as 0, what any card number the scan finds contains (13 digits in a row,
or the first digits of the 4-4-4-n and 4-6-5 groupings with one separator throughout)."""


def may_hold_card_number(payload: bytes) -> bool:
    """False when ``payload`` certainly holds nothing the card-number scan would match (most
    messages: about 0.5 µs, against about 5 µs for the scan); True when the scan must look."""
    digits = payload.translate(_DIGITS_AS_ZERO)
    return any(shape in digits for shape in _CARD_NUMBER_SHAPES)
