"""Sending what the worker cannot process to the dead-letter topic, with the reason and the
original bytes (card numbers masked), so that nothing is dropped silently."""

from __future__ import annotations

import logging
from typing import Any

import faust
import orjson

from pipeline.contracts.messages import dead_letter_message
from pipeline.contracts.validation import Invalid, mask_card_numbers
from pipeline.worker.batching import where
from pipeline.worker.producer import NativeProducer
from pipeline.worker.telemetry import PipelineMetrics

log = logging.getLogger(__name__)


class DeadLetters:
    """The worker's dead-letter topic, through its librdkafka producer."""

    def __init__(self, producer: NativeProducer, topic: str, metrics: PipelineMetrics) -> None:
        self.producer = producer
        self.topic = topic
        self.metrics = metrics

    def invalid(self, invalid: Invalid, event: faust.EventT, component: str) -> None:
        """A refused message: its bytes and the reason."""
        message = event.message
        self.refused(
            invalid, message.topic, message.partition, message.offset, message.key, event.value, component
        )

    def refused(
        self,
        invalid: Invalid,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        payload: bytes | None,
        component: str,
    ) -> None:
        """A refused message, given by where it was read: its bytes and the reason."""
        envelope = dead_letter_message(
            invalid,
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            payload=payload,
            component=component,
        )
        masked = mask_card_numbers(key) if key else key  # upstream may key by PAN
        self.producer.send(self.topic, orjson.dumps(envelope), masked)
        self.metrics.dead_letters.labels(invalid.code).inc()
        log.warning("dead-lettered %s[%d]@%d: %s: %s", topic, partition, offset, invalid.code, invalid.reason)

    def processing_error(self, exc: Exception, event: faust.EventT, component: str) -> None:
        """An event whose handling raised (reason processing_error)."""
        log.error("%s failed on %s", component, where(event), exc_info=exc)
        self.invalid(Invalid("processing_error", f"{type(exc).__name__}: {exc}"), event, component)

    def envelope(self, exc: Exception, envelope: Any, event: faust.EventT, component: str) -> None:
        """One envelope of a frame failed: dead-letter it alone (its transaction as the payload);
        the rest of the frame goes on."""
        log.error("%s failed on an envelope of %s", component, where(event), exc_info=exc)
        txn = envelope.get("txn") if isinstance(envelope, dict) else None
        payload = orjson.dumps(txn if txn is not None else envelope)
        key = str(txn.get("card_token", "")).encode() if isinstance(txn, dict) else None
        message = dead_letter_message(
            Invalid("processing_error", f"{type(exc).__name__}: {exc}"),
            topic=event.message.topic,
            partition=event.message.partition,
            offset=event.message.offset,
            key=key,
            payload=payload,
            component=component,
        )
        self.producer.send(self.topic, orjson.dumps(message), key)
        self.metrics.dead_letters.labels("processing_error").inc()
