"""KafkaFeed and the app against the real broker (topics from the owner's ``make_settings``)."""

from __future__ import annotations

import json
from typing import Any

import fastjsonschema
import orjson
import pytest
from confluent_kafka import Producer

from monitor.app import create_app
from monitor.consumer import BATCH_SIZE, KafkaFeed
from monitor.metrics import MonitorMetrics
from monitor.state.alerts import alert_factors
from monitor.views.rates import update_graph
from pipeline.config import FRAUD_TYPE_NAMES, Settings
from tests.monitor.conftest import EXPLANATION
from tests.monitor.logins import ANALYST, login_client, make_accounts

pytestmark = pytest.mark.kafka

TIMEOUT = 60.0


def _validator(settings: Settings, name: str, version: int = 1):
    schema = json.loads((settings.schemas_dir / f"{name}.v{version}.schema.json").read_text("utf-8"))
    return fastjsonschema.compile(schema, formats={})


def _produce(settings: Settings, topic: str, values: list[bytes], key: bytes = b"tok_4f9a2c1b7d3e") -> None:
    producer = Producer(settings.producer_config())
    errors: list[Any] = []
    for value in values:
        producer.produce(
            topic, value=value, key=key, on_delivery=lambda err, _msg: err and errors.append(err)
        )
    assert producer.flush(30) == 0
    assert not errors


@pytest.fixture
def published(make_settings, make_decision, make_alert) -> Settings:
    """Two minutes of decisions and their alerts, with redeliveries and one malformed message; the
    alerts are v1 but u2's, a v2 alert with an explanation.

    minute 0: 10 transactions, 2 unauthorized (20 %), 1 identity theft (10 %), one allowed with a type;
    minute 1: 4 transactions, 1 malicious (25 %).
    """
    settings = make_settings()
    flagged = [
        make_decision("u1", second=1, decision="review", fraud_type="unauthorized_transactions"),
        make_decision("u2", second=2, decision="block", fraud_type="unauthorized_transactions", amount=70),
        make_decision("i1", second=3, decision="review", fraud_type="identity_theft"),
        make_decision("m1", minute=1, second=4, decision="block", fraud_type="malicious_behavior", amount=1),
    ]
    allowed = [make_decision("a0", second=9, fraud_type="malicious_behavior")]
    allowed += [make_decision(f"a{i}", second=10 + i) for i in range(1, 7)]
    allowed += [make_decision(f"b{i}", minute=1, second=i) for i in range(3)]
    decisions = flagged + allowed
    alerts = [make_alert(d, explanation=EXPLANATION if d is flagged[1] else None) for d in flagged]
    check_decision, check_alert = _validator(settings, "decision"), _validator(settings, "alert", 2)
    for record in decisions:
        check_decision(record)
    for record in alerts:
        check_alert(record)
    redelivered = [flagged[0], allowed[0], flagged[3]]
    values = [orjson.dumps(d) for d in decisions + redelivered] + [b"not json"]
    _produce(settings, settings.topic_decisions, values)
    _produce(settings, settings.topic_alerts, [orjson.dumps(a) for a in [*alerts, alerts[1]]])
    return settings


def _consumed(feed: KafkaFeed, topic: str) -> float:
    value = feed.metrics.registry.get_sample_value("fraud_monitor_messages_consumed_total", {"topic": topic})
    return value or 0.0


def _all_read(feed: KafkaFeed, settings: Settings) -> bool:
    return _consumed(feed, settings.topic_decisions) >= 18 and _consumed(feed, settings.topic_alerts) >= 5


def test_feed_rebuilds_exact_counts_from_the_topics(published: Settings, base_minute) -> None:
    feed = KafkaFeed(published, metrics=MonitorMetrics())
    feed.start()
    try:
        assert feed.wait_until(lambda: _all_read(feed, published), TIMEOUT), "feed did not read everything"
        assert feed.running and feed.failure is None
    finally:
        feed.stop()
    assert not feed.running

    agg = feed.state.decisions
    assert agg.transaction_count == 14
    series = {code: agg.fraud_rate_series(code) for code in FRAUD_TYPE_NAMES}
    assert series["unauthorized_transactions"].rates == [pytest.approx(0.2), 0.0]
    assert series["identity_theft"].rates == [pytest.approx(0.1), 0.0]
    assert series["malicious_behavior"].rates == [0.0, pytest.approx(0.25)]
    assert series["identity_theft"].minutes[0] == base_minute
    headline = agg.headline()
    assert (headline.total, headline.flagged) == (14, 4)
    assert dict(headline.outcomes) == {"allow": 10, "review": 2, "block": 2}
    assert dict(headline.blocked_amount) == {"EUR": 71.0}
    assert [a["alert_id"] for a in feed.state.alerts.newest()] == ["m1", "i1", "u2", "u1"]
    assert [len(alert_factors(a)) for a in feed.state.alerts.newest()] == [0, 0, 3, 0], "v1 and v2 alike"

    registry = feed.metrics.registry
    assert _consumed(feed, published.topic_decisions) == 18
    assert _consumed(feed, published.topic_alerts) == 5
    assert registry.get_sample_value("fraud_monitor_malformed_messages_total") == 1
    duplicates = {"topic": published.topic_decisions, "reason": "duplicate"}
    assert registry.get_sample_value("fraud_monitor_ignored_messages_total", duplicates) == 3
    last = agg.last_decision_at
    assert last is not None
    assert registry.get_sample_value("fraud_monitor_last_decision_timestamp_seconds") == last.timestamp()


def test_app_serves_the_feed(published: Settings) -> None:
    feed = KafkaFeed(published, metrics=MonitorMetrics())
    app = create_app(feed.state, published, registry=feed.metrics.registry, accounts=make_accounts())
    with feed:
        assert feed.wait_until(lambda: _all_read(feed, published), TIMEOUT)
        client = app.server.test_client()
        assert client.get("/").status_code == 302, "the page needs a login"
        assert login_client(client, *ANALYST).status_code == 302
        assert client.get("/").status_code == 200
        layout = client.get("/_dash-layout").get_data(as_text=True)
        for needle in ('"fraud-graph"', '"fraud-type"', "Fraud Detection Dashboard", "Select fraud type:"):
            assert needle in layout
        metrics = client.get("/metrics").get_data(as_text=True)
        assert "fraud_monitor_messages_consumed_total" in metrics
        assert f'fraud_monitor_messages_consumed_total{{topic="{published.topic_decisions}"}} 18.0' in metrics
        assert client.get("/healthz").get_data(as_text=True) == "ok"
        expected = {
            "Unauthorized Transactions": [0.2, 0.0],
            "Identity Theft": [0.1, 0.0],
            "Malicious Behavior": [0.0, 0.25],
        }
        for name, rates in expected.items():
            figure, _ = update_graph(feed.state, name, None)
            assert list(figure.data[0].y) == pytest.approx(rates)


def test_feed_is_ready_once_caught_up_and_reports_its_lag(published: Settings, make_decision) -> None:
    metrics = MonitorMetrics()
    feed = KafkaFeed(published, metrics=metrics)
    app = create_app(feed.state, published, feed=feed, metrics=metrics, accounts=make_accounts())
    client = app.server.test_client()
    assert client.get("/readyz").status_code == 503, "not ready before the feed runs"

    def lags() -> dict[tuple[str, str], float]:
        return {
            (s.labels["topic"], s.labels["partition"]): s.value
            for family in metrics.registry.collect()
            if family.name == "fraud_monitor_consumer_lag_messages"
            for s in family.samples
        }

    topics = [*feed.topics, feed.scored_topic, feed.health_topic, feed.audit_topic]  # read as well
    every_partition = {(t, str(p)) for t in topics for p in range(published.topic_partitions)}
    with feed:
        assert feed.wait_until(lambda: feed.ready, TIMEOUT), "the feed never caught up"
        # Ready means read up to the end offsets of the start: everything published before.
        assert _consumed(feed, published.topic_decisions) == 18
        assert _consumed(feed, published.topic_alerts) == 5
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.get_json() == {"ready": True, "feed": "caught up"}
        assert metrics.registry.get_sample_value("fraud_monitor_feed_ready") == 1
        assert feed.wait_until(lambda: lags() == dict.fromkeys(every_partition, 0.0), TIMEOUT), lags()

        more = [orjson.dumps(make_decision(f"n{i}")) for i in range(3)]
        _produce(published, published.topic_decisions, more)
        assert feed.wait_until(lambda: _consumed(feed, published.topic_decisions) == 21, TIMEOUT)
        assert feed.wait_until(lambda: set(lags().values()) == {0.0}, TIMEOUT), lags()
        assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503, "a stopped feed is not ready"


def test_lag_shows_the_backlog_while_the_feed_catches_up(make_settings, make_decision) -> None:
    settings = make_settings()
    backlog = 3000
    decisions = [orjson.dumps(make_decision(f"b{i}", second=i % 60)) for i in range(backlog)]
    _produce(settings, settings.topic_decisions, decisions)
    metrics = MonitorMetrics()
    feed = KafkaFeed(settings, metrics=metrics)

    def lag() -> float:
        return sum(
            s.value
            for family in metrics.registry.collect()
            if family.name == "fraud_monitor_consumer_lag_messages"
            for s in family.samples
        )

    seen: list[float] = []
    with feed:
        # The first refresh follows the first batch (at most BATCH_SIZE messages): the rest is lag,
        # shown until the next refresh LAG_REFRESH_SECONDS later.
        assert feed.wait_until(lambda: seen.append(lag()) or seen[-1] > 0, TIMEOUT, interval=0.005)
        assert backlog - BATCH_SIZE <= max(seen) <= backlog
        assert feed.wait_until(lambda: feed.ready and lag() == 0, TIMEOUT), lag()
        assert _consumed(feed, settings.topic_decisions) == backlog
