"""The worker's consumer fetch settings reach aiokafka's consumer as Faust creates it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipeline.worker import fetching


def _created_consumer(min_bytes: int, max_wait_ms: int) -> Any:
    async def create() -> Any:
        app = fetching.app_class(min_bytes, max_wait_ms)("fetch-test", broker="kafka://127.0.0.1:1")
        thread = app.consumer._thread
        return thread._create_worker_consumer(app.transport)

    return asyncio.run(create())


def test_a_fetch_waits_for_the_bytes_it_asks() -> None:
    consumer = _created_consumer(1024 * 1024, 10)
    assert (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms) == (1024 * 1024, 10)


def test_no_wait_asks_for_any_byte() -> None:
    consumer = _created_consumer(1024 * 1024, 0)
    assert (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms) == (1, 0)


def test_a_message_faust_drops_is_said_at_warning_level(caplog: Any) -> None:
    """A stream skips a message of an earlier generation (it is read again after the rebalance's
    seek); Faust says so only in its developer log. The worker says it, without key or value."""
    from faust.types.tuples import ConsumerMessage

    async def run() -> list[int]:
        app = fetching.app_class(1, 0)("drop-test", broker="kafka://127.0.0.1:1")
        channel = app.topic("t").clone(is_iterator=True)
        app.flow_control.resume()
        app.consumer_generation_id = 2
        for offset, generation in ((5, 1), (6, 2)):
            message = ConsumerMessage(
                "t", 0, offset, 0.0, 0, None, b'"k"', b'"tok_secret"', None, None, generation_id=generation
            )
            await channel.deliver(message)
        app.consumer.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", 7, b'"k"', b'"tok_secret"')
        async for event in app.stream(channel).noack().events():
            return [event.message.offset]
        return []

    with caplog.at_level(logging.WARNING, logger="pipeline.worker.fetching"):
        assert asyncio.run(run()) == [6]
    said = [r.getMessage() for r in caplog.records]
    assert any("skipped TP(topic='t', partition=0)@5: generation 1, now 2" in line for line in said), said
    assert any("dropped the message at offset 7" in line for line in said), said
    assert not any("tok_secret" in line for line in said)


def test_a_commit_is_held_at_what_the_consumer_read(caplog: Any) -> None:
    from faust.types import TP

    read, seen, fresh = TP("t", 0), TP("t", 1), TP("t", 2)
    with caplog.at_level(logging.WARNING, logger="pipeline.worker.fetching"):
        held = fetching.within_read({read: 1044, seen: 900, fresh: 7}, {read: 1042, seen: 899})
    assert held == {read: 1043, seen: 900, fresh: 7}
    said = [r.getMessage() for r in caplog.records]
    assert said == [f"commit of {read} at 1044 held at 1043: the consumer read no further than 1042"]


def _records(tp: Any, offsets: range) -> list[Any]:
    from aiokafka.structs import ConsumerRecord

    return [ConsumerRecord(tp.topic, tp.partition, o, 0, 0, b'"k"', b"1", None, 3, 1, []) for o in offsets]


def _hand_over_with_a_seek(
    committed: int | None, seek_after: int, taken_meanwhile: bool = False
) -> tuple[list[int], list[tuple[int, int]]]:
    """Faust's consumer with its fetch and seeks replaced (no broker) hands over a batch of offsets
    0-4 of one partition; a rebalance's seek to the committed offsets comes after ``seek_after`` is
    handed over. Returns the offsets handed over and the seeks made before the next fetch.
    ``taken_meanwhile``: aiokafka refuses the seek (a rebalance took the partition meanwhile)."""
    from aiokafka.errors import IllegalStateError
    from faust.types import TP

    tp = TP("t", 0)

    async def run() -> tuple[list[int], list[tuple[int, int]]]:
        app = fetching.app_class(1, 0)("seek-test", broker="kafka://127.0.0.1:1")
        consumer = app.consumer
        seeks: list[tuple[int, int]] = []

        async def fetch(active_partitions: Any, timeout: float) -> dict[Any, list[Any]]:
            return {tp: _records(tp, range(0, 5))}

        async def seek(partition: Any, offset: int) -> None:
            if taken_meanwhile:
                raise IllegalStateError(f"No current assignment for partition {partition}")
            seeks.append((partition.partition, offset))

        async def committed_offsets() -> dict[Any, int | None]:
            return {tp: committed}

        consumer._thread.getmany = fetch
        consumer._thread.seek_to_committed = committed_offsets
        consumer._seek = seek
        consumer.assignment = lambda: {tp}
        consumer._get_active_partitions = lambda: {tp}
        consumer.highwater = lambda tp: 5
        app.topics.acks_enabled_for = lambda topic: True
        consumer.resume_flow()
        handed: list[int] = []
        async for _, message in consumer.getmany(1.0):
            handed.append(message.offset)
            if message.offset == seek_after:
                await consumer.perform_seek()
        await consumer._seek_back()
        return handed, seeks

    return asyncio.run(run())


def test_a_batch_fetched_before_a_seek_is_read_again_from_the_position_sought() -> None:
    """Offsets 0-1 are handed over, then a rebalance seeks the partition to its committed offset 1:
    the rest of the old batch is not handed over (Faust would hand it over, jump its read offset past
    the position sought and commit offset 1 as a gap), and the partition is read from 1 again."""
    handed, seeks = _hand_over_with_a_seek(committed=1, seek_after=1)
    assert handed == [0, 1]
    assert seeks == [(0, 1)]


def test_with_nothing_committed_the_partition_is_read_again_from_its_start() -> None:
    """In a new group nothing is committed yet, and aiokafka's seek to the committed offsets leaves
    the partition where it is: past the batch, and past whatever the streams dropped of the old
    generation. The worker seeks it to its start (as the new group read it), and after the stale
    batch again (offset 0 is lower than the first message not handed over, 2)."""
    handed, seeks = _hand_over_with_a_seek(committed=None, seek_after=1)
    assert handed == [0, 1]
    assert seeks == [(0, 0), (0, 0)]


def test_a_partition_a_rebalance_took_meanwhile_is_not_sought() -> None:
    """aiokafka refuses to seek a partition the rebalance under way took (the stress test's first
    worker crashed on it): the worker goes on; the rebalance seeks it if it comes back."""
    handed, seeks = _hand_over_with_a_seek(committed=1, seek_after=1, taken_meanwhile=True)
    assert handed == [0, 1]
    assert seeks == []


def test_a_batch_all_handed_over_before_the_seek_is_not_read_again() -> None:
    handed, seeks = _hand_over_with_a_seek(committed=3, seek_after=4)
    assert handed == [0, 1, 2, 3, 4]
    assert seeks == []


def test_rewinds_take_the_lower_of_the_first_not_handed_over_and_a_later_seek() -> None:
    from faust.types import TP

    read, new, old = TP("t", 0), TP("t", 1), TP("t", 2)
    rewinds = fetching.Rewinds()
    rewinds.sought_to({old: 3})  # a seek before the batch below was asked for
    rewinds.fetched_at = rewinds.seeks
    rewinds.seek_begins()
    rewinds.sought_to({read: 40, new: None, old: 3})
    batch = {tp: _records(tp, range(50, 60)) for tp in (read, new, old)}
    rewinds.not_handed_over(batch, {read: 52, new: 59, old: 55})
    assert rewinds.take() == {}  # not while the seek runs
    rewinds.seek_ends()
    assert rewinds.take() == {read: 40, old: 3}  # old: the batch was fetched during this seek too
    assert rewinds.take() == {}
