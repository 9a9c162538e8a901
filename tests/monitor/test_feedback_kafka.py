"""Analyst verdicts against the real broker: published through the feedback edge, read back by the feed,
and still known after a monitor restart (a fresh feed rebuilds them from the labels topic)."""

from __future__ import annotations

from datetime import datetime

import pytest

from monitor.consumer import KafkaFeed
from monitor.feedback import LabelPublisher
from monitor.metrics import MonitorMetrics
from monitor.users import User
from monitor.views.alert_detail import give_verdict
from monitor.views.alert_queue import QueueRequest, update_queue_page
from monitor.views.shared import OK_STYLE
from pipeline.config import Settings
from pipeline.contracts.json_schemas import validator
from tests.monitor.test_feed_kafka import _all_read, published  # noqa: F401 - fixture reused
from tests.support import consume_until, produce

pytestmark = pytest.mark.kafka

TIMEOUT = 60.0


def _queue_row(feed: KafkaFeed, transaction_id: str) -> list[str]:
    children = update_queue_page(feed.state, QueueRequest(), None).children
    for row in children[1].children:
        cells = [cell.children for cell in row.children]
        if cells[0] == transaction_id:
            return cells
    raise AssertionError(f"{transaction_id} is not in the queue")


def test_verdict_lands_on_the_labels_topic_and_the_feed_shows_it(published: Settings) -> None:  # noqa: F811
    # a simulator label on the same topic is not an analyst verdict and is skipped
    simulator_label = {
        "schema_version": 1,
        "transaction_id": "u1",
        "card_token": "tok_4f9a2c1b7d3e",
        "is_fraud": True,
        "fraud_type": "unauthorized_transactions",
        "source": "simulator",
        "analyst": None,
        "comment": None,
        "labelled_at": "2026-11-28T09:10:00+00:00",
    }
    produce(published, published.topic_labels, [("tok_4f9a2c1b7d3e", simulator_label)])
    publisher = LabelPublisher(published)
    with KafkaFeed(published, metrics=MonitorMetrics()) as feed:
        assert feed.wait_until(lambda: _all_read(feed, published), TIMEOUT)
        feedback = give_verdict(
            feed.state,
            publisher.publish,
            User("alice", "analyst"),
            "i1",
            "confirm",
            "Identity Theft",
            "called",
        )
        assert feedback.style == OK_STYLE, feedback.text
        legit = give_verdict(feed.state, publisher.publish, User("bob", "analyst"), "u1", "legitimate", None)
        assert legit.style == OK_STYLE, legit.text
        publisher.close()

        labels = consume_until(
            published, published.topic_labels, lambda msgs: sum(m["source"] == "analyst" for m in msgs) >= 2
        )
        analyst_labels = {m["transaction_id"]: m for m in labels if m["source"] == "analyst"}
        for label in analyst_labels.values():
            validator("label")(label)
        confirmed = analyst_labels["i1"]
        assert (confirmed["is_fraud"], confirmed["fraud_type"], confirmed["analyst"]) == (
            True,
            "identity_theft",
            "alice",
        )
        assert confirmed["card_token"] == "tok_4f9a2c1b7d3e" and confirmed["comment"] == "called"
        assert (analyst_labels["u1"]["is_fraud"], analyst_labels["u1"]["analyst"]) == (False, "bob")

        # the feed reads its own verdicts back from the topic (the labels messages are counted)
        def labels_read() -> bool:
            value = feed.metrics.registry.get_sample_value(
                "fraud_monitor_messages_consumed_total", {"topic": published.topic_labels}
            )
            return (value or 0) >= 3

        assert feed.wait_until(labels_read, TIMEOUT)
        assert _queue_row(feed, "i1")[-1].startswith("fraud · alice · ")
        assert _queue_row(feed, "u1")[-1].startswith("legitimate · bob · ")
        assert _queue_row(feed, "u2")[-1] == ""

    # a restarted monitor rebuilds the verdicts from the topic
    with KafkaFeed(published, metrics=MonitorMetrics()) as fresh:
        assert fresh.wait_until(
            lambda: len(fresh.state.verdicts) == 2 and _all_read(fresh, published), TIMEOUT
        )
        verdict = fresh.state.verdicts.get("i1")
        assert verdict is not None
        assert (verdict.analyst, verdict.fraud_type, verdict.comment) == ("alice", "identity_theft", "called")
        assert verdict.labelled_at == datetime.fromisoformat(confirmed["labelled_at"])
        assert _queue_row(fresh, "i1")[-1].startswith("fraud · alice · ")
        assert fresh.state.verdicts.get("u1").outcome == "legitimate"
