"""What ``fraud soak`` reads from Kafka: topics from the start to their end, offsets and lag."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from pipeline.config import Settings


def _quiet_consumer(settings: Settings, group: str) -> Consumer:
    """A consumer whose librdkafka errors (a broker away during a restart) are not printed."""

    def ignore(_error: KafkaError) -> None:
        return None

    return Consumer(
        settings.confluent_config(
            **{
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "log_level": 0,
                "error_cb": ignore,
            }
        )
    )


class TopicReader:
    """Reads every partition of a topic from its start, each call up to the end it has then."""

    def __init__(self, settings: Settings, topic: str, partitions: int) -> None:
        self.topic = topic
        self.partitions = partitions
        self._consumer = _quiet_consumer(settings, f"soak-reader-{uuid.uuid4().hex}")
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self._next = dict.fromkeys(range(partitions), 0)

    def read_to_end(self, timeout: float = 300.0) -> list[bytes]:
        """The values of the messages from where the last call stopped to the current end."""
        ends = {
            p: self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), 10)[1]
            for p in range(self.partitions)
        }
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while any(self._next[p] < ends[p] for p in ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {self.topic} to its end took more than {timeout:.0f}s")
            for message in self._consumer.consume(5000, 0.5):
                if message.error():
                    continue
                values.append(message.value())
                self._next[message.partition()] = message.offset() + 1
        return values

    def close(self) -> None:
        self._consumer.close()


class OffsetProbe:
    """The input topic's end offsets and the workers' committed offsets on it (the group's lag)."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic_transactions
        self.partitions = [TopicPartition(self.topic, p) for p in range(settings.topic_partitions)]
        # The workers' group id, to read its committed offsets; it never subscribes, so it never
        # joins the group.
        self._consumer = _quiet_consumer(settings, settings.app_id)

    def lag(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """{produced, committed, lag} of the input topic, or None when the broker does not answer."""
        try:
            produced = sum(self._consumer.get_watermark_offsets(tp, timeout)[1] for tp in self.partitions)
            committed = sum(max(tp.offset, 0) for tp in self._consumer.committed(self.partitions, timeout))
        except KafkaException:
            return None
        return {"produced": produced, "committed": committed, "lag": produced - committed}

    def close(self) -> None:
        self._consumer.close()
