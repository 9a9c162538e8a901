"""The monitor's machine endpoints through Flask's test client: /readyz without a feed, and the
active-sessions gauge (logged-in browsers with a recent request). /readyz with a real feed is in
test_feed_kafka.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from monitor.app import create_app
from monitor.metrics import ActiveSessions, MonitorMetrics
from monitor.state import MonitorState
from monitor.state.alerts import AlertStore
from monitor.state.decisions import DecisionAggregator
from pipeline.config import load_settings
from tests.monitor.logins import ANALYST, VIEWER, login_client, make_accounts


@pytest.fixture
def state(make_decision) -> MonitorState:
    st = MonitorState(DecisionAggregator(60), AlertStore(50))
    st.decisions.add(make_decision("a0"))
    return st


@pytest.fixture
def published() -> list[Mapping[str, Any]]:
    """Labels the app published (no broker in these tests)."""
    return []


def test_readyz_is_public_and_ready_without_a_feed(state, published) -> None:
    app = create_app(state, load_settings(), publish=published.append, accounts=make_accounts())
    response = app.server.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"ready": True, "feed": None}


def test_active_sessions_counts_logged_in_browsers_only(state, published) -> None:
    metrics = MonitorMetrics()
    app = create_app(
        state, load_settings(), metrics=metrics, publish=published.append, accounts=make_accounts()
    )

    def active() -> float | None:
        return metrics.registry.get_sample_value("fraud_monitor_active_sessions")

    anonymous = app.server.test_client()
    anonymous.get("/")
    anonymous.get("/metrics")
    assert active() == 0
    clients = [app.server.test_client() for _ in range(2)]
    for client, (name, password) in zip(clients, (ANALYST, VIEWER), strict=True):
        assert login_client(client, name, password).status_code == 302
        assert client.get("/").status_code == 200
    assert active() == 2
    clients[0].get("/logout")
    clients[0].get("/")
    assert active() == 2, "a session stays active for the window after its last request"
    body = app.server.test_client().get("/metrics").get_data(as_text=True)
    assert "fraud_monitor_active_sessions 2.0" in body


def test_active_sessions_forget_idle_sessions() -> None:
    now = [1000.0]
    sessions = ActiveSessions(60, clock=lambda: now[0])
    sessions.seen("a")
    now[0] += 30
    sessions.seen("b")
    assert sessions.count() == 2
    now[0] += 31
    assert sessions.count() == 1
    sessions.seen("a")
    assert sessions.count() == 2
    now[0] += 61
    assert sessions.count() == 0


class FeedState:
    """A feed's status as the health endpoints read it (the real KafkaFeed: test_feed_kafka.py)."""

    def __init__(self, running: bool, ready: bool, failure: BaseException | None = None) -> None:
        self.running, self.ready, self.failure = running, ready, failure


@pytest.mark.parametrize(
    ("feed", "health", "readiness"),
    [
        (FeedState(running=True, ready=False), 200, (503, "running")),
        (FeedState(running=True, ready=True), 200, (200, "caught up")),
        (FeedState(running=False, ready=False), 200, (503, "stopped")),
        (FeedState(False, False, RuntimeError("fatal: broker gone")), 503, (503, "stopped")),
    ],
    ids=["catching-up", "caught-up", "stopped", "failed"],
)
def test_health_follows_the_feed(state, published, feed, health, readiness) -> None:
    app = create_app(state, load_settings(), publish=published.append, accounts=make_accounts(), feed=feed)
    client = app.server.test_client()
    healthz = client.get("/healthz")
    assert healthz.status_code == health
    if feed.failure is not None:
        assert "fatal: broker gone" in healthz.get_data(as_text=True)
    readyz = client.get("/readyz")
    assert (readyz.status_code, readyz.get_json()["feed"]) == readiness
    assert readyz.get_json()["ready"] is (readiness[0] == 200)
