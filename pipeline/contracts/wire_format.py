"""The Confluent wire format that schema-registry serializers write: a magic byte 0, the schema id
as a 4-byte big-endian unsigned integer, then the payload (for JSON Schema: the JSON text).

Plain JSON never starts with the byte 0 (a JSON text starts with ``{``, ``[``, a letter, a digit,
a quote or white space), so one byte tells the two formats apart.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pipeline.contracts.validation import Invalid

MAGIC_BYTE = b"\x00"
HEADER_BYTES = 5
_HEADER = struct.Struct(">bI")


@dataclass(frozen=True)
class Framed:
    """A wire-format message: the schema id its producer named and the payload after the header."""

    schema_id: int
    payload: bytes


def is_framed(raw: bytes | None) -> bool:
    """Whether ``raw`` is in the wire format (starts with the magic byte)."""
    return raw is not None and raw[:1] == MAGIC_BYTE


def unwrap(raw: bytes) -> Framed | Invalid:
    """The schema id and payload of a message that starts with the magic byte."""
    if len(raw) < HEADER_BYTES:
        return Invalid(
            "bad_wire_format",
            f"wire-format message of {len(raw)} bytes: shorter than its {HEADER_BYTES}-byte header",
        )
    _, schema_id = _HEADER.unpack_from(raw)
    return Framed(schema_id, raw[HEADER_BYTES:])


def header(schema_id: int) -> bytes:
    """The 5 bytes to put before a payload written with schema ``schema_id``."""
    return _HEADER.pack(0, schema_id)
