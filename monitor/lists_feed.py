"""The monitor's Kafka edges for the block/allow lists: a background reader of the compacted
list-updates topic (the monitor's view of the lists, rebuilt from the topic at every start) and a
publisher of analysts' changes (idempotent, acks=all, keyed ``<list>:<entity_kind>:<value>``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer

from monitor.lists_view import SharedLists
from pipeline.config import Settings
from pipeline.lists import ListReadError, ListTopicReader

logger = logging.getLogger(__name__)

DELIVERY_TIMEOUT_SECONDS = 10.0
RETRY_SECONDS = 2.0


class ListPublishError(RuntimeError):
    """A list change could not be published; the message says why (for the analyst)."""


class ListPublisher:
    """Publishes list updates to ``settings.topic_lists`` and waits for the broker's acknowledgement."""

    def __init__(self, settings: Settings, *, timeout: float = DELIVERY_TIMEOUT_SECONDS) -> None:
        self.settings = settings
        self.topic = settings.topic_lists
        self.timeout = timeout
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    def publish(self, key: str, message: Mapping[str, Any]) -> None:
        """Produce ``message`` under ``key``; raises ListPublishError unless Kafka acknowledged it."""
        outcome: list[KafkaError | None] = []
        with self._lock:
            try:
                if self._producer is None:
                    self._producer = Producer(
                        self.settings.producer_config(
                            **{
                                "client.id": f"{self.settings.app_id}-monitor-lists",
                                "message.timeout.ms": int(self.timeout * 1000),
                                "linger.ms": 0,
                            }
                        )
                    )
                self._producer.produce(
                    self.topic,
                    value=orjson.dumps(dict(message)),
                    key=key.encode(),
                    on_delivery=lambda error, _msg: outcome.append(error),
                )
                remaining = self._producer.flush(self.timeout + 5)
            except (KafkaException, BufferError) as exc:
                raise ListPublishError(f"could not publish the list change to {self.topic!r}: {exc}") from exc
        if not outcome or remaining:
            raise ListPublishError(
                f"the list change was not acknowledged by Kafka within {self.timeout:.0f} s "
                f"(topic {self.topic!r}); it was not recorded, please try again"
            )
        if outcome[0] is not None:
            raise ListPublishError(
                f"Kafka refused the list change (topic {self.topic!r}): {outcome[0].str()}"
            )

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.flush(self.timeout)
                self._producer = None


class ListFeed:
    """Reads the whole list-updates topic into ``lists`` on a daemon thread: to its end first
    (``ready``), then every update as it arrives. Retries while the topic cannot be read."""

    def __init__(
        self,
        settings: Settings,
        lists: SharedLists | None = None,
        *,
        reader_factory: Callable[[Settings, str], ListTopicReader] = ListTopicReader,
    ) -> None:
        self.settings = settings
        self.lists = lists if lists is not None else SharedLists()
        self._reader_factory = reader_factory
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    @property
    def ready(self) -> bool:
        """True once the topic was read to its end."""
        return self._ready.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the list feed was already started")
        self._thread = threading.Thread(target=self._run, name="monitor-list-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def __enter__(self) -> ListFeed:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        max_bytes = self.settings.max_message_bytes
        while not self._stop.is_set():
            try:
                reader = self._reader_factory(self.settings, "monitor-lists")
            except ListReadError as exc:
                self.failure = exc
                logger.error("list feed: %s; retrying in %.0f s", exc, RETRY_SECONDS)
                self._stop.wait(RETRY_SECONDS)
                continue
            try:
                self.lists.rebuild(reader.catch_up(), max_bytes)  # the topic's state, nothing older
                self.failure = None
                self._ready.set()
                logger.info("list feed caught up on %s: %s", self.settings.topic_lists, self.lists.counts())
                while not self._stop.is_set():
                    records = reader.poll()
                    if records:
                        self.lists.apply_records(records, max_bytes)
            except (KafkaException, ListReadError) as exc:
                self.failure = exc
                logger.error("list feed: %s; reading the topic again in %.0f s", exc, RETRY_SECONDS)
                time.sleep(RETRY_SECONDS)
            finally:
                reader.close()
