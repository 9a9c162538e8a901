"""How the worker's Kafka consumer (aiokafka, inside Faust) fetches.

Faust creates aiokafka's consumer with ``fetch_min_bytes`` at 1: the broker answers a fetch as soon
as any partition has a byte. With a few transactions a second flowing through the stages' topics,
every frame then costs a fetch of its own (a request, its answer decoded in Python, the consumer
thread waking the event loop), and the worker spent most of a core fetching at 100 transactions/s.
Asking for more bytes than usually wait, for at most ``max_wait_ms``, makes a fetch carry what
arrived over those milliseconds; under load the bytes are there at once and nothing waits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)


def app_class(min_bytes: int, max_wait_ms: int) -> type[faust.App]:
    """A Faust app class whose worker consumer fetches at least ``min_bytes`` (or what arrived in
    ``max_wait_ms``) per request; with no wait, any byte (a wait of 0 for bytes that are not
    there would make the consumer ask again and again)."""
    min_bytes = min_bytes if max_wait_ms > 0 else 1

    class FetchingConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # aiokafka's constructor arguments, read when its fetcher starts (after this).
            consumer._fetch_min_bytes = min_bytes
            consumer._fetch_max_wait_ms = max_wait_ms
            return consumer

    class FetchingConsumer(faust_aiokafka.Consumer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            _say_dropped_messages(self.log)

        def _new_consumer_thread(self) -> FetchingConsumerThread:
            return FetchingConsumerThread(self, loop=self.loop, beacon=self.beacon)

        async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
            # Faust takes a jump in a partition's offsets for offsets that will never come (compacted
            # away, transaction markers) and commits past them; none of the worker's stream topics
            # has such offsets, so a jump there is worth a line.
            log.warning("offsets %d-%d of %s skipped by the consumer: a gap", offset_from, offset_to, tp)
            await super()._add_gap(tp, offset_from, offset_to)

        async def _commit(self, offsets: Mapping[TP, int]) -> bool:
            return bool(await super()._commit(within_read(offsets, self._read_offset)))

    class FetchingTransport(faust_aiokafka.Transport):
        Consumer = FetchingConsumer

    class FetchingApp(faust.App):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            _say_dropped_messages(self.log)

        def _new_transport(self) -> Any:
            return FetchingTransport(self.conf.broker_consumer, self)

    return FetchingApp


def _say_dropped_messages(logger: Any) -> None:
    """Faust tells of a message it drops only in its developer log (off): the consumer's message
    below the partition's read offset, a stream's message of an earlier generation or read while
    the flow was stopped. Each is a transaction that must be read again, so say it at warning
    level, with the partition and offset (never the key or value: card tokens)."""
    developer_log = logger.dev

    def dev(message: str, *args: Any, **kwargs: Any) -> None:
        if message.startswith("DROPPED MESSAGE"):
            log.warning("consumer dropped the message at offset %r (below its read offset)", args[0])
        elif message.startswith("Skipping message") and args:
            dropped = args[0]
            where = f"{getattr(dropped, 'tp', '?')}@{getattr(dropped, 'offset', '?')}"
            log.warning("stream skipped %s: generation %r, now %r, flow active %r", where, *args[1:4])
        else:
            developer_log(message, *args, **kwargs)

    logger.dev = dev


def within_read(offsets: Mapping[TP, int], last_read: Mapping[TP, int | None]) -> dict[TP, int]:
    """``offsets`` to commit, each held at most one past the last offset the consumer read of its
    partition (``last_read``; no limit where it has not read one since the partition came). Faust
    commits what streams acknowledged, and nothing beyond what was read can have been; a commit
    past it would skip messages no stage has seen, so it is held back, at the cost of reading again,
    and said at warning level. It does not catch the rebalance stress test's loss
    (docs/reliability.md, "Rebalances"): there the stale batch moves the read offset too."""
    held: dict[TP, int] = {}
    for tp, offset in offsets.items():
        read = last_read.get(tp)
        if read is not None and offset > read + 1:
            log.warning("commit of %s at %d held at %d: the consumer read no further than %d", tp, offset,
                        read + 1, read)  # fmt: skip
            offset = read + 1
        held[tp] = offset
    return held
