"""The monitor's second I/O edge: publishing analyst verdicts (``label.v1``) to the labels topic.

Each verdict is produced with key = the card token (so the label meets the transaction's
features on the same partition) and waited for: ``publish`` returns only once the broker has
acknowledged it, and raises FeedbackError otherwise, so the analyst sees every failure.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer

from pipeline.config import Settings

logger = logging.getLogger(__name__)

DELIVERY_TIMEOUT_SECONDS = 10.0


class FeedbackError(RuntimeError):
    """A verdict could not be published; the message says why (for the analyst)."""


class ProducerLike(Protocol):
    """The part of ``confluent_kafka.Producer`` the publisher uses (a fake one in unit tests)."""

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Callable[..., None]) -> None: ...

    def flush(self, timeout: float) -> int: ...


class AcknowledgedPublisher:
    """Produces one message at a time to ``topic`` and waits for the broker's acknowledgement, so
    that a person acting in the monitor sees every failure: ``error`` is raised with a message
    that names ``what`` was not recorded.

    The producer is created on first use (a monitor nobody acts in opens no producer).
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        *,
        client: str,
        what: str,
        error: type[Exception],
        producer_factory: Callable[[dict[str, Any]], ProducerLike] = Producer,
        timeout: float = DELIVERY_TIMEOUT_SECONDS,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.timeout = timeout
        self._client = client
        self._what = what
        self._error = error
        self._factory = producer_factory
        self._producer: ProducerLike | None = None
        self._lock = threading.Lock()

    def producer_config(self) -> dict[str, Any]:
        """The project's idempotent acks=all producer, giving up on a message after ``timeout``."""
        return self.settings.producer_config(
            **{
                "client.id": f"{self.settings.app_id}-{self._client}",
                "message.timeout.ms": int(self.timeout * 1000),
                "linger.ms": 0,
            }
        )

    def _send(self, key: str, value: Mapping[str, Any]) -> None:
        """Produce ``value`` under ``key``; raise the publisher's error unless Kafka acknowledged it."""
        outcome: list[KafkaError | None] = []

        def on_delivery(error: KafkaError | None, _message: Any) -> None:
            outcome.append(error)

        what, topic = self._what, self.topic
        with self._lock:
            try:
                if self._producer is None:
                    self._producer = self._factory(self.producer_config())
                self._producer.produce(
                    topic, value=orjson.dumps(dict(value)), key=key.encode(), on_delivery=on_delivery
                )
                # message.timeout.ms makes librdkafka settle the message (delivered or failed) in time.
                remaining = self._producer.flush(self.timeout + 5)
            except (KafkaException, BufferError) as exc:
                raise self._error(f"could not publish the {what} to {topic!r}: {exc}") from exc
        if not outcome or remaining:
            raise self._error(
                f"the {what} was not acknowledged by Kafka within {self.timeout:.0f} s "
                f"(topic {topic!r}); it was not recorded, please try again"
            )
        if outcome[0] is not None:
            raise self._error(f"Kafka refused the {what} (topic {topic!r}): {outcome[0].str()}")

    def close(self) -> None:
        """Deliver what is still queued (there is nothing after a successful publish)."""
        with self._lock:
            if self._producer is not None:
                self._producer.flush(self.timeout)
                self._producer = None


class LabelPublisher(AcknowledgedPublisher):
    """Publishes label messages to ``settings.topic_labels`` and checks their delivery."""

    def __init__(
        self,
        settings: Settings,
        *,
        producer_factory: Callable[[dict[str, Any]], ProducerLike] = Producer,
        timeout: float = DELIVERY_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(
            settings,
            settings.topic_labels,
            client="monitor-feedback",
            what="verdict",
            error=FeedbackError,
            producer_factory=producer_factory,
            timeout=timeout,
        )

    def publish(self, label: Mapping[str, Any]) -> None:
        """Produce ``label`` (key: its card token) and wait for the broker's acknowledgement.

        Raises FeedbackError when it was not delivered within the timeout or the broker refused it.
        """
        key = label.get("card_token")
        if not isinstance(key, str) or not key:
            raise FeedbackError("the label has no card token to key it by")
        self._send(key, label)
        logger.info(
            "verdict on %s by %s published to %s",
            label.get("transaction_id"),
            label.get("analyst"),
            self.topic,
        )
