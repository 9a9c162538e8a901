"""Every JSON Schema in schemas/ is a valid draft 2020-12 schema whose examples validate, and each
new version of a kind is a minor one: every message of the version before stays valid."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pipeline.contracts.json_schemas import (
    MESSAGE_KINDS,
    SCHEMAS_DIR,
    SchemaViolation,
    latest_version,
    load_schema,
    validator,
    versions,
)

SCHEMA_FILES = sorted(SCHEMAS_DIR.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def kind_of(path: Path) -> str:
    return path.name.split(".")[0]


def version_of(path: Path) -> int:
    return int(path.name.split(".")[1].removeprefix("v"))


def reference_validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    # Note: without the optional rfc3339-validator package, jsonschema's FormatChecker does not
    # check "date-time"; fastjsonschema (the pipeline's validator) does.
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_there_is_one_schema_per_message_kind_in_versions_from_1() -> None:
    assert sorted({kind_of(path) for path in SCHEMA_FILES}) == sorted(MESSAGE_KINDS)
    assert all(path.name.endswith(f".v{version_of(path)}.schema.json") for path in SCHEMA_FILES)
    for kind in MESSAGE_KINDS:
        assert versions(kind) == tuple(range(1, len(versions(kind)) + 1)), kind
        assert load_schema(kind) == load_schema(kind, latest_version(kind)), "the latest by default"
    assert latest_version("alert") == 2
    assert latest_version("model_health") == 2


def assert_extends(old: Any, new: Any, where: str) -> None:
    """``new`` is ``old``, or ``old`` with optional properties added to its objects at any depth
    (an object's ``required`` unchanged; nothing else of it changed)."""
    if new == old:
        return
    assert isinstance(old, dict) and isinstance(new, dict) and set(new) == set(old), where
    for key, spec in old.items():
        if key == "properties":
            assert set(spec) <= set(new[key]), where
            assert new.get("required", []) == old.get("required", []), f"{where}: a new property is optional"
            for name, value in spec.items():
                assert_extends(value, new[key][name], f"{where}.{name}")
        elif key == "items":
            assert_extends(spec, new[key], f"{where}[]")
        else:
            assert new[key] == spec, f"{where}: {key}"


def test_extends_refuses_a_nested_property_changed_removed_or_required() -> None:
    old = load_schema("model_health", 1)["properties"]["promotions"]
    assert_extends(old, load_schema("model_health", 2)["properties"]["promotions"], "promotions")
    for broken in (
        {**old, "maxItems": 5},
        {**old, "items": {**old["items"], "required": [*old["items"]["required"], "at"],
                          "properties": {**old["items"]["properties"], "at": {"type": "string"}}}},
        {**old, "items": {**old["items"], "properties": {"at_label": {"type": "integer"}}}},
    ):  # fmt: skip
        with pytest.raises(AssertionError):
            assert_extends(old, broken, "promotions")


def _previous_versions() -> list[tuple[str, int]]:
    return [(kind, version) for kind in MESSAGE_KINDS for version in versions(kind)[1:]]


@pytest.mark.parametrize(("kind", "version"), _previous_versions(), ids=lambda v: str(v))
def test_each_new_version_is_a_minor_one(kind: str, version: int) -> None:
    """Version N keeps every property of N-1 as it was (or adds optional properties to its objects,
    as model_health.v2's promotions[].at) and its required fields, adds only optional ones, and
    accepts N-1's schema_version: every N-1 message is an N message (old producers and
    retained messages stay readable; tests/monitor/test_feed.py and test_model_health.py read both
    with the monitor)."""
    old, new = load_schema(kind, version - 1), load_schema(kind, version)
    assert new["required"] == old["required"]
    assert (new["type"], new["additionalProperties"]) == (old["type"], old["additionalProperties"])
    for name, spec in old["properties"].items():
        if name == "schema_version":
            assert spec == {"const": version - 1} and new["properties"][name] == {
                "enum": [version - 1, version]
            }
        else:
            assert_extends(spec, new["properties"][name], name)
    assert not set(new["required"]) - set(old["properties"])
    for example in old["examples"]:
        validator(kind, version)(copy.deepcopy(example))
    assert any(e["schema_version"] == version for e in new["examples"]), "an example of the new version"


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
        validator(kind_of(path), version_of(path))(example)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_a_broken_example_is_refused_by_both_validators(path: Path) -> None:
    """Validation is not vacuous: dropping a required field or adding an unknown one fails."""
    schema = load(path)
    example = schema["examples"][0]
    for broken in (
        {k: v for k, v in example.items() if k != schema["required"][-1]},
        {**example, "unexpected_field": 1},
        {**example, "schema_version": version_of(path) + 1},
    ):
        assert not reference_validator(schema).is_valid(broken)
        with pytest.raises(SchemaViolation):
            validator(kind_of(path), version_of(path))(copy.deepcopy(broken))


def test_schema_ids_are_unique_and_name_the_kind() -> None:
    ids = [load(path)["$id"] for path in SCHEMA_FILES]
    assert len(ids) == len(set(ids))
    for path, schema_id in zip(SCHEMA_FILES, ids, strict=True):
        assert schema_id == f"urn:fraud-detection:schema:{kind_of(path)}:v{version_of(path)}"
