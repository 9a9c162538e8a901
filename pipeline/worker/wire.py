"""The worker's side of the Confluent wire format (pipeline/contracts/wire_format.py): reading
wire-format input through the schema registry, and framing the outputs when asked to."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.contracts.registration import output_headers
from pipeline.contracts.schema_registry import SchemaIds, WireReader, open_registry
from pipeline.worker.producer import NativeProducer


def wire_reader(settings: Settings) -> WireReader:
    """Reads wire-format input with the registry of the settings (none: every schema id is refused)."""
    registry = open_registry(settings.schema_registry_url, settings.schema_registry_timeout_seconds)
    return WireReader(SchemaIds(registry))


def frame_outputs(producer: NativeProducer, settings: Settings) -> None:
    """With output_wire_format, every decision, alert and dead letter goes out framed with the id
    of its schema under its topic's subject (asked once, at start-up)."""
    registry = open_registry(settings.schema_registry_url, settings.schema_registry_timeout_seconds)
    if settings.output_wire_format and registry is not None:
        producer.frame(output_headers(registry, settings.output_topic_kinds))
