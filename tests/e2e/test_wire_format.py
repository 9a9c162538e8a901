"""Upstream producers as they publish with a schema registry: confluent-kafka's JSONSerializer and
SchemaRegistryClient against the project's real registry (Apicurio), a real worker and broker."""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from pipeline.contracts.json_schemas import validator
from pipeline.contracts.registration import plan, register
from pipeline.contracts.schema_registry import SchemaRegistry, registered_text
from pipeline.contracts.wire_format import Framed, header, unwrap
from tests.e2e.test_pipeline import metric_value, simulated
from tests.support import consume_until, produce

pytestmark = pytest.mark.kafka


def serializer(client: SchemaRegistryClient, kind: str) -> JSONSerializer:
    """As an upstream team writes it: the registered schema, no auto-registration."""
    return JSONSerializer(registered_text(kind), client, conf={"auto.register.schemas": False})


def test_wire_format_input_is_decided_wrong_ids_are_dead_lettered_and_outputs_are_framed(
    make_settings, start_worker, schema_registry_url: str
) -> None:
    settings = make_settings(schema_registry_url=schema_registry_url, output_wire_format=True)
    registry = SchemaRegistry(schema_registry_url)
    ids = {s.kind: s.schema_id for s in register(registry, plan(registry, settings.topic_kinds), "BACKWARD")}
    client = SchemaRegistryClient({"url": schema_registry_url})
    to_transactions = SerializationContext(settings.topic_transactions, MessageField.VALUE)
    write_transaction = serializer(client, "transaction")

    transactions = simulated(120, seed=11)
    framed, plain = transactions[:90], transactions[90:]
    bad_payload = header(ids["transaction"]) + orjson.dumps(
        {**framed[0], "amount": -1, "transaction_id": "neg"}
    )
    wrong: list[tuple[str | None, bytes | dict[str, Any]]] = [
        ("w1", header(987654) + orjson.dumps(framed[1])),  # an id the registry does not have
        ("w2", header(ids["label"]) + orjson.dumps(framed[2])),  # the label schema's id
        ("w3", b"\x00\x00\x01"),  # a header cut short
        ("w4", bad_payload),  # the right id, a payload its schema refuses
    ]
    records: list[tuple[str | None, bytes | dict[str, Any]]] = [
        (t["card_token"], write_transaction(t, to_transactions)) for t in framed
    ]
    records += [(t["card_token"], t) for t in plain] + wrong
    worker = start_worker(settings)
    produce(settings, settings.topic_transactions, records)

    read_decision = JSONDeserializer(registered_text("decision"), schema_registry_client=client)
    to_decisions = SerializationContext(settings.topic_decisions, MessageField.VALUE)
    wanted = {t["transaction_id"] for t in transactions}
    decisions = consume_until(
        settings,
        settings.topic_decisions,
        lambda got: wanted <= {d["transaction_id"] for d in got},
        decode=lambda value: read_decision(value, to_decisions),
    )
    assert {d["transaction_id"] for d in decisions} == wanted, "framed and plain input alike"
    for decision in decisions:
        validator("decision")(decision)

    def dead_letter(value: bytes) -> dict[str, Any]:
        framed_letter = unwrap(value)
        assert isinstance(framed_letter, Framed) and framed_letter.schema_id == ids["dead_letter"]
        return orjson.loads(framed_letter.payload)

    letters = consume_until(
        settings, settings.topic_dead_letter, lambda got: len(got) >= 4, decode=dead_letter
    )
    by_key = {base64.b64decode(d["source_key_base64"]).decode(): d for d in letters}
    assert by_key["w1"]["reason_code"] == "unknown_schema_id"
    assert by_key["w1"]["reason"] == "schema id 987654 is not in the schema registry"
    assert by_key["w2"]["reason_code"] == "unknown_schema_id"
    assert by_key["w2"]["reason"].endswith(f"not {settings.topic_transactions}-value")
    assert by_key["w3"]["reason_code"] == "bad_wire_format"
    assert by_key["w4"]["reason_code"] == "schema_violation" and by_key["w4"]["field"] == "amount"
    assert base64.b64decode(by_key["w4"]["payload_base64"]) == bad_payload, "the original bytes"

    write_label = serializer(client, "label")
    to_labels = SerializationContext(settings.topic_labels, MessageField.VALUE)
    labels = [
        {"schema_version": 1, "transaction_id": t["transaction_id"], "card_token": t["card_token"],
         "is_fraud": False, "fraud_type": None, "source": "chargeback", "analyst": None, "comment": None,
         "labelled_at": t["event_time"]}
        for t in transactions[:30]
    ]  # fmt: skip
    produce(settings, settings.topic_labels, ((x["card_token"], write_label(x, to_labels)) for x in labels))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # each label learnt or skipped (the model's choice), none lost
        text = worker.metrics()
        done = sum(metric_value(text, "fraud_labels_total", outcome=o) for o in ("learnt", "skipped"))
        if done >= len(labels):
            break
        time.sleep(0.5)
    assert done == len(labels)
    assert metric_value(worker.metrics(), "fraud_labels_total", outcome="unknown") == 0
    assert metric_value(worker.metrics(), "fraud_dead_letters_total", reason="unknown_schema_id") == 2
