"""The fast paths of validation (pipeline/contracts/fast_path.py) against what they stand in front
of: the transaction acceptor never accepts what the compiled JSON Schema refuses, and accepts the
simulator's traffic; the card-number prefilter never hides a match of the scan."""

from __future__ import annotations

import copy
import re
from typing import Any

import fastjsonschema
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import Settings
from pipeline.contracts import fast_path
from pipeline.contracts.fast_path import may_hold_card_number, transaction_acceptor
from pipeline.contracts.json_schemas import SchemaViolation, load_schema, validator
from pipeline.contracts.validation import _CARD_NUMBER, Invalid, parse_message
from pipeline.tools.simulator.generator import TrafficGenerator
from tests.pipeline.factories import PROPERTY

SCHEMA = load_schema("transaction")
EXAMPLE = SCHEMA["examples"][0]
ACCEPTS = transaction_acceptor()


def schema_accepts(data: Any) -> bool:
    try:
        validator("transaction")(data)
    except SchemaViolation:
        return False
    return True


def simulated(count: int = 3000) -> list[dict[str, Any]]:
    generator = TrafficGenerator.from_settings(Settings(), rate=50.0, start=1_796_000_000.0, rhythm=False)
    return [item.transaction for item in generator.events(count=count)]


def test_the_fast_path_is_on_for_the_current_schema() -> None:
    assert ACCEPTS is not None, "schemas/transaction changed: update pipeline/contracts/fast_path.py"


def test_it_accepts_the_simulators_traffic_and_the_schemas_example() -> None:
    """Speed: the traffic the pipeline sees is accepted without the compiled schema."""
    assert ACCEPTS is not None
    traffic = simulated()
    assert {t["channel"] for t in traffic} >= {"card_present", "ecommerce", "mobile_app"}
    assert all(ACCEPTS(t) for t in traffic)
    assert ACCEPTS(EXAMPLE)


def test_a_changed_schema_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    changed = copy.deepcopy(SCHEMA)
    changed["properties"]["amount"]["maximum"] = 5000
    monkeypatch.setattr(fast_path, "load_schema", lambda kind: changed)
    assert transaction_acceptor() is None
    loose = copy.deepcopy(SCHEMA)
    loose["additionalProperties"] = True
    monkeypatch.setattr(fast_path, "load_schema", lambda kind: loose)
    assert transaction_acceptor() is None


# Values near the edges of each constraint, and of the wrong types.
EDGE_LIST: list[Any] = [
    None, True, False, 0, 1, -1, 1.0, 0.0, -0.0, 2, 36500, 36501, 1000000, 1000000.5, -0.01, 1e300,
    "", "x", "tok_", "tok_abcdefgh", "tok_abc", "tok_abcdefgh!", "5411", "541", "54111", "٥٤١١", "DE",
    "de", "DEU", "EUR", "eur", "ecommerce", "mobile_app", "card_present", "atm", "203.0.113.7",
    "203.0.113.256", "::1", "2001:db8::1", "1.2.3", "a" * 64, "a" * 65, "id with space", "id\n",
    "2026-11-29T10:15:00Z", "2026-11-29T10:15:00", "2026-02-30T10:15:00Z", "2026-11-29 10:15:00Z",
    "2026-11-29T10:15:00.123+00:00", "2026-11-29T24:00:00Z", "2016-12-31T23:59:60Z", [], {}, ["a"],
]  # fmt: skip
EDGE_VALUES = st.sampled_from(EDGE_LIST)
JSON_VALUES = (
    EDGE_VALUES
    | st.integers(-(2**63), 2**64 - 1)  # what JSON encoders write
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=70)
    | st.from_regex(r"[A-Za-z0-9_.:-]{0,66}", fullmatch=True)
)
FIELDS = st.sampled_from([*sorted(SCHEMA["properties"]), "extra", "Amount"])


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A valid transaction with a few fields changed, removed or added."""
    txn = dict(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(0, 3))):
        field = draw(FIELDS)
        if draw(st.booleans()) and field in txn:
            del txn[field]
        else:
            txn[field] = draw(JSON_VALUES)
    return txn


BASES = [EXAMPLE, *simulated(200)]


def test_every_edge_value_in_every_field_is_judged_as_the_schema_does() -> None:
    """Each field of a digital and a card-present transaction set to each edge value, or removed:
    accepted only if the schema accepts it; and what the schema accepts is accepted too, except
    what the fast path leaves to the schema (a float in an integer field, an IPv6 address)."""
    assert ACCEPTS is not None
    card_present = next(t for t in BASES if t["channel"] == "card_present")
    for base in (EXAMPLE, card_present):
        for field in [*SCHEMA["properties"], "extra"]:
            variants = [({k: v for k, v in base.items() if k != field}, None)]
            variants += [({**base, field: value}, value) for value in EDGE_LIST]
            for txn, value in variants:
                valid = schema_accepts(txn)
                if ACCEPTS(txn):
                    assert valid, txn
                left_to_schema = (
                    isinstance(value, float) and field in ("schema_version", "account_age_days")
                ) or (field == "ip_address" and ":" in str(value))
                if valid and not left_to_schema:
                    assert ACCEPTS(txn), txn


@PROPERTY
@given(near_valid())
def test_what_it_accepts_the_schema_accepts(txn: dict[str, Any]) -> None:
    assert ACCEPTS is not None
    if ACCEPTS(txn):
        assert schema_accepts(txn), txn


@PROPERTY
@given(near_valid())
def test_parse_message_gives_the_schemas_verdict_and_reason(txn: dict[str, Any]) -> None:
    """The whole parse, fast path and all, against the compiled schema alone."""
    raw = orjson.dumps(txn)
    result = parse_message(raw, "transaction", 64 * 1024)
    if isinstance(result, Invalid) and result.code == "card_number_detected":
        return
    try:
        fastjsonschema.compile(SCHEMA)(orjson.loads(raw))  # a fresh compile: nothing cached
    except fastjsonschema.JsonSchemaValueException as exc:
        assert isinstance(result, Invalid) and result.code == "schema_violation", txn
        assert result.reason == exc.message
    else:
        assert result == orjson.loads(raw)


# Bytes rich in digits, spaces and dashes, where card numbers and near-misses are common.
DIGIT_HEAVY = st.lists(
    st.sampled_from(
        [b"0", b"4", b"1", b"9", b" ", b"-", b"a", b"_", b'"', b".", b"4111", b"1111 ", b"1111-"]
    ),
    max_size=60,
).map(b"".join)


@PROPERTY
@given(st.one_of(DIGIT_HEAVY, st.binary(max_size=200)))
def test_the_prefilter_never_hides_a_match_of_the_scan(payload: bytes) -> None:
    if _CARD_NUMBER.search(payload):
        assert may_hold_card_number(payload), payload


@pytest.mark.parametrize(
    "payload",
    [
        b"4111111111111111",
        b"4111 1111 1111 1111",
        b"4111-1111-1111-1",
        b"3782 822463 10005",
        b"x 3782-822463-10005",
    ],
)
def test_the_prefilter_passes_every_shape_of_card_number(payload: bytes) -> None:
    assert re.search(_CARD_NUMBER, payload) and may_hold_card_number(payload)


def test_the_prefilter_passes_over_the_simulators_traffic() -> None:
    assert not any(may_hold_card_number(orjson.dumps(t)) for t in simulated(500))
