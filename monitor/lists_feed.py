"""The monitor's Kafka edges for the block/allow lists: a background reader of the compacted
list-updates topic (the monitor's view of the lists, rebuilt from the topic at every start) and a
publisher of analysts' changes (idempotent, acks=all, keyed ``<list>:<entity_kind>:<value>``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaException

from monitor.feedback import DELIVERY_TIMEOUT_SECONDS, AcknowledgedPublisher
from monitor.state.shared_lists import SharedLists
from pipeline.config import Settings
from pipeline.kafka.list_topic import ListReadError, ListTopicReader

logger = logging.getLogger(__name__)

RETRY_SECONDS = 2.0


class ListPublishError(RuntimeError):
    """A list change could not be published; the message says why (for the analyst)."""


class ListPublisher(AcknowledgedPublisher):
    """Publishes list updates to ``settings.topic_lists`` and waits for the broker's acknowledgement."""

    def __init__(self, settings: Settings, *, timeout: float = DELIVERY_TIMEOUT_SECONDS) -> None:
        super().__init__(
            settings,
            settings.topic_lists,
            client="monitor-lists",
            what="list change",
            error=ListPublishError,
            timeout=timeout,
        )

    def publish(self, key: str, message: Mapping[str, Any]) -> None:
        """Produce ``message`` under ``key``; raises ListPublishError unless Kafka acknowledged it."""
        self._send(key, message)


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
