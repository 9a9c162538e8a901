"""Registering schemas/ and looking schema ids up, against a real schema registry (the project's
local Apicurio Registry, one for the session)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipeline.config import REPO_ROOT
from pipeline.contracts.json_schemas import load_schema
from pipeline.contracts.registration import output_headers, plan, register
from pipeline.contracts.schema_registry import RegistryError, SchemaIds, SchemaRegistry, registered_text
from pipeline.contracts.wire_format import header

pytestmark = pytest.mark.kafka


def topics() -> dict[str, str]:
    unique = uuid.uuid4().hex[:8]
    return {f"t{unique}-transactions": "transaction", f"t{unique}-labels": "label"}


def breaking_transaction() -> dict[str, object]:
    """A new required field: records written with the registered schema would no longer be read."""
    schema = json.loads(json.dumps(load_schema("transaction")))
    schema["required"].append("loyalty_tier")
    schema["properties"]["loyalty_tier"] = {"type": "string"}
    return schema


def test_schemas_are_registered_once_and_a_breaking_change_is_refused_with_the_reason(
    schema_registry_url: str,
) -> None:
    registry = SchemaRegistry(schema_registry_url)
    mapping = topics()
    first = register(registry, plan(registry, mapping), "BACKWARD")
    assert [step.state for step in first] == ["registered", "registered"]
    again = plan(registry, mapping)
    assert [(s.state, s.schema_id) for s in again] == [("unchanged", s.schema_id) for s in first]

    optional = json.loads(json.dumps(load_schema("transaction")))
    optional["properties"]["loyalty_tier"] = {"type": ["string", "null"]}
    assert plan(registry, mapping, {"transaction": optional})[0].state == "compatible"

    steps = plan(registry, mapping, {"transaction": breaking_transaction()})
    assert steps[0].state == "refused"
    assert steps[0].reason and "incompatible" in steps[0].reason.lower()
    with pytest.raises(RegistryError, match="transactions-value: Incompatible"):
        register(registry, steps, "BACKWARD")
    latest = registry.lookup(steps[0].subject, registered_text("transaction"))
    assert latest == first[0].schema_id, "nothing was registered"
    assert output_headers(registry, {next(iter(mapping)): "transaction"}) == {
        next(iter(mapping)): header(first[0].schema_id)
    }


def test_alert_v2_registers_as_a_compatible_version_of_v1(schema_registry_url: str) -> None:
    """A subject holding alert v1 (registered before explanations) takes v2 under BACKWARD: the
    registry's own checker agrees that v2 is a minor version; the worker then frames with v2's id."""
    registry = SchemaRegistry(schema_registry_url)
    topic = f"t{uuid.uuid4().hex[:8]}-alerts"
    old = register(registry, plan(registry, {topic: "alert"}, {"alert": load_schema("alert", 1)}), "BACKWARD")
    assert [step.state for step in old] == ["registered"]
    steps = plan(registry, {topic: "alert"})
    assert [(step.state, step.reason) for step in steps] == [("compatible", None)]
    (new,) = register(registry, steps, "BACKWARD")
    assert new.schema_id != old[0].schema_id
    assert output_headers(registry, {topic: "alert"}) == {topic: header(new.schema_id)}
    # FULL also asks old readers to read new alerts: v1 is closed (no additional properties)
    strict = f"t{uuid.uuid4().hex[:8]}-alerts"
    register(registry, plan(registry, {strict: "alert"}, {"alert": load_schema("alert", 1)}), "FULL")
    assert [step.state for step in plan(registry, {strict: "alert"})] == ["refused"]


def test_fraud_schemas_register_refuses_a_breaking_change_in_one_line(
    schema_registry_url: str, tmp_path: Path
) -> None:
    unique = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "FRAUD_SCHEMA_REGISTRY_URL": schema_registry_url,
        **{f"FRAUD_TOPIC_{name.upper()}": f"c{unique}-{name}" for name in
           ("transactions", "decisions", "alerts", "labels", "dead_letter", "lists")},
    }  # fmt: skip

    def fraud(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pipeline", "schemas", "register", *args]
        return subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)

    done = fraud()
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": registered (id ") == 6
    (tmp_path / "transaction.v1.schema.json").write_text(json.dumps(breaking_transaction()))
    refused = fraud("--dir", str(tmp_path))
    assert refused.returncode == 1
    assert f"c{unique}-transactions-value: refused: Incompatible" in refused.stdout
    assert refused.stderr.strip().splitlines() == [
        "fraud schemas: nothing registered: a change above breaks compatibility"
    ]


def test_schema_ids_are_asked_once_and_refused_unless_registered_under_the_topic(
    schema_registry_url: str,
) -> None:
    registry = SchemaRegistry(schema_registry_url)
    mapping = topics()
    transactions, labels = mapping
    ids = {s.kind: s.schema_id for s in register(registry, plan(registry, mapping), "BACKWARD")}
    lookups = SchemaIds(registry)
    for _ in range(3):
        assert lookups.refusal(ids["transaction"], transactions) is None
    assert lookups.lookups == 1
    wrong = lookups.refusal(ids["label"], transactions)
    assert wrong is not None and wrong.code == "unknown_schema_id"
    # A registry gives equal texts one id, so the label schema's id is under every labels subject.
    assert f"{labels}-value" in wrong.reason and wrong.reason.endswith(f", not {transactions}-value")
    missing = lookups.refusal(987654, transactions)
    assert missing is not None and missing.reason == "schema id 987654 is not in the schema registry"
    assert lookups.refusal(987654, transactions) is not None
    assert lookups.lookups == 3, "an unknown id is not asked again at once"


def test_a_registry_that_does_not_answer_is_told_apart_from_an_unknown_id() -> None:
    from pipeline.contracts.schema_registry import RegistryUnavailable

    with pytest.raises(RegistryUnavailable, match="does not answer"):
        SchemaRegistry("http://127.0.0.1:9/apis/ccompat/v7", timeout=1).schema(1)
