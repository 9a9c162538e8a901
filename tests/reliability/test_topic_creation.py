"""The topics the project creates: their configuration on a real broker, and min.insync.replicas
derived from the replication factor (docs/operations.md, "Replication")."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

from pipeline.config import load_settings
from pipeline.worker.topics import changelog_topic_names, topic_config


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
