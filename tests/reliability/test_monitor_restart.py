"""A monitor (re)started after traffic rebuilds its view from the retained topics, and its memory
stays within its caps: the alert queue at FRAUD_MONITOR_MAX_ALERTS, the per-minute counts (and
the transaction ids kept to deduplicate) at FRAUD_MONITOR_HISTORY_MINUTES, whatever arrived.

Real broker, the real KafkaFeed; the records are schema-valid decisions, alerts and labels.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.consumer import KafkaFeed
from monitor.metrics import MonitorMetrics
from monitor.state.records import FLAGGED_DECISIONS
from pipeline.config import FRAUD_TYPES, Settings
from tests.monitor.conftest import alert_record, decision_record
from tests.support import produce

pytestmark = pytest.mark.kafka

MAX_ALERTS = 10
HISTORY_MINUTES = 5
BASE = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)


def traffic(first_minute: int, minutes: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per minute: two allowed and three flagged decisions (one per fraud type), with alerts."""
    decisions, alerts = [], []
    for minute in range(first_minute, first_minute + minutes):
        for i in range(2):
            decisions.append(decision_record(f"ok-{minute}-{i}", minute=minute, second=i, base=BASE))
        for i, fraud_type in enumerate(FRAUD_TYPES):
            flagged = decision_record(
                f"alert-{minute}-{i}",
                minute=minute,
                second=10 + i,
                decision="block" if i == 0 else "review",
                fraud_type=fraud_type,
                base=BASE,
            )
            decisions.append(flagged)
            alerts.append(alert_record(flagged))
    return decisions, alerts


def analyst_label(alert: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "transaction_id": alert["transaction_id"],
        "card_token": alert["card_token"],
        "is_fraud": True,
        "fraud_type": alert["fraud_type"],
        "source": "analyst",
        "analyst": "alice",
        "comment": "confirmed by phone",
        "labelled_at": datetime.now(UTC).isoformat(),
    }


def publish(settings: Settings, decisions: list[dict], alerts: list[dict], labels: list[dict]) -> None:
    produce(settings, settings.topic_decisions, [(d["card_token"], d) for d in decisions])
    produce(settings, settings.topic_alerts, [(a["card_token"], a) for a in alerts])
    produce(settings, settings.topic_labels, [(lab["card_token"], lab) for lab in labels])


def consumed(feed: KafkaFeed, topic: str) -> float:
    value = feed.metrics.registry.get_sample_value("fraud_monitor_messages_consumed_total", {"topic": topic})
    return value or 0.0


def caught_up(feed: KafkaFeed, settings: Settings, decisions: int, alerts: int, labels: int) -> bool:
    return (
        consumed(feed, settings.topic_decisions) >= decisions
        and consumed(feed, settings.topic_alerts) >= alerts
        and consumed(feed, settings.topic_labels) >= labels
    )


def expected_view(decisions: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """What a monitor with the caps must show: the newest alerts, the counts of the last minutes."""
    newest_minute = max(datetime.fromisoformat(d["event_time"]) for d in decisions).replace(second=0)
    cutoff = newest_minute - timedelta(minutes=HISTORY_MINUTES - 1)
    kept = [d for d in decisions if datetime.fromisoformat(d["event_time"]) >= cutoff]
    by_time = sorted(alerts, key=lambda a: (datetime.fromisoformat(a["event_time"]), a["alert_id"]))
    return {
        "total": len(kept),
        "flagged": sum(d["decision"] in FLAGGED_DECISIONS for d in kept),
        "minutes": HISTORY_MINUTES,
        "queue": [a["alert_id"] for a in reversed(by_time[-MAX_ALERTS:])],
    }


def view_of(feed: KafkaFeed) -> dict[str, Any]:
    headline = feed.state.decisions.headline()
    return {
        "total": headline.total,
        "flagged": headline.flagged,
        "minutes": len(feed.state.decisions.minutes()),
        "queue": [a["alert_id"] for a in feed.state.alerts.newest()],
    }


def test_a_restarted_monitor_catches_up_within_its_caps(make_settings) -> None:
    settings = make_settings(monitor_max_alerts=MAX_ALERTS, monitor_history_minutes=HISTORY_MINUTES)
    decisions, alerts = traffic(0, 20)  # 100 decisions, 60 alerts: six times the queue's cap
    labels = [analyst_label(alerts[-1])]
    publish(settings, decisions, alerts, labels)

    first = KafkaFeed(settings, metrics=MonitorMetrics())
    with first:  # started after the traffic: it catches up from the earliest retained offsets
        assert first.wait_until(
            lambda: caught_up(first, settings, len(decisions), len(alerts), len(labels)), 60
        ), "the monitor did not catch up"
        assert view_of(first) == expected_view(decisions, alerts)
        assert len(first.state.alerts) == MAX_ALERTS, "the alert queue stays at its cap"
        assert first.state.decisions.transaction_count == expected_view(decisions, alerts)["total"], (
            "ids kept for deduplication are bounded by the history too"
        )
        assert first.state.verdicts.get(alerts[-1]["alert_id"]) is not None

    more_decisions, more_alerts = traffic(20, 10)  # while the monitor is down
    publish(settings, more_decisions, more_alerts, [])
    all_decisions, all_alerts = decisions + more_decisions, alerts + more_alerts

    restarted = KafkaFeed(settings, metrics=MonitorMetrics())
    with restarted:
        assert restarted.wait_until(
            lambda: caught_up(restarted, settings, len(all_decisions), len(all_alerts), len(labels)), 60
        ), "the restarted monitor did not catch up"
        assert view_of(restarted) == expected_view(all_decisions, all_alerts)
        assert len(restarted.state.alerts) == MAX_ALERTS
        assert restarted.state.verdicts.get(alerts[-1]["alert_id"]) is not None, "verdicts survive it"
        # The same records again (a producer's retry, a replay): nothing is counted twice.
        publish(settings, more_decisions, more_alerts, [])
        assert restarted.wait_until(
            lambda: caught_up(
                restarted,
                settings,
                len(all_decisions) + len(more_decisions),
                len(all_alerts) + len(more_alerts),
                1,
            ),
            60,
        )
        assert view_of(restarted) == expected_view(all_decisions, all_alerts)
