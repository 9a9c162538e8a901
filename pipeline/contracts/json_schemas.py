"""The JSON Schemas in schemas/ (the single source of truth), compiled once into fast validators.

A kind of message may have several versions (``<kind>.v<N>.schema.json``): each is a minor version
of the one before (every message valid under it stays valid, so readers of the new version read
the old messages; tests/test_schemas.py checks it). The pipeline validates, writes and registers
the latest version of each kind; the older files stay for the consumers that still read them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
"""schemas/ at the repository's (or the image's) root, beside the pipeline package."""
MESSAGE_KINDS = (
    "transaction",
    "decision",
    "alert",
    "label",
    "dead_letter",
    "list_update",
    "model_health",
    "audit_event",
)
SchemaViolation = fastjsonschema.JsonSchemaValueException


@cache
def versions(kind: str) -> tuple[int, ...]:
    """The versions of ``kind``'s schema in schemas/, oldest first."""
    pattern = re.compile(rf"{re.escape(kind)}\.v([0-9]+)\.schema\.json")
    found = (pattern.fullmatch(path.name) for path in SCHEMAS_DIR.glob(f"{kind}.v*.schema.json"))
    return tuple(sorted(int(match.group(1)) for match in found if match))


def latest_version(kind: str) -> int:
    """The version the pipeline writes and registers."""
    return versions(kind)[-1]


def schema_path(kind: str, version: int | None = None) -> Path:
    """The file of ``kind``'s schema ``version`` (None: the latest)."""
    return SCHEMAS_DIR / f"{kind}.v{version or latest_version(kind)}.schema.json"


@cache
def load_schema(kind: str, version: int | None = None) -> dict[str, Any]:
    """``kind``'s schema ``version`` (None: the latest)."""
    return json.loads(schema_path(kind, version).read_text(encoding="utf-8"))


@cache
def validator(kind: str, version: int | None = None) -> Callable[[Any], Any]:
    """A compiled validator of ``kind``'s schema ``version`` (None: the latest): call it with a
    decoded message; raises SchemaViolation."""
    return fastjsonschema.compile(load_schema(kind, version))
