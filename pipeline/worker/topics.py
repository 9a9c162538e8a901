"""Creating the pipeline's topics (idempotent), with confluent-kafka's AdminClient."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from pipeline.config import Settings
from pipeline.detection.features import ENTITY_STAGES, KEY_SEPARATOR, Entity
from pipeline.kafka.admin import BrokerUnavailableError, admin_client, check_broker, cluster_topic_names

__all__ = ["BrokerUnavailableError", "check_broker", "ensure_topics", "topic_config"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One entity stage of the worker: the entities whose state it keeps, all on the partitions of
    one routing field (a terminal's state lives with its merchant's). Its input topic is
    ``<app id>-by-<name>``."""

    name: str
    routing_field: str
    entities: tuple[Entity, ...]


def _stages(entities: tuple[Entity, ...]) -> tuple[Stage, ...]:
    """Consecutive entities routed by the same field share a stage: one Kafka hop fewer. An entity
    is routed by its owner's field (a terminal's state lives on its merchant's partition)."""
    stages: list[Stage] = []
    for entity in entities:
        field = entity.owner_field
        if stages and stages[-1].routing_field == field:
            stages[-1] = Stage(stages[-1].name, field, (*stages[-1].entities, entity))
        else:
            stages.append(Stage(field.removesuffix("_id"), field, (entity,)))
    return tuple(stages)


STAGES: tuple[Stage, ...] = _stages(ENTITY_STAGES)
"""The worker's entity stages in order: merchant (terminals and merchants), device, customer."""


def routing_key(txn: Mapping[str, Any], field: str) -> str:
    """The key that sends ``txn`` to the partition of a stage routed by ``field`` (the card when the
    transaction has no such field, so that such transactions spread evenly)."""
    return str(txn.get(field) or txn["card_token"])


def owner_key(entity: Entity, key: str) -> str:
    """The routing key of a stored ``key`` of ``entity``: its owner's (a key from before terminals
    lived with their merchant is its own owner)."""
    return key.split(KEY_SEPARATOR, 1)[0] if entity.within else key


def table_names() -> list[str]:
    """The worker's Faust tables: one per entity, the cards' history, the pending labels. The
    entity and card tables hold state rows (``-rows``); the ``-state`` tables of earlier versions
    held JSON objects and are not read (their history starts afresh, docs/operations.md)."""
    return [f"{entity.name}-rows" for entity in ENTITY_STAGES] + ["card-rows", "pending-labels"]


def changelog_topic_names(settings: Settings) -> list[str]:
    """The tables' changelog topics (compacted), named as Faust names them. They are created up
    front like every other topic: a changelog Faust creates after start-up can be seen by its
    consumer with 0 partitions, and every table write then fails with PartitionsMismatch."""
    return [f"{settings.app_id}-{name}-changelog" for name in table_names()]


def internal_topic_names(settings: Settings) -> list[str]:
    """Repartition topics between the worker's stages (see pipeline/worker/faust_app.py), in stage order."""
    return [f"{settings.app_id}-by-{stage.name}" for stage in STAGES] + [f"{settings.app_id}-by-card"]


def min_insync_replicas(replication_factor: int) -> int:
    """Replicas that must have a write before it is acknowledged (producers use acks=all): all but
    one, so the cluster keeps accepting writes with one broker down, and at least one."""
    return max(1, replication_factor - 1)


CHANGELOG_COMPACTION: dict[str, str] = {
    "segment.ms": str(60 * 1000),
    "segment.bytes": str(16 * 1024 * 1024),
    "min.cleanable.dirty.ratio": "0.1",
    "max.compaction.lag.ms": str(10 * 60 * 1000),
    "delete.retention.ms": str(2 * 60 * 1000),
}
"""How the tables' changelogs are compacted, so that a worker restoring a table reads about its live
entries, not its history (docs/reliability.md, "Table recovery"). Kafka never compacts the segment
being written, and by default a segment closes after 7 days or 1 GiB and a log is cleaned once half
of it is overwritten entries. Here a segment closes after a minute or 16 MiB, and the closed ones
are cleaned once a tenth of the log is dirty (or an entry has waited 10 minutes): what a restore
reads beyond the live entries is about the last minute or two of changes. The cleaner's cost
follows the dirty ratio, not the segment's age (each pass rewrites the log, so at most ten times
what was written), and cleaned segments are merged again into segments of up to 16 MiB, so short
segments do not pile up as files. A deletion's tombstone is kept 2 minutes after its segment is
cleaned (Kafka's default is a day, 1 h here until the 1,000,000-transaction recovery run): every
scored transaction's pending entry is deleted when its label comes, so the pending-labels changelog
held one tombstone per labelled transaction of the last hour, read by every restore. A reader that
had read a value and not yet its tombstone when the tombstone went would keep a deleted entry (the
entry expires again by its TTL); a bulk restore goes through millions of records in 2 minutes."""


def topic_config(settings: Settings, name: str) -> dict[str, str]:
    """The configuration a topic of the pipeline is created with: the audit trail kept for good;
    compacted for the lists and the tables' changelogs (the latest value of each key is kept for
    good; the changelogs' compaction tuned by CHANGELOG_COMPACTION), retained for
    ``topic_retention_hours`` otherwise; ``min.insync.replicas`` from the replication factor."""
    config = {
        "max.message.bytes": str(1024 * 1024),
        "min.insync.replicas": str(min_insync_replicas(settings.topic_replication_factor)),
    }
    if name.endswith("-changelog"):
        return {"cleanup.policy": "compact", **CHANGELOG_COMPACTION, **config}
    if name == settings.topic_lists:
        return {"cleanup.policy": "compact", **config}
    if name == settings.topic_audit:  # append-only, kept for good
        return {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1", **config}
    return {"retention.ms": str(settings.topic_retention_hours * 3600 * 1000), **config}


def ensure_topics(
    settings: Settings, *, include_internal: bool = True, timeout: float | None = None
) -> list[str]:
    """Create the pipeline's topics that do not exist yet; return the names created.

    All topics share one partition count so that Faust co-partitions them: the partition of a
    card's transactions is also the partition of its labels and of its table state. Raises
    BrokerUnavailableError when the cluster does not answer within ``timeout`` seconds (default
    ``settings.kafka_connect_timeout_seconds``), or as soon as it refuses the client. Topics that
    exist already are left as they are (their configuration too).
    """
    timeout = timeout or settings.kafka_connect_timeout_seconds
    errors: list[KafkaError] = []
    admin = admin_client(settings, errors)
    internal = (
        [
            *internal_topic_names(settings),
            *changelog_topic_names(settings),
            settings.topic_model_health,
            settings.topic_audit,
        ]
        if include_internal
        else []
    )
    names = settings.topic_names + internal
    existing = cluster_topic_names(admin, errors, settings, timeout)
    wanted = [
        NewTopic(
            name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            config=topic_config(settings, name),
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
