"""The topics the project creates: their configuration on a real broker, and min.insync.replicas
derived from the replication factor (docs/operations.md, "Replication")."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

from pipeline.config import load_settings
from pipeline.worker.topics import CHANGELOG_COMPACTION, changelog_topic_names, topic_config


@pytest.mark.parametrize(("replication_factor", "min_insync"), [(1, "1"), (2, "1"), (3, "2"), (5, "4")])
def test_min_insync_replicas_is_the_replication_factor_less_one(
    replication_factor: int, min_insync: str
) -> None:
    settings = load_settings(topic_replication_factor=replication_factor)
    for name in (settings.topic_transactions, settings.topic_lists, changelog_topic_names(settings)[0]):
        assert topic_config(settings, name)["min.insync.replicas"] == min_insync, name


@pytest.mark.kafka
def test_created_topics_carry_their_own_min_insync_replicas(make_settings) -> None:
    """Set on the topic itself (not the broker's default), so a cluster whose brokers say 1 still
    refuses a write that fewer replicas hold."""
    settings = make_settings()
    admin = AdminClient(settings.confluent_config())
    topics = [settings.topic_decisions, changelog_topic_names(settings)[0]]
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in topics]
    for resource, future in admin.describe_configs(resources).items():
        entry = future.result(10)["min.insync.replicas"]
        assert entry.value == "1", resource
        assert entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, (resource, entry.source)


def test_changelogs_are_compacted_soon_enough_to_bound_recovery() -> None:
    settings = load_settings()
    for name in changelog_topic_names(settings):
        config = topic_config(settings, name)
        assert config["cleanup.policy"] == "compact"
        assert int(config["segment.ms"]) <= 3600 * 1000, "the active segment is never compacted"
        assert float(config["min.cleanable.dirty.ratio"]) <= 0.1
    assert "segment.ms" not in topic_config(settings, settings.topic_transactions)
    assert "segment.ms" not in topic_config(settings, settings.topic_lists)


@pytest.mark.kafka
def test_created_changelogs_carry_their_compaction_settings(make_settings) -> None:
    settings = make_settings()
    admin = AdminClient(settings.confluent_config())
    for name in changelog_topic_names(settings):
        configs = _configs_once_known(admin, name)
        for key, value in CHANGELOG_COMPACTION.items():
            assert configs[key].value == value, (name, key)
            assert configs[key].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, (name, key)


def _configs_once_known(admin: AdminClient, topic: str, timeout: float = 15.0) -> dict:  # type: ignore[type-arg]
    """A just-created topic's configuration (the broker may not know the topic for a moment)."""
    deadline = time.monotonic() + timeout
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    while True:
        try:
            return admin.describe_configs([resource])[resource].result(10)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
