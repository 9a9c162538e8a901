"""The worker's block/allow lists: every worker reads the whole list-updates topic itself
(pipeline/kafka/list_topic.py says why no GlobalTable), first to its end before it scores, then
following it; invalid updates are dead-lettered once, by an agent in the app's consumer group."""

from __future__ import annotations

import asyncio
import logging

import faust
from confluent_kafka import KafkaException
from prometheus_client import CollectorRegistry

from pipeline.config import Settings
from pipeline.contracts.list_updates import parse_list_update
from pipeline.contracts.validation import Invalid
from pipeline.detection.entity_lists import EntityLists
from pipeline.kafka.list_topic import ListMetrics, ListTopicReader, apply_records
from pipeline.worker.batching import event_agent
from pipeline.worker.dead_letters import DeadLetters

log = logging.getLogger(__name__)


class ListFollower:
    """Keeps one worker's ``EntityLists`` equal to the topic: caught up at start, then followed."""

    def __init__(self, settings: Settings, lists: EntityLists, metrics: ListMetrics) -> None:
        self.settings = settings
        self.lists = lists
        self.metrics = metrics
        self.reader = ListTopicReader(settings, "lists")

    def catch_up(self) -> None:
        records = self.reader.catch_up()
        apply_records(self.lists, records, self.settings.max_message_bytes, self.metrics)
        log.info("lists read from %s: %s", self.settings.topic_lists, self.lists.counts())

    async def follow(self) -> None:
        """Apply updates as they arrive, on the event loop (the engine reads the lists there)."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    records = await loop.run_in_executor(None, self.reader.poll)
                except KafkaException as exc:  # fatal for this poll only: the client reconnects
                    log.error("list topic %s: %s; retrying", self.settings.topic_lists, exc)
                    await asyncio.sleep(1.0)
                    continue
                if records:
                    apply_records(self.lists, records, self.settings.max_message_bytes, self.metrics)
        finally:
            self.reader.close()


def install_lists(
    app: faust.App,
    topic: faust.TopicT,
    settings: Settings,
    lists: EntityLists,
    registry: CollectorRegistry,
    dead_letters: DeadLetters,
) -> ListFollower:
    """Wire ``lists`` (the detector's) to the list-updates ``topic``: read it to its end now, follow
    it in a task, and dead-letter invalid updates from an agent on ``topic``."""
    follower = ListFollower(settings, lists, ListMetrics(registry))
    follower.catch_up()
    app.task(follower.follow)
    max_bytes = settings.max_message_bytes
    component = "check-list-updates"

    async def check_list_update(event: faust.EventT) -> None:
        result = parse_list_update(event.message.key, event.value, max_bytes)
        if isinstance(result, Invalid):
            dead_letters.invalid(result, event, component)

    # An update whose check raises is dead-lettered too (processing_error); the stream goes on.
    app.agent(topic, name=component)(event_agent(check_list_update, component, dead_letters.processing_error))
    return follower
