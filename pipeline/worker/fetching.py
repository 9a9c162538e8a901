"""How the worker's Kafka consumer (aiokafka, inside Faust) fetches.

Faust creates aiokafka's consumer with ``fetch_min_bytes`` at 1: the broker answers a fetch as soon
as any partition has a byte. With a few transactions a second flowing through the stages' topics,
every frame then costs a fetch of its own (a request, its answer decoded in Python, the consumer
thread waking the event loop), and the worker spent most of a core fetching at 100 transactions/s.
Asking for more bytes than usually wait, for at most ``max_wait_ms``, makes a fetch carry what
arrived over those milliseconds; under load the bytes are there at once and nothing waits.

The consumer also closes a hole of Faust's in at-least-once delivery (docs/reliability.md,
"Rebalances"): a batch fetched before a rebalance's seek to the committed offsets is not handed over
after the seek, and whatever part of a batch is not handed over is read again (:class:`Rewinds`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)


@dataclass
class Rewinds:
    """Which partitions to read again, and from where, so that no fetched message is skipped.

    Faust hands over a fetched batch one message at a time, with the event loop running between
    them. A rebalance's seek to the committed offsets can come meanwhile (or while the fetch was
    under way): Faust checks for a new generation, not for a seek, and goes on handing over the old
    batch. Its read offset then jumps past the position sought, the messages read again from there
    are dropped as below it, and the jump is taken as a gap, acknowledged and committed, though no
    stage saw those messages (the rebalance stress test lost transactions so). Faust also stops
    handing over a batch halfway (flow stopped, new generation) while aiokafka's position is past it.

    So the worker stops handing over a batch fetched before a seek, and every partition whose
    batch was not all handed over is sought back, before the next fetch, to its first message not
    handed over, or lower, to where a seek since the fetch put it: at worst read twice, never lost.
    """

    seeks: int = 0  # one as a seek to committed offsets begins, one as it ends: odd while one runs
    sought_at: int = -1  # ``seeks`` while the latest seek ran
    sought: dict[TP, int] = field(default_factory=dict)  # where the latest seek put each partition
    fetched_at: int = 0  # ``seeks`` when the batch being handed over was asked for
    pending: dict[TP, tuple[int, int]] = field(default_factory=dict)  # first not handed over, fetched_at

    def seek_begins(self) -> None:
        self.seeks += 1

    def seek_ends(self) -> None:
        self.seeks += 1

    def sought_to(self, committed: Mapping[TP, int | None]) -> None:
        """The positions a seek to committed offsets set (None: the partition stayed where it was)."""
        self.sought_at = self.seeks
        self.sought = {tp: offset for tp, offset in committed.items() if offset is not None}

    def stale(self) -> bool:
        """Whether a seek began since the batch being handed over was asked for."""
        return self.seeks != self.fetched_at or self.seeks % 2 == 1

    def not_handed_over(self, batch: Mapping[TP, list[Any]], last_handed: Mapping[TP, int]) -> None:
        """Note, per partition, the first message of ``batch`` after the last one handed over."""
        for tp, records in batch.items():
            last = last_handed.get(tp)
            if not records or (last is not None and last >= records[-1].offset):
                continue  # all handed over
            first = next(record.offset for record in records if last is None or record.offset > last)
            fetched_at = self.fetched_at
            if tp in self.pending:
                first, fetched_at = min(first, self.pending[tp][0]), min(fetched_at, self.pending[tp][1])
            self.pending[tp] = (first, fetched_at)

    def take(self) -> dict[TP, int]:
        """Where to seek each partition before the next fetch (nothing while a seek runs)."""
        if self.seeks % 2 == 1 or not self.pending:
            return {}
        targets = {}
        for tp, (first, fetched_at) in self.pending.items():
            later_seek = self.sought_at >= fetched_at  # equal: the fetch came while that seek ran
            targets[tp] = min(first, self.sought[tp]) if later_seek and tp in self.sought else first
        self.pending = {}
        return targets


class WorkerConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer that reads again what it did not hand over (:class:`Rewinds`), says
    what Faust drops and skips at warning level, and never commits past what it read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _say_dropped_messages(self.log)
        self._rewinds = Rewinds()
        self._batch: Mapping[TP, list[Any]] = {}

    async def perform_seek(self) -> None:
        self._rewinds.seek_begins()
        try:
            await super().perform_seek()
        finally:
            self._rewinds.seek_ends()

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        # aiokafka leaves a partition with nothing committed where it is, past what streams may have
        # dropped in the rebalance (messages of the old generation): such a partition of a stream
        # topic is read again from its start, as a new group reads it
        acknowledged = self.app.topics.acks_enabled_for
        unmoved = {tp: 0 for tp, offset in committed.items() if not offset and acknowledged(tp.topic)}
        for tp in unmoved:
            await self._seek_assigned(tp, 0)
        self._rewinds.sought_to({**committed, **unmoved})
        return committed

    async def _getmany(self, active_partitions: Set[TP] | None, timeout: float) -> Any:
        self._rewinds.fetched_at = self._rewinds.seeks
        self._batch = await super()._getmany(active_partitions, timeout)
        return self._batch

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        await self._seek_back()
        last_handed: dict[TP, int] = {}
        self._batch = {}
        try:
            async for tp, message in super().getmany(timeout):
                if self._rewinds.stale():
                    log.info("a batch fetched before a seek to committed offsets: the rest is read again")
                    break
                last_handed[tp] = message.offset
                yield tp, message
        finally:
            self._rewinds.not_handed_over(self._batch, last_handed)
            self._batch = {}

    async def _seek_back(self) -> None:
        for tp, offset in self._rewinds.take().items():
            if tp not in self.assignment() or not self.app.topics.acks_enabled_for(tp.topic):
                continue  # a new owner reads it from the committed offset; a table's recovery seeks its own
            log.info("%s is read again from offset %d: a batch not all handed over", tp, offset)
            await self._seek_assigned(tp, offset)

    async def _seek_assigned(self, tp: TP, offset: int) -> None:
        """Seek ``tp`` unless a rebalance took it meanwhile: the rebalance seeks it to the committed
        offset, which is not past anything not handed over (``within_read``)."""
        try:
            await self.seek(tp, offset)
        except IllegalStateError:
            log.info("%s not sought to %d: no longer assigned (a rebalance seeks it)", tp, offset)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # Faust takes a jump in a partition's offsets for offsets that will never come (compacted
        # away, transaction markers) and commits past them; none of the worker's stream topics
        # has such offsets, so a jump there is worth a line.
        log.warning("offsets %d-%d of %s skipped by the consumer: a gap", offset_from, offset_to, tp)
        await super()._add_gap(tp, offset_from, offset_to)

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        return bool(await super()._commit(within_read(offsets, self._read_offset)))


def app_class(min_bytes: int, max_wait_ms: int) -> type[faust.App]:
    """A Faust app class with the :class:`WorkerConsumer`, fetching at least ``min_bytes`` (or what
    arrived in ``max_wait_ms``) per request; with no wait, any byte (a wait of 0 for bytes that are
    not there would make the consumer ask again and again)."""
    min_bytes = min_bytes if max_wait_ms > 0 else 1

    class FetchingConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # aiokafka's constructor arguments, read when its fetcher starts (after this).
            consumer._fetch_min_bytes = min_bytes
            consumer._fetch_max_wait_ms = max_wait_ms
            return consumer

    class FetchingConsumer(WorkerConsumer):
        def _new_consumer_thread(self) -> FetchingConsumerThread:
            return FetchingConsumerThread(self, loop=self.loop, beacon=self.beacon)

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
    and said at warning level. The rebalance stress test's loss was not of this kind (the stale
    batch moved the read offset too): ``Rewinds`` closes that one."""
    held: dict[TP, int] = {}
    for tp, offset in offsets.items():
        read = last_read.get(tp)
        if read is not None and offset > read + 1:
            log.warning("commit of %s at %d held at %d: the consumer read no further than %d", tp, offset,
                        read + 1, read)  # fmt: skip
            offset = read + 1
        held[tp] = offset
    return held
