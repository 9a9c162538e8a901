"""Login rate limiting: the pure throttle with a hand-driven clock, then the login form refusing
with 429 after too many failures."""

from __future__ import annotations

import threading

import pytest

from monitor.app import create_app
from monitor.auth import IP_FAILURE_FACTOR
from monitor.ratelimit import LoginThrottle, wait_text
from monitor.state import MonitorState
from monitor.state.alerts import AlertStore
from monitor.state.decisions import DecisionAggregator
from pipeline.config import load_settings
from tests.monitor.logins import ANALYST, VIEWER, csrf_token, make_accounts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_locks_after_max_failures_in_the_window(clock) -> None:
    throttle = LoginThrottle(3, window_seconds=60, lockout_seconds=300, clock=clock)
    assert throttle.failed(["k"]) is None
    clock.now += 10
    assert throttle.failed(["k"]) is None
    assert throttle.retry_after(["k"]) is None
    clock.now += 10
    assert throttle.failed(["k"]) == 300, "the third failure within a minute locks"
    assert throttle.retry_after(["k"]) == 300
    clock.now += 299
    assert throttle.retry_after(["k"]) == pytest.approx(1)
    assert throttle.retry_after(["other"]) is None, "other keys are not affected"
    clock.now += 1
    assert throttle.retry_after(["k"]) is None, "the lockout ends"
    assert throttle.failed(["k"]) is None, "and the count starts afresh"


def test_failures_outside_the_window_do_not_count(clock) -> None:
    throttle = LoginThrottle(3, window_seconds=60, lockout_seconds=300, clock=clock)
    for _ in range(10):
        assert throttle.failed(["k"]) is None
        clock.now += 31  # never three within 60 s
    assert throttle.retry_after(["k"]) is None


def test_success_forgets_the_failures(clock) -> None:
    throttle = LoginThrottle(3, window_seconds=60, lockout_seconds=300, clock=clock)
    throttle.failed(["k"])
    throttle.failed(["k"])
    throttle.succeeded(["k"])
    assert throttle.failed(["k"]) is None
    assert throttle.failed(["k"]) is None
    assert throttle.failed(["k"]) == 300


def test_memory_is_bounded_by_max_keys(clock) -> None:
    throttle = LoginThrottle(2, window_seconds=60, lockout_seconds=300, clock=clock, max_keys=100)
    throttle.failed(["victim"])
    throttle.failed(["victim"])  # locked
    for i in range(1000):
        throttle.failed([f"spray-{i}"])
    assert len(throttle) <= 100
    assert throttle.retry_after(["victim"]) == 300, "a flood of new keys does not lift a lockout"


def test_threads_count_every_failure(clock) -> None:
    throttle = LoginThrottle(400, window_seconds=60, lockout_seconds=300, clock=clock)
    locked: list[float | None] = []

    def hammer() -> None:
        for _ in range(100):
            locked.append(throttle.failed(["k"]))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert locked.count(300) == 1, "exactly the 400th failure locks"


def test_bad_parameters_are_refused() -> None:
    for args in ((0, 60, 60), (3, 0, 60), (3, 60, -1)):
        with pytest.raises(ValueError):
            LoginThrottle(*args)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.2, "1 second"), (40, "40 seconds"), (90, "90 seconds"), (300, "5 minutes")]
)
def test_wait_text(seconds: float, text: str) -> None:
    assert wait_text(seconds) == text


# --- the login form ----------------------------------------------------------------------------------
def _post(client, name: str, password: str):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login", data={"username": name, "password": password, "csrf_token": token, "next": "/"}
    )


def test_login_form_refuses_after_too_many_failures() -> None:
    settings = load_settings(monitor_login_max_failures=3, monitor_login_lockout_seconds=600)
    state = MonitorState(DecisionAggregator(10), AlertStore(10))
    app = create_app(state, settings, publish=lambda _label: None, accounts=make_accounts())
    attacker = app.server.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.7"
    for _ in range(2):
        assert _post(attacker, ANALYST[0], "guess").status_code == 401
    third = _post(attacker, ANALYST[0], "guess")
    assert third.status_code == 429
    assert "Too many failed logins. Try again in 10 minutes." in third.get_data(as_text=True)
    assert third.headers["Retry-After"] == "600"
    right = _post(attacker, ANALYST[0], ANALYST[1])
    assert right.status_code == 429, "even the right password is refused while locked"
    assert attacker.get("/").status_code == 302, "not logged in"
    # another user from that address, and the same user from elsewhere, may still log in
    assert _post(attacker, *VIEWER).status_code == 302
    colleague = app.server.test_client()
    colleague.environ_base["REMOTE_ADDR"] = "198.51.100.20"
    assert _post(colleague, *ANALYST).status_code == 302
    assert colleague.get("/").status_code == 200


def test_one_address_trying_many_names_is_refused_too() -> None:
    settings = load_settings(monitor_login_max_failures=2, monitor_login_lockout_seconds=60)
    state = MonitorState(DecisionAggregator(10), AlertStore(10))
    app = create_app(state, settings, publish=lambda _label: None, accounts=make_accounts())
    sprayer = app.server.test_client()
    sprayer.environ_base["REMOTE_ADDR"] = "203.0.113.8"
    statuses = [_post(sprayer, f"user{i}", "guess").status_code for i in range(2 * IP_FAILURE_FACTOR)]
    assert statuses == [401] * (2 * IP_FAILURE_FACTOR - 1) + [429]
    assert _post(sprayer, *VIEWER).status_code == 429, "the whole address waits"
