"""The worker's consumer fetch settings reach aiokafka's consumer as Faust creates it."""

from __future__ import annotations

import asyncio
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
