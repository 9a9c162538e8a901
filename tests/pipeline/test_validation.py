"""parse_message and the card-number guard."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.contracts.json_schemas import load_schema
from pipeline.contracts.validation import (
    Invalid,
    find_card_numbers,
    luhn_valid,
    mask_card_numbers,
    parse_message,
    redact_card_numbers,
    text_has_card_number,
)
from pipeline.detection.features import event_seconds
from tests.pipeline.factories import PROPERTY, make_digital_txn, make_txn

LIMIT = 64 * 1024
EXAMPLE = load_schema("transaction")["examples"][0]
LABEL_EXAMPLE = load_schema("label")["examples"][0]


def parse(value: Any, kind: str = "transaction", limit: int = LIMIT) -> dict[str, Any] | Invalid:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return parse_message(raw, kind, limit)


def test_valid_examples_are_accepted() -> None:
    assert parse(EXAMPLE) == EXAMPLE
    assert parse(LABEL_EXAMPLE, "label") == LABEL_EXAMPLE
    digital = make_digital_txn()
    assert parse(digital) == digital


def test_card_present_with_null_device_and_ip_is_accepted() -> None:
    txn = make_txn(channel="card_present", device_id=None, ip_address=None)
    assert parse(txn) == txn
    del txn["device_id"], txn["ip_address"]
    assert parse(txn) == txn


@pytest.mark.parametrize("channel", ["ecommerce", "mobile_app"])
def test_digital_transaction_needs_a_device(channel: str) -> None:
    missing = make_digital_txn(channel=channel)
    del missing["device_id"]
    result = parse(missing)
    assert isinstance(result, Invalid)
    assert result.code == "schema_violation"
    assert "device_id" in result.reason
    null = parse(make_digital_txn(channel=channel, device_id=None))
    assert isinstance(null, Invalid) and null.code == "schema_violation"
    assert null.field == "device_id"


def test_null_message_is_not_json() -> None:
    assert parse_message(None, "transaction", LIMIT) == Invalid("not_json", "empty message (null value)")


def test_not_utf8() -> None:
    result = parse(b'{"a": "\xff\xfe"}')
    assert isinstance(result, Invalid)
    assert result.code == "not_utf8"


@pytest.mark.parametrize("raw", [b"not json", b"{", b"", b'{"a": 1,}', b"NaN"])
def test_not_json(raw: bytes) -> None:
    result = parse(raw)
    assert isinstance(result, Invalid)
    assert result.code == "not_json"
    assert result.reason.startswith("not JSON: ")


@pytest.mark.parametrize(
    ("raw", "type_name"), [(b"[1, 2]", "list"), (b'"tx"', "str"), (b"42", "int"), (b"null", "NoneType")]
)
def test_not_an_object(raw: bytes, type_name: str) -> None:
    assert parse(raw) == Invalid("not_an_object", f"expected a JSON object, got {type_name}")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "12.5"}, "amount"),
        ({"amount": -0.01}, "amount"),
        ({"currency": "XXX"}, "currency"),
        ({"card_token": "4f9a2c1b7d3e"}, "card_token"),
        ({"event_time": "yesterday"}, "event_time"),
        ({"channel": "fax"}, "channel"),
        ({"schema_version": 2}, "schema_version"),
        ({"account_age_days": 1.5}, "account_age_days"),
        ({"ip_address": "999.1.1.1"}, "ip_address"),
    ],
)
def test_schema_violation_names_the_field(change: dict[str, Any], field: str) -> None:
    result = parse({**EXAMPLE, **change})
    assert isinstance(result, Invalid)
    assert result.code == "schema_violation"
    assert result.field == field
    assert field in result.reason


def test_zero_amount_is_accepted_negative_is_not() -> None:
    # Card verifications and waived payments are real zero-amount transactions (issue 21).
    assert parse({**EXAMPLE, "amount": 0}) == {**EXAMPLE, "amount": 0}
    assert parse({**EXAMPLE, "amount": 0.0}) == {**EXAMPLE, "amount": 0.0}
    negative = parse({**EXAMPLE, "amount": -1})
    assert isinstance(negative, Invalid) and negative.code == "schema_violation"
    assert negative.field == "amount" and "bigger than or equal to 0" in negative.reason


def test_schema_violation_for_a_missing_and_an_extra_field() -> None:
    missing = dict(EXAMPLE)
    del missing["amount"]
    result = parse(missing)
    assert isinstance(result, Invalid) and result.code == "schema_violation"
    assert "amount" in result.reason
    extra = parse({**EXAMPLE, "pan_hint": "x"})
    assert isinstance(extra, Invalid) and extra.code == "schema_violation"


def test_too_large() -> None:
    raw = orjson.dumps(EXAMPLE)
    assert isinstance(parse_message(raw, "transaction", len(raw)), dict)
    result = parse_message(raw, "transaction", len(raw) - 1)
    assert result == Invalid("too_large", f"message of {len(raw)} bytes exceeds the limit of {len(raw) - 1}")


@pytest.mark.parametrize(
    "pan",
    ["4111111111111111", "4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "6011000990139424"],
)
def test_card_number_detected(pan: str) -> None:
    for value in ({**EXAMPLE, "comment": pan}, {**EXAMPLE, "customer_id": pan.replace(" ", "")}):
        result = parse(value)
        assert isinstance(result, Invalid)
        assert result.code == "card_number_detected"
        assert pan not in result.reason


def test_luhn_invalid_digit_runs_are_not_card_numbers() -> None:
    assert find_card_numbers(b'{"x": "4111111111111112"}') == []
    assert find_card_numbers(b"1234567890123") == []  # Luhn-invalid
    assert find_card_numbers(b"411111111111") == []  # 12 digits: too short
    assert find_card_numbers(b"41111111111111111111") == []  # 20 digits: too long


@pytest.mark.parametrize(
    ("payload", "spans"),
    [
        (b"4111111111111111", [(0, 16)]),  # at the very start
        (b'"4111111111111111"', [(1, 17)]),
        (b"x4111111111111111", []),  # part of an identifier
        (b"_4111 1111 1111 1111", []),
        (b"94111111111111111", []),  # 17 digits, Luhn-invalid: no card number starts inside it
        (b"id 4111-1111-1111-1111 ok", [(3, 22)]),
        (b"3782 822463 10005,", [(0, 17)]),  # Amex grouping
        (b"4111111111111111a", []),  # followed by a letter
    ],
)
def test_card_number_boundaries(payload: bytes, spans: list[tuple[int, int]]) -> None:
    assert find_card_numbers(payload) == spans


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4111111111111111", True),
        ("4012888888881881", True),
        ("5555555555554444", True),
        ("378282246310005", True),
        ("79927398713", True),
        ("0", True),
        ("4111111111111112", False),
        ("79927398710", False),
        ("1234567812345678", False),
    ],
)
def test_luhn_valid(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


def test_mask_card_numbers_keeps_last_four_and_length() -> None:
    payload = b'{"a": "4111111111111111", "b": "5500-0000-0000-0004", "c": "4111111111111112"}'
    masked = mask_card_numbers(payload)
    assert len(masked) == len(payload)
    assert masked == b'{"a": "************1111", "b": "***************0004", "c": "4111111111111112"}'
    assert find_card_numbers(masked) == []
    assert mask_card_numbers(b"nothing here") == b"nothing here"


@PROPERTY
@given(
    st.lists(st.sampled_from(["4111111111111111", "5555555555554444", "hello", " ", "12", "-"]), max_size=8)
)
def test_masking_removes_every_card_number(parts: list[str]) -> None:
    payload = ", ".join(parts).encode()
    masked = mask_card_numbers(payload)
    assert len(masked) == len(payload)
    assert find_card_numbers(masked) == []
    for start, end in find_card_numbers(payload):
        assert masked[end - 4 : end] == payload[end - 4 : end]
        assert set(masked[start : end - 4]) == {ord("*")}


@PROPERTY
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    for kind in ("transaction", "label"):
        result = parse_message(raw, kind, 200)
        assert isinstance(result, dict | Invalid)
        if isinstance(result, Invalid):
            assert result.code in {
                "not_utf8",
                "not_json",
                "not_an_object",
                "schema_violation",
                "too_large",
                "card_number_detected",
            }


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@PROPERTY
@given(field=st.sampled_from(sorted(EXAMPLE)), value=JSON_VALUES)
def test_any_value_in_any_field_gives_a_dict_or_invalid(field: str, value: Any) -> None:
    result = parse({**EXAMPLE, field: value})
    assert isinstance(result, dict | Invalid)


@pytest.mark.parametrize(
    ("event_time", "seconds"),
    [
        ("2026-11-29T10:15:00.123+00:00", 1_795_947_300.123),
        ("2026-11-29T10:15:00Z", 1_795_947_300),
        ("2026-11-29t10:15:00Z", 1_795_947_300),
        ("2026-11-29T12:15:00+02:00", 1_795_947_300),
        ("2026-11-29T10:15:00.123456789Z", 1_795_947_300.123),
        # RFC 3339 allows a lower-case "z"; the schema's date-time format accepts it ...
        ("2026-11-29T10:15:00z", 1_795_947_300),
        # ... and a leap second.
        ("2016-12-31T23:59:60Z", 1_483_228_800),
    ],
)
def test_an_accepted_event_time_can_be_read_by_the_pipeline(event_time: str, seconds: float) -> None:
    """Whatever parse_message accepts, the next stage reads with features.event_seconds();
    an accepted transaction must not fail there (it would be dead-lettered as a processing
    error by the merchant stage instead of as a schema violation by validate)."""
    result = parse({**EXAMPLE, "event_time": event_time})
    if isinstance(result, Invalid):
        assert result.code == "schema_violation"
        return
    assert event_seconds(result) == pytest.approx(seconds, abs=1.0)


def test_reason_for_not_json_does_not_echo_a_card_number() -> None:
    result = parse(b'{"pan": 4111111111111111')
    assert isinstance(result, Invalid)
    assert "4111111111111111" not in result.reason


def test_example_is_json_round_trippable() -> None:
    assert json.loads(orjson.dumps(EXAMPLE)) == EXAMPLE


def test_card_number_inside_the_card_token_is_refused() -> None:
    result = parse({**EXAMPLE, "card_token": "tok_4539148803436467"})
    assert isinstance(result, Invalid) and result.code == "card_number_detected"
    assert parse({**EXAMPLE, "card_token": "tok_4539148803436468"}) == {
        **EXAMPLE,
        "card_token": "tok_4539148803436468",
    }, "a Luhn-invalid digit run in a token is not a card number"


def test_card_number_behind_json_escapes_is_refused_and_redacted() -> None:
    raw = orjson.dumps({**EXAMPLE, "memo": "MEMO"}).replace(b'"MEMO"', b'"\\u0034\\u003539148803436467"')
    assert not find_card_numbers(raw), "the bytes alone do not show it"
    result = parse_message(raw, "transaction", LIMIT)
    assert isinstance(result, Invalid) and result.code == "card_number_detected"
    redacted = redact_card_numbers(raw)
    assert orjson.loads(redacted)["memo"] == "************6467"
    assert not find_card_numbers(redacted)


def test_redaction_masks_a_token_that_embeds_a_card_number() -> None:
    raw = orjson.dumps({**EXAMPLE, "card_token": "tok_4539148803436467"})
    redacted = orjson.loads(redact_card_numbers(raw))
    assert "4539148803436467" not in redacted["card_token"]
    assert redacted["transaction_id"] == EXAMPLE["transaction_id"], "the rest stays readable"
    assert redact_card_numbers(b"not json 4539148803436467") == b"not json ************6467"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tok_4539148803436467", True),
        ("4539 1488 0343 6467", True),
        ("call 4539-1488-0343-6467 back", True),
        ("tok_a1b2c3d4e5f6", False),
        ("tok_4539148803436468", False),  # Luhn-invalid
        ("order 12345", False),
    ],
)
def test_text_has_card_number(text: str, expected: bool) -> None:
    assert text_has_card_number(text) is expected
