"""How the worker's stages take their input and pass transactions on.

A stage takes its events in batches and passes transactions on in frames: one Kafka message
holding the envelopes of a batch that belong to one partition of the next topic, sent to that
partition (the partition Kafka's murmur2 partitioner gives the entity's key, so the state of an
entity always lives on one partition). This keeps the number of Kafka messages per transaction
low: the cost of a Python Kafka client is per message, not per byte (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import faust
import orjson
from aiokafka.partitioner import murmur2
from faust.streams import _current_event
from faust.types.agents import AgentFun

from pipeline.worker.producer import NativeProducer

Within = float | Callable[[faust.EventT], float]
"""How long a stage waits for its batch to fill once the first event came: seconds, or a function
of that first event (the first stage waits longer while a backlog waits behind it: faust_app.py)."""

OnError = Callable[[Exception, faust.EventT, str], None]
"""Told that handling an event failed (the exception, the event, the component): dead-letters it."""


class Outbox:
    """What a batch sends to the next stage, as frames: a JSON array of envelopes that all belong
    to one partition of one topic, sent to that partition. One Kafka message then carries many
    transactions between stages; a frame holds at most ``frame_items`` envelopes."""

    def __init__(self, frame_items: int) -> None:
        self.frame_items = frame_items
        self._frames: dict[tuple[str, int], list[bytes]] = {}

    def add(self, topic: faust.TopicT | str, partition: int, envelope: bytes) -> None:
        name = topic if isinstance(topic, str) else topic.get_topic_name()
        self._frames.setdefault((name, partition), []).append(envelope)

    def send(self, producer: NativeProducer) -> None:
        for (topic, partition), envelopes in self._frames.items():
            for start in range(0, len(envelopes), self.frame_items):
                frame = b"[" + b",".join(envelopes[start : start + self.frame_items]) + b"]"
                producer.send(topic, frame, partition=partition)
        self._frames.clear()


EventHandler = Callable[[faust.EventT, Outbox], Awaitable[None]]
BatchHandler = Callable[[list[faust.EventT], Outbox], Awaitable[None]]
PartitionHandler = Callable[[int, list[faust.EventT], Outbox], Awaitable[None]]


@functools.lru_cache(maxsize=200_000)
def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as Faust's and our confluent
    producers) gives ``key``; cached, as murmur2 is pure Python in aiokafka."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def batch_agent(
    handler: BatchHandler,
    component: str,
    size: int,
    within: Within,
    frame_items: int,
    producer: NativeProducer,
) -> AgentFun:
    """An agent that takes events in batches (up to ``size``, or what arrived within ``within``
    seconds), runs ``handler`` on the batch and then sends what the batch produced for the next
    stage as frames. Events are acknowledged only after the batch, frames included, was handed to
    the producer (at-least-once).

    ``take_batches`` (Faust's ``take_events`` with its timer started by the first event) does the
    batching: Faust's buffer handles rebalances (a batch of our own that decided to wait for more
    events could be left holding events whose buffer Faust cleared)."""

    async def agent(stream: faust.StreamT) -> None:
        async for events in take_batches(stream, size, within):
            outbox = Outbox(frame_items)
            await handler(list(events), outbox)
            outbox.send(producer)
            producer.poll()

    agent.__name__ = agent.__qualname__ = component.replace("-", "_")
    return agent


def take_batches(stream: faust.StreamT, max_: int, within: Within) -> AsyncIterator[list[faust.EventT]]:
    """Faust's ``Stream.take_events`` (faust-streaming 0.15), with one change: an empty buffer waits
    for its first event with no timeout, and only then up to ``within`` for the batch to fill.
    Faust's own wakes every ``within`` seconds even when nothing comes (six stages at 5 ms: 1,200
    wake-ups a second in an idle worker). Events are acknowledged after the batch was handled,
    and the buffer is Faust's, filled by a stream processor, so rebalances behave as in Faust."""
    batches = _take_batches(stream, max_, within)
    # As Faust registers its own: a stopping stream closes the generator, which detaches its processor.
    getattr(stream, "_active_agens", set()).add(batches)
    return batches


async def _take_batches(
    stream: faust.StreamT, max_: int, within: Within
) -> AsyncIterator[list[faust.EventT]]:
    s: Any = stream  # Faust's private buffering API, as its own take_events uses it
    events: list[faust.EventT] = []
    filled, full, consumed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    consuming: asyncio.Future[None] | None = None
    enable_acks = s.enable_acks

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming
        try:
            if consuming is not None:
                try:
                    await consuming
                finally:
                    consuming = None
            event = s.current_event
            if event is None:
                raise RuntimeError("take_batches found current_event is None")
            events.append(event)
            filled.set()
            if len(events) >= max_:
                full.set()
                consumed.clear()
                await s.wait(consumed)  # no more than max_ events in a batch
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            s.log.exception("Error adding to take buffer: %r", exc)
            await s.crash(exc)
        return value

    s.enable_acks = False  # events are acknowledged here, after their batch
    s.add_processor(add_to_buffer)
    s._enable_passive(aiter(s.channel))
    try:
        while not s.should_stop:
            await s.wait_for_stopped(filled)
            # No first event: the stream is stopping, nothing to wait for.
            wait = (within(events[0]) if events else 0.0) if callable(within) else within
            await s.wait_for_stopped(full, timeout=wait)
            if events:
                consuming = s.loop.create_future()
                try:
                    yield list(events)
                finally:
                    for event in events:
                        await s.ack(event)
                    events.clear()
                    filled.clear()
                    if not consuming.done():
                        consuming.set_result(None)
                    full.clear()
                    consumed.set()
    finally:
        s.enable_acks = enable_acks
        s._processors.remove(add_to_buffer)


def event_agent(
    handler: Callable[[faust.EventT], Awaitable[None]], component: str, on_error: OnError
) -> AgentFun:
    """An agent that runs ``handler`` on each event; an error dead-letters that event and the
    stream goes on, so nothing is dropped silently."""

    async def agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                await handler(event)
            except Exception as exc:
                on_error(exc, event, component)

    agent.__name__ = agent.__qualname__ = component.replace("-", "_")
    return agent


def each_event(handler: EventHandler, component: str, on_error: OnError) -> BatchHandler:
    """A batch handler that runs ``handler`` on each event of the batch. An error dead-letters that
    event; the batch goes on."""

    async def handle(events: list[faust.EventT], outbox: Outbox) -> None:
        for event in events:
            # Table writes go to the changelog partition (and RocksDB) of the current event;
            # the stream has moved on to later events since, so it is set here.
            _current_event.set(weakref.ref(event))
            try:
                await handler(event, outbox)
            except Exception as exc:
                on_error(exc, event, component)

    return handle


def by_partition(handler: PartitionHandler, component: str, on_error: OnError) -> BatchHandler:
    """A batch handler for frames: ``handler`` gets the frames of the batch one partition at a
    time, so that it reads and writes each entity's state once per batch and partition, however
    many frames carried it. An error dead-letters the events of that partition; the batch goes on."""

    async def handle(events: list[faust.EventT], outbox: Outbox) -> None:
        partitions: dict[int, list[faust.EventT]] = {}
        for event in events:
            partitions.setdefault(event.message.partition, []).append(event)
        for partition, frames in partitions.items():
            # Table writes go to the changelog partition of the current event: this partition.
            _current_event.set(weakref.ref(frames[-1]))
            try:
                await handler(partition, frames, outbox)
            except Exception as exc:
                for event in frames:
                    on_error(exc, event, component)

    return handle


def envelopes(
    frames: list[faust.EventT], component: str, on_error: OnError
) -> Iterator[tuple[faust.EventT, Any]]:
    """(frame, envelope) for every envelope of ``frames``; a frame that is not a JSON array is
    dead-lettered whole."""
    for event in frames:
        try:
            decoded = orjson.loads(event.value)
            if not isinstance(decoded, list):
                raise ValueError("a frame is a JSON array of envelopes")
        except Exception as exc:
            on_error(exc, event, component)
            continue
        for envelope in decoded:
            yield event, envelope


def where(event: faust.EventT) -> str:
    """topic[partition]@offset of an event, for logs."""
    return f"{event.message.topic}[{event.message.partition}]@{event.message.offset}"
