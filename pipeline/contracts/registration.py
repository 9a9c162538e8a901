"""Registering the schemas of schemas/ with a schema registry, one subject per topic: every
schema is checked first (new subject, already registered, or compatible with the subject's
latest version), and nothing is registered while any one would be refused."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from pipeline.contracts.json_schemas import latest_version
from pipeline.contracts.schema_registry import RegistryError, SchemaRegistry, registered_text, subject_of
from pipeline.contracts.wire_format import header

State = Literal["new", "unchanged", "compatible", "refused", "registered"]


@dataclass(frozen=True)
class Registration:
    """One topic's schema and what the registry makes of it."""

    subject: str
    kind: str
    text: str
    state: State
    reason: str | None = None
    schema_id: int | None = None


def plan(
    registry: SchemaRegistry, topics: dict[str, str], schemas: dict[str, dict[str, Any]] | None = None
) -> list[Registration]:
    """What registering each topic's schema (topic -> kind; ``schemas``: kind -> schema, else the
    files') would do, asking the registry without changing it."""
    steps = []
    for topic, kind in topics.items():
        subject = subject_of(topic)
        text = registered_text(kind, (schemas or {}).get(kind))
        schema_id = registry.lookup(subject, text)
        if schema_id is not None:
            steps.append(Registration(subject, kind, text, "unchanged", schema_id=schema_id))
        elif not registry.has_versions(subject):
            steps.append(Registration(subject, kind, text, "new"))
        else:
            reason = registry.incompatibility(subject, text)
            steps.append(Registration(subject, kind, text, "refused" if reason else "compatible", reason))
    return steps


def register(registry: SchemaRegistry, steps: list[Registration], compatibility: str) -> list[Registration]:
    """Register the planned schemas (a new subject gets the ``compatibility`` level); refuses all
    of them when one is refused."""
    refused = [step for step in steps if step.state == "refused"]
    if refused:
        raise RegistryError("; ".join(f"{step.subject}: {step.reason}" for step in refused))
    done = []
    for step in steps:
        if step.state == "unchanged":
            done.append(step)
            continue
        schema_id = registry.register(step.subject, step.text)
        if step.state == "new":
            registry.set_compatibility(step.subject, compatibility)
        done.append(replace(step, state="registered", schema_id=schema_id))
    return done


def output_headers(registry: SchemaRegistry, topics: dict[str, str]) -> dict[str, bytes]:
    """The wire-format header of each output topic (topic -> kind): the id that topic's schema (its
    latest version) has under its subject, which `fraud schemas register` must have registered."""
    headers = {}
    for topic, kind in topics.items():
        schema_id = registry.lookup(subject_of(topic), registered_text(kind))
        if schema_id is None:
            raise RegistryError(
                f"{subject_of(topic)} has no {kind}.v{latest_version(kind)} schema in {registry.url}: "
                "run `fraud schemas register`"
            )
        headers[topic] = header(schema_id)
    return headers
