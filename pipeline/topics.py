"""Creating the pipeline's topics (idempotent), with confluent-kafka's AdminClient."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.config import Settings
from pipeline.detection.features import ENTITY_STAGES

log = logging.getLogger(__name__)


def internal_topic_names(settings: Settings) -> list[str]:
    """Repartition topics between the worker's stages (see pipeline/app.py), in stage order."""
    return [f"{settings.app_id}-by-{entity}" for entity, _, _ in ENTITY_STAGES] + [
        f"{settings.app_id}-by-card"
    ]


def ensure_topics(settings: Settings, *, include_internal: bool = True, timeout: float = 30.0) -> list[str]:
    """Create the pipeline's topics that do not exist yet; return the names created.

    All topics share one partition count so that Faust co-partitions them: the partition of a
    card's transactions is also the partition of its labels and of its table state.
    """
    admin = AdminClient(settings.confluent_config())
    names = settings.topic_names + (internal_topic_names(settings) if include_internal else [])
    existing = set(admin.list_topics(timeout=timeout).topics)
    retention_ms = str(settings.topic_retention_hours * 3600 * 1000)
    wanted = [
        NewTopic(
            name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            config={"retention.ms": retention_ms, "max.message.bytes": str(1024 * 1024)},
        )
        for name in names
        if name not in existing
    ]
    created: list[str] = []
    if not wanted:
        return created
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    log.info("created topics: %s", ", ".join(created) or "none")
    return created
