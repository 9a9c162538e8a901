"""KafkaFeed without a broker: a fake consumer drives the poll loop."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_INVALID, KafkaError, TopicPartition

from monitor.consumer import FeedError, KafkaFeed, caught_up, partition_lag
from monitor.metrics import MonitorMetrics
from monitor.state.alerts import alert_factors
from pipeline.config import load_settings
from pipeline.contracts.json_schemas import SchemaViolation, validator
from pipeline.contracts.messages import alert_message
from pipeline.detection.explanations import ExplainedFeatures, explain
from tests.monitor.conftest import EXPLANATION


@dataclass
class FakeMessage:
    _topic: str
    _value: bytes | None
    _error: KafkaError | None = None
    _offset: int = 0

    def error(self) -> KafkaError | None:
        return self._error

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes | None:
        return self._value

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class FakeConsumer:
    """Hands out the queued batches, then empty ones; records how it was used."""

    def __init__(self, config: dict[str, Any], batches: list[list[FakeMessage]]) -> None:
        self.config = config
        self.batches = list(batches)
        self.subscribed: list[str] = []
        self.closed = threading.Event()
        self.consume_args: list[tuple[int, float]] = []

    def subscribe(self, topics: list[str], on_assign: Any = None) -> None:
        self.subscribed = topics
        self.on_assign = on_assign

    def assign(self, partitions: list[Any]) -> None:
        self.assigned = partitions

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        self.consume_args.append((num_messages, timeout))
        if self.batches:
            return self.batches.pop(0)
        self.closed.wait(0.01)
        return []

    def close(self) -> None:
        self.closed.set()

    # Progress (lag, readiness): one empty partition per topic, never assigned.
    def assignment(self) -> list[Any]:
        return []

    def position(self, partitions: list[Any]) -> list[Any]:
        return partitions

    def get_watermark_offsets(
        self, partition: Any, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        return (0, 0)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None})})


@pytest.fixture
def settings():
    return load_settings(topic_decisions="dec-t", topic_alerts="alr-t", topic_labels="lab-t", app_id="unit")


def make_feed(settings, batches: list[list[FakeMessage]]) -> tuple[KafkaFeed, list[FakeConsumer]]:
    made: list[FakeConsumer] = []

    def factory(config: dict[str, Any]) -> FakeConsumer:
        made.append(FakeConsumer(config, batches))
        return made[-1]

    return KafkaFeed(settings, metrics=MonitorMetrics(), consumer_factory=factory), made


def test_consumer_config(settings) -> None:
    feed, _ = make_feed(settings, [])
    conf = feed.consumer_config()
    assert conf["group.id"].startswith("unit-monitor-")
    assert conf["group.id"] != make_feed(settings, [])[0].consumer_config()["group.id"]
    assert conf["auto.offset.reset"] == "earliest"
    assert conf["enable.auto.commit"] is False
    assert conf["bootstrap.servers"] == settings.bootstrap_servers


def test_feed_counts_and_survives_malformed_messages(settings, make_decision, make_alert) -> None:
    flagged = make_decision("tx-2", decision="block", fraud_type="identity_theft")
    decisions = [orjson.dumps(make_decision("tx-1")), orjson.dumps(flagged)]
    bad = [b"not json", b"[1, 2]", None, orjson.dumps({"transaction_id": "tx-9"}), b"\xff\xfe"]
    batches = [
        [FakeMessage("dec-t", v) for v in decisions[:1] + bad[:2]],
        [FakeMessage("dec-t", v) for v in (*bad[2:], decisions[1], decisions[0])],
        [
            FakeMessage("alr-t", orjson.dumps(make_alert(flagged))),
            FakeMessage("alr-t", orjson.dumps(make_alert(flagged))),
            FakeMessage("dec-t", None, KafkaError(KafkaError._PARTITION_EOF)),
            FakeMessage("dec-t", None, KafkaError(KafkaError._TRANSPORT)),
        ],
    ]
    feed, consumers = make_feed(settings, batches)
    feed.start()
    try:
        assert feed.wait_until(lambda: not consumers[0].batches and len(feed.state.alerts) == 1, 5)
        assert feed.wait_until(lambda: len(consumers[0].consume_args) > 3, 5)  # loop went on
        assert feed.running
    finally:
        feed.stop()
    assert consumers[0].closed.is_set()
    assert not feed.running and feed.failure is None
    assert consumers[0].subscribed == [
        "dec-t", "alr-t", "lab-t", "unit-pending-labels-changelog", "unit-model-health", "unit-audit"
    ]  # fmt: skip
    assert set(consumers[0].consume_args) == {(500, 0.5)}
    assert feed.state.decisions.transaction_count == 2
    assert feed.state.decisions.fraud_rate_series("identity_theft").rates == [0.5]
    registry = feed.metrics.registry
    assert registry.get_sample_value("fraud_monitor_malformed_messages_total") == 5
    assert registry.get_sample_value("fraud_monitor_messages_consumed_total", {"topic": "dec-t"}) == 8
    assert registry.get_sample_value("fraud_monitor_messages_consumed_total", {"topic": "alr-t"}) == 2
    dup = {"topic": "dec-t", "reason": "duplicate"}
    assert registry.get_sample_value("fraud_monitor_ignored_messages_total", dup) == 1
    last = feed.state.decisions.last_decision_at
    assert last is not None
    assert registry.get_sample_value("fraud_monitor_last_decision_timestamp_seconds") == last.timestamp()


def test_a_rejoin_resumes_each_partition_after_what_the_feed_handled(settings, make_decision) -> None:
    """The feed's group commits nothing: after a broker restart its partitions come back with no
    committed offset, and without this they were read again from the start (and counted again)."""
    batch = [FakeMessage("dec-t", orjson.dumps(make_decision(f"tx-{i}")), _offset=i) for i in range(3)]
    feed, consumers = make_feed(settings, [batch])
    feed.start()
    try:
        assert feed.wait_until(lambda: feed.state.decisions.transaction_count == 3, 5)
    finally:
        feed.stop()
    consumer = consumers[0]
    given = [TopicPartition("dec-t", 0, OFFSET_INVALID), TopicPartition("alr-t", 0, OFFSET_INVALID)]
    consumer.on_assign(consumer, given)
    assert [(tp.topic, tp.offset) for tp in consumer.assigned] == [("dec-t", 3), ("alr-t", OFFSET_INVALID)]


def test_fatal_error_ends_the_thread_and_closes(settings) -> None:
    fatal = KafkaError(KafkaError._FATAL, "boom", fatal=True)
    feed, consumers = make_feed(settings, [[FakeMessage("dec-t", None, fatal)]])
    feed.start()
    assert feed.wait_until(lambda: not feed.running, 5)
    assert feed.failure is not None
    assert consumers[0].closed.is_set()
    feed.stop()


def test_start_twice_is_an_error(settings) -> None:
    feed, _ = make_feed(settings, [])
    with feed, pytest.raises(FeedError):
        feed.start()
    assert not feed.running


def test_wait_until_times_out(settings) -> None:
    feed, _ = make_feed(settings, [])
    assert feed.wait_until(lambda: False, 0.1) is False
    assert feed.wait_until(lambda: True, 0) is True


def _label(tx: str, source: str, **extra: Any) -> dict[str, Any]:
    label = {
        "schema_version": 1,
        "transaction_id": tx,
        "card_token": "tok_4f9a2c1b7d3e",
        "is_fraud": True,
        "fraud_type": "identity_theft",
        "source": source,
        "analyst": "alice" if source == "analyst" else None,
        "comment": None,
        "labelled_at": "2026-11-28T09:05:00.000+00:00",
    }
    label.update(extra)
    return label


def test_feed_keeps_analyst_verdicts_from_the_labels_topic(settings) -> None:
    batch = [
        FakeMessage("lab-t", orjson.dumps(_label("tx-1", "analyst"))),
        FakeMessage("lab-t", orjson.dumps(_label("tx-1", "analyst"))),  # redelivered
        FakeMessage("lab-t", orjson.dumps(_label("tx-2", "simulator"))),
        FakeMessage("lab-t", orjson.dumps(_label("tx-3", "analyst", analyst=None))),  # malformed
        FakeMessage(
            "lab-t",
            orjson.dumps(
                _label(
                    "tx-4",
                    "analyst",
                    is_fraud=False,
                    fraud_type=None,
                    analyst="bob",
                    comment="known customer",
                )
            ),
        ),
    ]
    feed, consumers = make_feed(settings, [batch])
    with feed:
        assert feed.wait_until(lambda: not consumers[0].batches and len(feed.state.verdicts) == 2, 5)
    verdicts = feed.state.verdicts
    assert verdicts.get("tx-1").analyst == "alice" and verdicts.get("tx-1").fraud_type == "identity_theft"
    assert verdicts.get("tx-2") is None, "only analyst verdicts are kept"
    legit = verdicts.get("tx-4")
    assert (legit.outcome, legit.analyst, legit.comment) == ("legitimate", "bob", "known customer")
    registry = feed.metrics.registry
    assert registry.get_sample_value("fraud_monitor_messages_consumed_total", {"topic": "lab-t"}) == 5
    assert registry.get_sample_value("fraud_monitor_malformed_messages_total") == 1
    for reason, count in (("duplicate", 1), ("other_source", 1)):
        labels = {"topic": "lab-t", "reason": reason}
        assert registry.get_sample_value("fraud_monitor_ignored_messages_total", labels) == count


def test_partition_lag_counts_from_the_position_or_the_start() -> None:
    assert partition_lag(position=7, low=0, high=10) == 3
    assert partition_lag(position=OFFSET_INVALID, low=4, high=10) == 6  # nothing read yet
    assert partition_lag(position=10, low=0, high=10) == 0
    assert partition_lag(position=12, low=0, high=10) == 0  # a stale cached high watermark


def test_caught_up_needs_every_partition_read_to_its_start_end_offset() -> None:
    targets = {("d", 0): (0, 5), ("d", 1): (3, 3), ("a", 0): (2, 4)}
    assert not caught_up(targets, {})
    assert not caught_up(targets, {("d", 0): 5, ("a", 0): 3})
    assert caught_up(targets, {("d", 0): 5, ("a", 0): 4})  # ("d", 1) is empty: nothing to read
    assert caught_up(targets, {("d", 0): 9, ("a", 0): 4, ("d", 1): OFFSET_INVALID})


def test_a_feed_never_assigned_is_not_ready(settings) -> None:
    feed, _ = make_feed(settings, [])
    with feed:
        assert not feed.wait_until(lambda: feed.ready, 0.5)
        assert feed.running and feed.failure is None
    assert feed.metrics.registry.get_sample_value("fraud_monitor_feed_ready") == 0


def test_the_monitor_reads_alerts_v1_and_v2(settings, make_decision, make_alert) -> None:
    """Alert v2 is a minor version: the monitor's reader takes a retained v1 alert and a v2 alert
    as the pipeline writes it alike; the v2 schema accepts both, and the v1 schema (a strict v1
    consumer) refuses only the new field."""
    old = make_alert(make_decision("tx-v1", decision="review", fraud_type="identity_theft"))
    flagged = make_decision("tx-v2", second=1, decision="block", fraud_type="malicious_behavior", amount=70)
    features = {"amount": 70.0, "card_count_30d": 13.0, "card_mean_amount_30d": 13.4615}
    explained = ExplainedFeatures(features, explain("linear", -2.6, {"amount": 2.3}, features))
    new = alert_message(flagged, {"device_id": None}, explained)
    assert (old["schema_version"], new["schema_version"]) == (1, 2)
    assert new == make_alert(flagged, features=features, explanation=new["explanation"])
    validator("alert", 2)(old)
    validator("alert", 2)(new)
    validator("alert", 1)(old)
    with pytest.raises(SchemaViolation):
        validator("alert", 1)(new)

    feed, _ = make_feed(settings, [])
    assert feed.process("alr-t", orjson.dumps(old)) == "added"
    assert feed.process("alr-t", orjson.dumps(new)) == "added"
    assert feed.process("alr-t", orjson.dumps(make_alert(flagged, explanation=EXPLANATION))) == "duplicate"
    assert alert_factors(feed.state.alerts.get("tx-v1") or {}) == []
    (factor,) = alert_factors(feed.state.alerts.get("tx-v2") or {})
    assert (factor.name, factor.value, factor.typical, factor.contribution) == (
        "5.2× this card's 30-day mean amount",
        70.0,
        13.4615,
        2.3,
    )
