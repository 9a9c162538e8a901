"""The Confluent wire format, unwrapped and written without a registry; the schemas' registered text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.contracts.json_schemas import MESSAGE_KINDS, load_schema, validator
from pipeline.contracts.schema_registry import (
    DRAFT_7,
    RegistryError,
    SchemaIds,
    keywords_newer_than_draft_7,
    registered_text,
)
from pipeline.contracts.validation import Invalid
from pipeline.contracts.wire_format import Framed, header, is_framed, unwrap

VALID = [
    (b"\x00\x00\x00\x00\x01{}", Framed(1, b"{}")),
    (b"\x00\x00\x00\x01\x00" + b'{"a": 1}', Framed(256, b'{"a": 1}')),
    (b"\x00\xff\xff\xff\xff", Framed(4294967295, b"")),  # the largest id; an empty payload is the parser's
    (b"\x00\x00\x00\x00\x07\x00\x00", Framed(7, b"\x00\x00")),  # payload bytes are not looked at here
]
BROKEN = [b"\x00", b"\x00\x00", b"\x00\x00\x00\x00"]
PLAIN = [
    b'{"transaction_id": "t"}',
    b" {}",
    b"\n{}",
    b"[1]",
    b"null",
    b"",
    b"\x01\x00\x00\x00\x01{}",
    b"\xff\xfe",
]


@pytest.mark.parametrize(("raw", "framed"), VALID)
def test_wire_format_messages_give_their_schema_id_and_payload(raw: bytes, framed: Framed) -> None:
    assert is_framed(raw)
    assert unwrap(raw) == framed


@pytest.mark.parametrize("raw", BROKEN)
def test_a_header_cut_short_is_refused_with_the_reason(raw: bytes) -> None:
    assert is_framed(raw)
    refused = unwrap(raw)
    assert isinstance(refused, Invalid)
    assert refused.code == "bad_wire_format"
    assert f"{len(raw)} bytes" in refused.reason


@pytest.mark.parametrize("raw", [*PLAIN, None])
def test_plain_json_and_other_bytes_are_not_taken_for_the_wire_format(raw: bytes | None) -> None:
    assert not is_framed(raw)


@given(st.integers(0, 2**32 - 1), st.binary(max_size=64))
def test_header_and_unwrap_are_inverse(schema_id: int, payload: bytes) -> None:
    assert unwrap(header(schema_id) + payload) == Framed(schema_id, payload)


@pytest.mark.parametrize("kind", MESSAGE_KINDS)
def test_registered_text_is_the_schema_as_draft_7(kind: str) -> None:
    schema = load_schema(kind)
    assert keywords_newer_than_draft_7(schema) == set()
    registered = json.loads(registered_text(kind))
    assert registered["$schema"] == DRAFT_7
    assert {k: v for k, v in registered.items() if k != "$schema"} == {
        k: v for k, v in schema.items() if k != "$schema"
    }
    validator(kind)(schema["examples"][0])


def test_a_schema_with_keywords_newer_than_draft_7_is_not_registered() -> None:
    schema = {**load_schema("label"), "$defs": {"x": {"type": "string"}}}
    schema["properties"] = {**schema["properties"], "t": {"prefixItems": [{"const": "$defs"}]}}
    assert keywords_newer_than_draft_7(schema) == {"$defs", "prefixItems"}
    with pytest.raises(RegistryError, match=r"label uses keywords newer than draft 7: \$defs, prefixItems"):
        registered_text("label", schema)


def test_without_a_registry_every_schema_id_is_refused_and_none_is_asked() -> None:
    ids = SchemaIds(None)
    assert ids.cached(5)
    refused = ids.refusal(5, "transactions")
    assert refused is not None and refused.code == "unknown_schema_id"
    assert "FRAUD_SCHEMA_REGISTRY_URL" in refused.reason
    assert ids.lookups == 0
