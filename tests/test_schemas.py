"""Every JSON Schema in schemas/ is a valid draft 2020-12 schema whose examples validate."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pipeline.contracts.json_schemas import MESSAGE_KINDS, SCHEMAS_DIR, SchemaViolation, validator

SCHEMA_FILES = sorted(SCHEMAS_DIR.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def kind_of(path: Path) -> str:
    return path.name.split(".")[0]


def reference_validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    # Note: without the optional rfc3339-validator package, jsonschema's FormatChecker does not
    # check "date-time"; fastjsonschema (the pipeline's validator) does.
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_there_is_one_schema_per_message_kind() -> None:
    assert sorted(kind_of(path) for path in SCHEMA_FILES) == sorted(MESSAGE_KINDS)
    assert all(path.name.endswith(".v1.schema.json") for path in SCHEMA_FILES)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_is_valid_draft_2020_12(path: Path) -> None:
    schema = load(path)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_examples_validate_with_both_validators(path: Path) -> None:
    schema = load(path)
    examples = schema.get("examples")
    assert examples, f"{path.name} has no examples"
    for example in examples:
        reference_validator(schema).validate(example)
        validator(kind_of(path))(example)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_a_broken_example_is_refused_by_both_validators(path: Path) -> None:
    """Validation is not vacuous: dropping a required field or adding an unknown one fails."""
    schema = load(path)
    example = schema["examples"][0]
    for broken in (
        {k: v for k, v in example.items() if k != schema["required"][-1]},
        {**example, "unexpected_field": 1},
        {**example, "schema_version": 2},
    ):
        assert not reference_validator(schema).is_valid(broken)
        with pytest.raises(SchemaViolation):
            validator(kind_of(path))(copy.deepcopy(broken))


def test_schema_ids_are_unique_and_name_the_kind() -> None:
    ids = [load(path)["$id"] for path in SCHEMA_FILES]
    assert len(ids) == len(set(ids))
    for path, schema_id in zip(SCHEMA_FILES, ids, strict=True):
        assert schema_id == f"urn:fraud-detection:schema:{kind_of(path)}:v1"
