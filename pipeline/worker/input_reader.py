"""The input topic read by librdkafka in a thread of its own (``FRAUD_WORKER_INPUT=native``, issue 17).

Faust hands every input message to the first stage one at a time, in Python: aiokafka's fetcher
decodes it in its thread, the conductor, a channel, the stream and two sensors pass it on (tens of
microseconds a message, the largest share of a worker's time that is not detection:
docs/performance.md). The first stage keeps no state, so it needs none of that. This reader takes
the input topic in batches from confluent-kafka's consumer (decoded in C), checks each message as
``Validate`` does, and sends the valid transactions on as frames to the first entity stage, through
a librdkafka producer of its own; the stages after it are Faust's, fed by frames.

At-least-once: a batch's offsets are committed only once every frame and dead letter it produced
is acknowledged; a worker that dies before reads the batch again, and the later stages recognise a
transaction by its id. The callbacks of a rebalance run in this thread between two batches, so the
partitions being revoked are committed with everything read from them done.

The reader's consumer group is ``<app id>-input``. A partition it has no offset for starts where
the Faust group (``<app id>``) committed, so a deployment that switches to this reader neither
skips nor reads again what Faust read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, Message, TopicPartition

from pipeline.contracts.validation import Invalid
from pipeline.contracts.wire_format import is_framed
from pipeline.worker.batching import Outbox
from pipeline.worker.dead_letters import DeadLetters
from pipeline.worker.faults import crash_point
from pipeline.worker.producer import NativeProducer
from pipeline.worker.stages import Validate

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
"""Longest one wait for input lasts, so that a stop is seen within it."""
DELIVERY_SECONDS = 60.0
"""Longest a batch waits for its frames to be acknowledged before the reader gives up."""
COMMIT_SECONDS = 1.0
"""How often the offsets of the batches done are committed (as Faust's commit interval); also
before partitions are revoked and when the reader stops."""
PREFETCH = {"queued.max.messages.kbytes": 8 * 1024, "queued.min.messages": 20_000}
"""librdkafka's read-ahead of the input: up to 8 MiB or 20,000 messages (its defaults, 64 MiB
and 100,000, would hold a backlog's worth in the worker's memory)."""


def input_group(app_id: str) -> str:
    """The consumer group of the native input reader."""
    return f"{app_id}-input"


class NativeInput:
    """Reads ``topic`` in batches of up to ``batch_size`` with confluent-kafka and passes each
    message to ``validate`` (its outbox sent as frames by ``producer``; refusals dead-lettered
    through ``dead_letters``, which must use the same producer). ``on_fatal`` is told when the
    reader stops on an error it cannot get past (a lost delivery): the worker must stop, and its
    successor reads the uncommitted batches again."""

    def __init__(
        self,
        consumer_config: dict[str, Any],
        topic: str,
        app_id: str,
        validate: Validate,
        producer: NativeProducer,
        dead_letters: DeadLetters,
        batch_size: int,
        frame_items: int,
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self.topic, self.app_id = topic, app_id
        self.validate, self.producer, self.dead_letters = validate, producer, dead_letters
        self.batch_size, self.frame_items = batch_size, frame_items
        self.on_fatal = on_fatal
        self._config = {
            **consumer_config,
            "group.id": input_group(app_id),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **PREFETCH,
        }
        self._done: dict[int, int] = {}
        """The next offset to read of each partition whose batches are all delivered, not yet committed."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the thread -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="native-input", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the batch in hand, commit it and leave the group (blocking: call it from a thread).
        Waits at most ``timeout`` seconds: with the broker gone, the commit and the group's goodbye
        would hold the worker's shutdown (the thread is a daemon; what it did not commit is read
        again)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            consumer = Consumer(self._config)
        except BaseException as exc:
            log.critical("the native input reader could not start: %s", exc)
            self.on_fatal(exc)
            return
        try:
            consumer.subscribe(
                [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
            log.info("reading %s natively as group %s", self.topic, self._config["group.id"])
            committed_at = time.monotonic()
            while not self._stop.is_set():
                messages = consumer.consume(self.batch_size, POLL_SECONDS)
                if messages:
                    self._handle(messages)
                if self._done and time.monotonic() - committed_at >= COMMIT_SECONDS:
                    self._commit(consumer, asynchronous=True)
                    committed_at = time.monotonic()
            self._commit(consumer, asynchronous=False)
        except BaseException as exc:  # the worker must stop: what was not committed is read again
            log.critical("the native input reader stopped: %s", exc, exc_info=exc)
            self.on_fatal(exc)
        finally:
            consumer.close()

    def _handle(self, messages: list[Message]) -> None:
        """Check a batch, send its frames and dead letters, and wait until all are acknowledged."""
        outbox = Outbox(self.frame_items)
        received = time.time()
        read: dict[int, int] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise RuntimeError(f"input consumer: {error}")
                log.warning("input consumer: %s", error)  # transient: librdkafka retries it
                continue
            raw = message.value() or b""
            if is_framed(raw):  # Confluent wire format: the payload after the schema id
                raw = self.validate.wire.payload_now(raw, message.topic())  # type: ignore[assignment]
            refused = self._pass_on(raw, received, outbox)
            if refused is not None:
                self.dead_letters.refused(
                    refused, message.topic(), message.partition(), message.offset(),
                    message.key(), message.value(), "validate",
                )  # fmt: skip
            read[message.partition()] = message.offset() + 1
        outbox.send(self.producer)
        self.producer.deliver(DELIVERY_SECONDS)
        crash_point("after_input_frames", deliver_first=False)  # frames acknowledged, offsets not committed
        self._done.update(read)

    def _pass_on(self, raw: bytes | Invalid, received: float, outbox: Outbox) -> Invalid | None:
        try:
            return self.validate.pass_on(raw, received, outbox)
        except Exception as exc:  # a message the checks did not foresee: dead-lettered, not fatal
            log.error("validate failed on an input message", exc_info=exc)
            return Invalid("processing_error", f"{type(exc).__name__}: {exc}")

    def _commit(self, consumer: Consumer, asynchronous: bool, partitions: set[int] | None = None) -> None:
        done = {p: o for p, o in self._done.items() if partitions is None or p in partitions}
        if not done:
            return
        offsets = [TopicPartition(self.topic, partition, offset) for partition, offset in done.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except Exception as exc:  # read again after a restart: duplicates, not losses
            log.warning("input offsets not committed: %s", exc)
            return
        for partition in done:
            if self._done.get(partition) == done[partition]:
                del self._done[partition]

    # --- rebalances (called by librdkafka in this thread, inside ``consume``) ------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions this group has no offset for start where the Faust group committed."""
        committed = consumer.committed(partitions, timeout=30)
        missing = [tp for tp in committed if tp.offset == OFFSET_INVALID]
        if missing:
            legacy = self._faust_offsets(missing)
            for tp in committed:
                if tp.offset == OFFSET_INVALID and legacy.get(tp.partition, -1) >= 0:
                    tp.offset = legacy[tp.partition]
        log.info(
            "input partitions assigned: %s",
            ", ".join(f"{tp.partition}@{tp.offset if tp.offset >= 0 else 'start'}" for tp in committed),
        )
        consumer.assign(committed)

    def _faust_offsets(self, partitions: list[TopicPartition]) -> dict[int, int]:
        """The Faust group's committed offsets of ``partitions`` (asked, never joined)."""
        reader = Consumer({**self._config, "group.id": self.app_id})
        try:
            asked = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
            return {tp.partition: tp.offset for tp in reader.committed(asked, timeout=30)}
        finally:
            reader.close()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit(consumer, asynchronous=False, partitions={tp.partition for tp in partitions})
        for tp in partitions:
            self._done.pop(tp.partition, None)
        consumer.unassign()

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Lost, not revoked (the group moved on without us): their offsets may not be committed."""
        for tp in partitions:
            self._done.pop(tp.partition, None)
        consumer.unassign()
