"""The monitor's I/O edge: one Kafka consumer in a background thread feeding ``MonitorState``.

The consumer joins a group of its own (a fresh id per process), reads the decisions, alerts and
labels topics (analyst verdicts are kept, other labels skipped) from the earliest retained offset
and never commits, so every start rebuilds the view, verdicts included, from what the topics
retain. A malformed message is counted and logged and then skipped.

Every ``LAG_REFRESH_SECONDS`` the thread sets the consumer lag of each partition (the high
watermark librdkafka caches from its fetches, minus the feed's position) and checks readiness:
the feed is ready once it has read every partition up to the end offsets it saw when it started.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson
from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Message, TopicPartition

from monitor.metrics import MonitorMetrics
from monitor.model_health import verdict_precision
from monitor.state import MonitorState
from monitor.state.records import AddResult, InvalidRecordError
from monitor.state.scored import pending_labels_topic
from pipeline.config import Settings
from pipeline.contracts.validation import Invalid, redact_card_numbers
from pipeline.contracts.wire_format import is_framed, unwrap

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
POLL_TIMEOUT_SECONDS = 0.5
LAG_REFRESH_SECONDS = 2.0
WATERMARK_TIMEOUT_SECONDS = 5.0

SESSION_TIMEOUT_MS = 10_000
"""The feed's consumer group session (the broker allows 6 s to 30 min by default)."""

Partition = tuple[str, int]


class FeedError(RuntimeError):
    """The feed cannot run (started twice, or the consumer failed fatally)."""


class ConsumerLike(Protocol):
    """The part of ``confluent_kafka.Consumer`` the feed uses (a fake one in unit tests)."""

    def subscribe(
        self, topics: list[str], on_assign: Callable[[Any, list[TopicPartition]], None] = ...
    ) -> None: ...

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    def consume(self, num_messages: int = ..., timeout: float = ...) -> list[Message]: ...

    def close(self) -> None: ...

    def assignment(self) -> list[TopicPartition]: ...

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = ..., cached: bool = ...
    ) -> tuple[int, int] | None: ...

    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...


def partition_lag(position: int, low: int, high: int) -> int:
    """Messages of a partition not read yet; ``position`` OFFSET_INVALID (nothing read) counts from
    the low watermark, where the feed starts (auto.offset.reset=earliest)."""
    start = low if position < 0 else position
    return max(high - start, 0)


def caught_up(targets: Mapping[Partition, tuple[int, int]], positions: Mapping[Partition, int]) -> bool:
    """Whether every partition of ``targets`` ((low, high) seen at start) was read up to its high
    watermark; an empty partition (high <= low) needs nothing."""
    return all(
        high <= low or positions.get(partition, OFFSET_INVALID) >= high
        for partition, (low, high) in targets.items()
    )


def _log_kafka_error(err: KafkaError) -> None:
    logger.warning("kafka client error: %s", err)


class KafkaFeed:
    """Reads decisions, alerts and analyst verdicts into ``state`` on a daemon thread.

    ``start()``, then ``stop()`` (or use it as a context manager).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        state: MonitorState | None = None,
        metrics: MonitorMetrics | None = None,
        group_prefix: str | None = None,
        consumer_factory: Callable[[dict[str, Any]], ConsumerLike] = Consumer,
    ) -> None:
        self.settings = settings
        self.state = state if state is not None else MonitorState.from_settings(settings)
        self.metrics = metrics if metrics is not None else MonitorMetrics()
        self.group_id = f"{group_prefix or settings.app_id}-monitor-{uuid.uuid4().hex}"
        self.topics = [settings.topic_decisions, settings.topic_alerts, settings.topic_labels]
        # The features each transaction was scored on, for the rule what-if, the workers'
        # model-health reports and the audit trail: read as well, but readiness waits for the three
        # topics above only (a deleted entry's tombstone is skipped).
        self.scored_topic = pending_labels_topic(settings)
        self.health_topic = settings.topic_model_health
        self.audit_topic = settings.topic_audit
        self._handlers: Mapping[str, Callable[[Mapping[str, Any]], AddResult]] = {
            settings.topic_decisions: self.state.decisions.add,
            settings.topic_alerts: self.state.alerts.add,
            settings.topic_labels: self._label,
            self.scored_topic: self.state.scored.add_pending,
            self.health_topic: self.state.model_health.add,
            self.audit_topic: self.state.audit.add,
        }
        self._consumer_factory = consumer_factory
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._ready = threading.Event()
        self._targets: dict[Partition, tuple[int, int]] | None = None
        self._positions: dict[Partition, int] = {}
        self._read: dict[Partition, int] = {}
        """The next offset of each partition after the messages handled: where a rejoin resumes."""
        for topic in self.topics:  # so /metrics lists every topic from the start
            self.metrics.messages_consumed.labels(topic=topic)

    def consumer_config(self) -> dict[str, Any]:
        """librdkafka settings of the feed's consumer."""
        return self.settings.confluent_config(
            **{
                "group.id": self.group_id,
                "client.id": self.group_id,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # After a broker restart the group coordinator may not answer for a while; librdkafka
                # then waits out the session before it rejoins (45 s by default, and the broker as
                # long again for the old member): the feed stood still for over a minute in a soak.
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "error_cb": _log_kafka_error,
            }
        )

    @property
    def running(self) -> bool:
        """True while the consumer thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def ready(self) -> bool:
        """True once the feed has caught up with the end offsets seen at start, while it runs."""
        return self._ready.is_set() and self.running

    @property
    def failure(self) -> BaseException | None:
        """Why the consumer thread ended early, or None."""
        return self._failure

    def start(self) -> None:
        """Create the consumer, subscribe, and start the background thread."""
        if self._thread is not None:
            raise FeedError("the feed was already started")
        consumer = self._consumer_factory(self.consumer_config())
        consumer.subscribe(
            [*self.topics, self.scored_topic, self.health_topic, self.audit_topic], on_assign=self._on_assign
        )
        self._thread = threading.Thread(
            target=self._run, args=(consumer,), name="monitor-kafka-feed", daemon=True
        )
        self._thread.start()
        logger.info("monitor feed reading %s as group %s", ", ".join(self.topics), self.group_id)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread, which closes the consumer; wait up to ``timeout`` seconds for it."""
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("monitor feed did not stop within %.1f s", timeout)

    def wait_until(self, predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
        """Wait until ``predicate()`` is true (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
        return True

    def __enter__(self) -> KafkaFeed:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def process(self, topic: str, value: bytes | None, where: str = "") -> AddResult | None:
        """Decode one message and feed it to the state; None when it was malformed."""
        self.metrics.messages_consumed.labels(topic=topic).inc()
        handler = self._handlers.get(topic)
        try:
            if handler is None:
                raise InvalidRecordError(f"unexpected topic {topic!r}")
            if value is None:
                if topic == self.scored_topic:
                    return "deleted"  # the label came: the worker's entry goes, the what-if keeps it
                raise InvalidRecordError("empty message")
            if is_framed(value):  # Confluent wire format (upstream's labels, or framed outputs)
                framed = unwrap(value)
                if isinstance(framed, Invalid):
                    raise InvalidRecordError(framed.reason)
                value = framed.payload
            if topic == self.settings.topic_labels:  # upstream's too: a card number is never shown
                value = redact_card_numbers(value)
            record = orjson.loads(value)
            if not isinstance(record, dict):
                raise InvalidRecordError("expected a JSON object")
            result = handler(record)
        except (orjson.JSONDecodeError, InvalidRecordError) as exc:
            self.metrics.malformed_messages.inc()
            logger.warning("skipping malformed message on %s%s: %s", topic, where, exc)
            return None
        if result != "added":
            self.metrics.ignored_messages.labels(topic=topic, reason=result).inc()
        return result

    def _label(self, record: Mapping[str, Any]) -> AddResult:
        """A label: every source's for the what-if's precision, an analyst's verdict for the queue."""
        result = self.state.verdicts.add(record)
        try:
            self.state.scored.add_label(record)
        except InvalidRecordError as exc:
            logger.debug("label not kept for the what-if: %s", exc)
        return result

    def _show_verdicts(self, seen: int) -> int:
        """The verdict gauges, when the verdicts changed since version ``seen``; the version now."""
        version = self.state.verdicts.version
        if version != seen:
            precision = verdict_precision(self.state.verdicts.snapshot().values())
            self.metrics.show_verdicts(precision.fraud, precision.legitimate)
        return version

    def _run(self, consumer: ConsumerLike) -> None:
        next_refresh = 0.0
        verdicts_seen = 0
        try:
            while not self._stop_event.is_set():
                messages = consumer.consume(num_messages=BATCH_SIZE, timeout=POLL_TIMEOUT_SECONDS)
                for msg in messages:
                    self._handle(msg)
                if messages:
                    last = self.state.decisions.last_decision_at
                    if last is not None:
                        self.metrics.last_decision_timestamp.set(last.timestamp())
                    verdicts_seen = self._show_verdicts(verdicts_seen)
                if time.monotonic() >= next_refresh and self._refresh_progress(consumer):
                    next_refresh = time.monotonic() + LAG_REFRESH_SECONDS
        except KafkaException as exc:
            self._failure = exc
            logger.error("monitor feed stopped: %s", exc)
        except Exception as exc:  # a bug: record it so the thread's end is visible, then stop
            self._failure = exc
            logger.exception("monitor feed crashed")
        finally:
            consumer.close()

    def _on_assign(self, consumer: ConsumerLike, partitions: list[TopicPartition]) -> None:
        """Partitions given (back) to the feed resume after what it handled. The feed's group is
        its own and commits nothing, so without this a rejoin (after a broker restart, a session
        lost) starts every partition from ``auto.offset.reset``, the beginning: a soak's monitor
        read 230,000 decisions again, and counted them, after its broker came back."""
        resumed = 0
        for tp in partitions:
            offset = self._read.get((tp.topic, tp.partition))
            if offset is not None:
                tp.offset = offset
                resumed += 1
        if resumed:
            logger.info("monitor feed resumes %d partitions where it stopped reading", resumed)
        consumer.assign(partitions)

    def _refresh_progress(self, consumer: ConsumerLike) -> bool:
        """Set the lag gauges from the consumer's local view, and the readiness; False when there
        is nothing to measure yet (no partition assigned), to try again at the next poll."""
        if self._targets is None:
            self._targets = self._end_offsets(consumer)
        assigned = consumer.assignment()
        if not assigned:
            return False
        for tp in consumer.position(assigned):
            partition = (tp.topic, tp.partition)
            self._positions[partition] = tp.offset
            low, high = self._targets.get(partition, (0, 0)) if self._targets else (0, 0)
            cached = consumer.get_watermark_offsets(tp, cached=True)
            if cached is not None and cached[1] >= 0:
                high = cached[1]
            if cached is not None and cached[0] >= 0:
                low = cached[0]
            self.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                partition_lag(tp.offset, low, high)
            )
        if (
            self._targets is not None
            and not self._ready.is_set()
            and caught_up(self._targets, self._positions)
        ):
            self._ready.set()
            self.metrics.feed_ready.set(1)
            logger.info("monitor feed caught up with %d partitions", len(self._targets))
        return True

    def _end_offsets(self, consumer: ConsumerLike) -> dict[Partition, tuple[int, int]] | None:
        """(low, high) watermarks of every partition of the feed's topics, from the broker; None
        when the broker cannot tell now (tried again at the next refresh)."""
        targets: dict[Partition, tuple[int, int]] = {}
        try:
            for topic in self.topics:
                metadata = consumer.list_topics(topic, timeout=WATERMARK_TIMEOUT_SECONDS).topics[topic]
                if metadata.error is not None:
                    raise KafkaException(metadata.error)
                for number in metadata.partitions:
                    offsets = consumer.get_watermark_offsets(
                        TopicPartition(topic, number), timeout=WATERMARK_TIMEOUT_SECONDS, cached=False
                    )
                    if offsets is None:
                        raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
                    targets[(topic, number)] = offsets
        except KafkaException as exc:
            logger.warning("end offsets of %s not known yet: %s", ", ".join(self.topics), exc)
            return None
        return targets

    def _handle(self, msg: Message) -> None:
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return
            if err.fatal():
                raise KafkaException(err)
            logger.warning("consumer error on %s: %s", msg.topic(), err)
            return
        topic = msg.topic() or ""
        self.process(topic, msg.value(), where=f" [{msg.partition()}@{msg.offset()}]")
        self._read[(topic, msg.partition())] = msg.offset() + 1
