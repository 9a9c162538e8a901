"""A schema registry's Confluent-compatible REST API, as far as the pipeline needs it: the schemas
of schemas/ registered under one subject per topic (``<topic>-value``), and the schema ids that
wire-format messages name, looked up once and cached.

The registered text of a schema is the file's schema with ``$schema`` set to draft 7: the files
are draft 2020-12, but they use no keyword newer than draft 7 (``check_draft_7`` says so, and a
test runs it on every file), and registries' compatibility checkers read draft 7 (Apicurio
Registry 2.x's knows only drafts 4 to 7).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.contracts.json_schemas import load_schema
from pipeline.contracts.validation import Invalid
from pipeline.contracts.wire_format import unwrap

log = logging.getLogger(__name__)

DRAFT_7 = "http://json-schema.org/draft-07/schema#"
_NEWER_THAN_DRAFT_7 = {
    "$defs", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$vocabulary", "prefixItems",
    "unevaluatedItems", "unevaluatedProperties", "dependentRequired", "dependentSchemas", "minContains",
    "maxContains", "contentSchema",
}  # fmt: skip
_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryError(RuntimeError):
    """The registry refused a request or answered something unexpected (one line for people)."""


class RegistryUnavailable(RegistryError):
    """The registry did not answer, or answered with a server error: worth trying again."""


def subject_of(topic: str) -> str:
    """The subject of a topic's message values (Confluent's TopicNameStrategy)."""
    return f"{topic}-value"


def keywords_newer_than_draft_7(schema: Any) -> set[str]:
    """The keywords of ``schema`` (at any depth) that draft 7 does not know."""
    if isinstance(schema, dict):
        found = _NEWER_THAN_DRAFT_7 & schema.keys()
        for key, value in schema.items():
            if key not in ("examples", "const", "enum", "default"):
                found |= keywords_newer_than_draft_7(value)
        return found
    if isinstance(schema, list):
        return set().union(*map(keywords_newer_than_draft_7, schema)) if schema else set()
    return set()


def registered_text(kind: str, schema: dict[str, Any] | None = None) -> str:
    """The text registered for ``kind``'s schema (or for ``schema``): the same keywords, as draft 7."""
    schema = dict(load_schema(kind) if schema is None else schema)
    newer = keywords_newer_than_draft_7(schema)
    if newer:
        raise RegistryError(f"schema {kind} uses keywords newer than draft 7: {', '.join(sorted(newer))}")
    schema["$schema"] = DRAFT_7
    return json.dumps(schema, ensure_ascii=False)


@dataclass(frozen=True)
class RegisteredSchema:
    """A schema id as the registry knows it: its type and the subjects it is registered under."""

    schema_id: int
    schema_type: str
    subjects: frozenset[str]


class SchemaRegistry:
    """A blocking client of the Confluent-compatible API at ``url`` (urllib; one request a call)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The decoded answer; None for 404 (no such subject, version or id)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data, {"Content-Type": _CONTENT_TYPE, "Accept": _CONTENT_TYPE}, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            message = _error_message(exc)
            if exc.code == 404:
                return None
            if exc.code >= 500:
                raise RegistryUnavailable(f"schema registry {self.url}: {exc.code} {message}") from None
            raise RegistryError(f"schema registry refused {method} {path}: {exc.code} {message}") from None
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, bad JSON
            raise RegistryUnavailable(f"schema registry {self.url} does not answer: {exc}") from None

    def schema(self, schema_id: int) -> RegisteredSchema | None:
        """What the registry knows of ``schema_id``; None when it has no such id."""
        found = self._call("GET", f"/schemas/ids/{schema_id}")
        versions = self._call("GET", f"/schemas/ids/{schema_id}/versions")
        if found is None or versions is None:
            return None
        subjects = frozenset(str(entry["subject"]) for entry in versions)
        return RegisteredSchema(schema_id, found.get("schemaType", "AVRO"), subjects)

    def lookup(self, subject: str, text: str) -> int | None:
        """The id of ``text`` if it is registered under ``subject``."""
        found = self._call("POST", f"/subjects/{_quote(subject)}", {"schemaType": "JSON", "schema": text})
        return None if found is None else int(found["id"])

    def has_versions(self, subject: str) -> bool:
        return self._call("GET", f"/subjects/{_quote(subject)}/versions/latest") is not None

    def incompatibility(self, subject: str, text: str) -> str | None:
        """Why ``text`` may not follow the latest version of ``subject``; None if it may."""
        path = f"/compatibility/subjects/{_quote(subject)}/versions/latest?verbose=true"
        answer = self._call("POST", path, {"schemaType": "JSON", "schema": text})
        if answer is None or answer.get("is_compatible"):
            return None
        reasons = answer.get("messages") or [answer.get("reason") or "no reason given"]
        return "; ".join(str(reason) for reason in reasons)

    def register(self, subject: str, text: str) -> int:
        body = {"schemaType": "JSON", "schema": text}
        answer = self._call("POST", f"/subjects/{_quote(subject)}/versions", body)
        if answer is None:
            raise RegistryError(f"schema registry {self.url} has no subject API (404)")
        return int(answer["id"])

    def set_compatibility(self, subject: str, level: str) -> None:
        self._call("PUT", f"/config/{_quote(subject)}", {"compatibility": level})


def _quote(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("message", "")).replace("\n", " ")
    except (ValueError, AttributeError, OSError):
        return exc.reason or ""


class SchemaIds:
    """Which schema ids may frame the messages of a topic: the id of a JSON Schema registered under
    the topic's subject. Each id is asked once and kept (ids never change meaning); an id the
    registry does not know is asked again after ``retry_unknown_seconds``."""

    def __init__(
        self,
        registry: SchemaRegistry | None,
        retry_unknown_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.retry_unknown_seconds = retry_unknown_seconds
        self.clock = clock
        self._known: dict[int, RegisteredSchema] = {}
        self._unknown: dict[int, float] = {}
        self.lookups = 0

    def cached(self, schema_id: int) -> bool:
        """Whether ``refusal`` answers without asking the registry."""
        if schema_id in self._known or self.registry is None:
            return True
        asked = self._unknown.get(schema_id)
        return asked is not None and self.clock() - asked < self.retry_unknown_seconds

    def refusal(self, schema_id: int, topic: str) -> Invalid | None:
        """Why a message of ``topic`` may not be framed with ``schema_id``; None if it may. Asks the
        registry when the id is not cached (blocking; raises RegistryUnavailable)."""
        if self.registry is None:
            return Invalid("unknown_schema_id", f"schema id {schema_id}: no schema registry is configured "
                           "(FRAUD_SCHEMA_REGISTRY_URL)")  # fmt: skip
        schema = self._known.get(schema_id)
        if schema is None and not self.cached(schema_id):
            self.lookups += 1
            schema = self.registry.schema(schema_id)
            if schema is None:
                self._unknown[schema_id] = self.clock()
            else:
                self._known[schema_id] = schema
                self._unknown.pop(schema_id, None)
        if schema is None:
            return Invalid("unknown_schema_id", f"schema id {schema_id} is not in the schema registry")
        subject = subject_of(topic)
        if subject not in schema.subjects:
            under = ", ".join(sorted(schema.subjects)) or "no subject"
            return Invalid("unknown_schema_id", f"schema id {schema_id} is registered under {under}, "
                           f"not {subject}")  # fmt: skip
        if schema.schema_type != "JSON":
            return Invalid("bad_wire_format", f"schema id {schema_id} is a {schema.schema_type} schema; "
                           "only JSON Schema payloads are read")  # fmt: skip
        return None


class WireReader:
    """The worker's reading of wire-format messages: the payload of an accepted one, or why it is
    refused. An id not cached is looked up in a thread; while the registry does not answer, the
    message waits (retried with back-off) instead of being dead-lettered."""

    def __init__(self, ids: SchemaIds, max_wait_seconds: float = 10.0) -> None:
        self.ids = ids
        self.max_wait_seconds = max_wait_seconds

    async def payload(self, raw: bytes, topic: str) -> bytes | Invalid:
        framed = unwrap(raw)
        if isinstance(framed, Invalid):
            return framed
        if self.ids.cached(framed.schema_id):
            refusal = self.ids.refusal(framed.schema_id, topic)
            return refusal if refusal is not None else framed.payload
        return await asyncio.to_thread(self.payload_now, raw, topic)

    def payload_now(self, raw: bytes, topic: str) -> bytes | Invalid:
        """``payload`` in the calling thread (the native input reader's; the event loop's goes
        through a thread): an id not cached is asked here, and asked again while the registry does
        not answer."""
        framed = unwrap(raw)
        if isinstance(framed, Invalid):
            return framed
        wait = 0.5
        while True:
            try:
                refusal = self.ids.refusal(framed.schema_id, topic)
                break
            except RegistryUnavailable as exc:
                log.warning("%s; schema id %d asked again in %.1f s", exc, framed.schema_id, wait)
                time.sleep(wait)
                wait = min(wait * 2, self.max_wait_seconds)
            except RegistryError as exc:  # the registry refused the question itself (4xx)
                refusal = Invalid("unknown_schema_id", f"schema id {framed.schema_id}: {exc}")
                break
        return refusal if refusal is not None else framed.payload


def open_registry(url: str | None, timeout: float) -> SchemaRegistry | None:
    return SchemaRegistry(url, timeout) if url else None
