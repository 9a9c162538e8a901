"""The contract's transaction schema one property at a time, for the columnar mapper: the whole
schema accepts a transaction exactly when each property's schema accepts its value and the one rule
across properties (``ACROSS``: a digital channel needs a device and an IP) holds, so a column can be
checked value by value, or all at once where a property is text of a pattern."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import fastjsonschema

from pipeline.contracts.json_schemas import load_schema
from pipeline.tools.backtest.encoded import joined_text

SCHEMA = load_schema("transaction")
_PROPERTY = {name: fastjsonschema.compile(sub) for name, sub in SCHEMA["properties"].items()}
ACROSS = fastjsonschema.compile({"allOf": SCHEMA["allOf"]})


def _patterns() -> dict[str, tuple[re.Pattern[str], bool]]:
    """For each property that is text of a pattern ``^...$`` (or null too): the pattern repeated
    over values joined by newlines, and whether null passes."""
    patterns = {}
    for name, sub in SCHEMA["properties"].items():
        pattern, kind = sub.get("pattern", ""), sub.get("type")
        plain = set(sub) <= {"type", "pattern", "description"} and kind in ("string", ["string", "null"])
        if plain and pattern.startswith("^") and pattern.endswith("$") and "\n" not in pattern:
            patterns[name] = (re.compile(f"(?:{pattern[1:-1]}\n)*"), kind != "string")
    return patterns


_PATTERNS = _patterns()


def all_match(name: str, values: list[Any]) -> bool:
    """Whether the schema of property ``name`` surely accepts every value: text of its pattern (and
    without a newline, which its ``$`` would let through at the end) joined and matched at once."""
    known = _PATTERNS.get(name)
    if known is None:
        return False
    pattern, null = known
    text = joined_text([value for value in values if value is not None] if null else values)
    return text is not None and pattern.fullmatch(text + "\n") is not None


def valid_for(name: str) -> Callable[[Any], bool]:
    check = _PROPERTY[name]

    def valid(value: Any) -> bool:
        try:
            check(value)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return valid
