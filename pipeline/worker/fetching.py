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
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

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
