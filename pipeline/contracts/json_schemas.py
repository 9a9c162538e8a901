"""The JSON Schemas in schemas/ (the single source of truth), compiled once into fast validators."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
"""schemas/ at the repository's (or the image's) root, beside the pipeline package."""
MESSAGE_KINDS = ("transaction", "decision", "alert", "label", "dead_letter", "list_update")
SchemaViolation = fastjsonschema.JsonSchemaValueException


def schema_path(kind: str, version: int = 1) -> Path:
    return SCHEMAS_DIR / f"{kind}.v{version}.schema.json"


@cache
def load_schema(kind: str, version: int = 1) -> dict[str, Any]:
    return json.loads(schema_path(kind, version).read_text(encoding="utf-8"))


@cache
def validator(kind: str, version: int = 1) -> Callable[[Any], Any]:
    """A compiled validator: call it with a decoded message; raises SchemaViolation."""
    return fastjsonschema.compile(load_schema(kind, version))
