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
