"""The monitor under gunicorn (the production WSGI server) against the real broker: log in over
HTTP with the form's CSRF token, load the page and the layout, run a callback, read /api/summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from werkzeug.security import generate_password_hash

from pipeline.config import REPO_ROOT, Settings
from tests.conftest import free_port
from tests.monitor.logins import ANALYST, csrf_token
from tests.monitor.test_feed_kafka import published  # noqa: F401 - fixture reused

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

GUNICORN_ARGS = ["--workers", "1", "--threads", "4", "monitor.wsgi:create_server()"]
"""As in the README, with the address added by the test."""


def _wait_for(predicate, timeout: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if predicate():
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"not ready within {timeout} s:\n{log.read_text()[-4000:]}")


def test_monitor_runs_under_gunicorn(published: Settings, tmp_path: Path) -> None:  # noqa: F811
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    users = {ANALYST[0]: {"password_hash": generate_password_hash(ANALYST[1]), "role": "analyst"}}
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.update(published.to_environment())
    env.update(FRAUD_MONITOR_USERS=json.dumps(users), FRAUD_MONITOR_SECRET_KEY="s" * 40)
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *GUNICORN_ARGS],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for(lambda: requests.get(f"{url}/healthz", timeout=2).status_code == 200, 60, process, log)
            # the feed runs in the worker: the summary fills from the broker
            _wait_for(
                lambda: requests.get(f"{url}/api/summary", timeout=2).json()["transactions"] == 14,
                60,
                process,
                log,
            )
            summary = requests.get(f"{url}/api/summary", timeout=5).json()
            assert summary["outcomes"] == {"allow": 10, "review": 2, "block": 2}
            assert summary["alerts_queued"] == 4

            browser = requests.Session()
            form = browser.get(f"{url}/", timeout=5)
            assert form.url == f"{url}/login?next=%2F" and 'id="username"' in form.text
            wrong = browser.post(
                f"{url}/login",
                data={"username": ANALYST[0], "password": "nope", "csrf_token": csrf_token(form.text)},
                timeout=10,
            )
            assert wrong.status_code == 401 and "Wrong user name or password." in wrong.text
            page = browser.post(
                f"{url}/login",
                data={
                    "username": ANALYST[0],
                    "password": ANALYST[1],
                    "csrf_token": csrf_token(wrong.text),
                    "next": "/?type=Identity+Theft",
                },
                timeout=10,
            )
            assert page.status_code == 200 and page.url == f"{url}/?type=Identity+Theft"
            assert "_dash-config" in page.text
            layout = browser.get(f"{url}/_dash-layout", timeout=5)
            assert layout.status_code == 200
            for needle in (
                '"fraud-graph"',
                '"fraud-type"',
                "Fraud Detection Dashboard",
                "Block and allow lists",
            ):
                assert needle in layout.text
            figure = browser.post(
                f"{url}/_dash-update-component",
                json={
                    "output": "..fraud-graph.figure...graph-rendered.data..",
                    "outputs": [
                        {"id": "fraud-graph", "property": "figure"},
                        {"id": "graph-rendered", "property": "data"},
                    ],
                    "inputs": [
                        {"id": "refresh", "property": "n_intervals", "value": 1},
                        {"id": "fraud-type", "property": "value", "value": "Identity Theft"},
                        {"id": "view-range", "property": "data", "value": {"range": "all"}},
                        {"id": "theme", "property": "data", "value": None},
                    ],
                    "state": [{"id": "graph-rendered", "property": "data", "value": None}],
                    "changedPropIds": ["fraud-type.value"],
                },
                timeout=10,
            )
            assert figure.status_code == 200, figure.text[:500]
            trace = figure.json()["response"]["fraud-graph"]["figure"]["data"][0]
            assert trace["y"] == [0.1, 0.0]
            assert requests.get(f"{url}/_dash-layout", timeout=5).status_code == 401, "no session, no layout"
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    text = log.read_text()
    assert process.returncode == 0, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    assert "monitor feed reading" in text
    assert "list feed caught up" in text, "the block/allow lists are read too"


def test_gunicorn_stops_with_one_line_when_the_broker_does_not_answer(tmp_path: Path) -> None:
    """As `fraud monitor` does: the broker is checked before the app is built; gunicorn stops."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.update(FRAUD_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", FRAUD_KAFKA_CONNECT_TIMEOUT_SECONDS="2",
               FRAUD_DATA_DIR=str(tmp_path))  # fmt: skip
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{free_port()}", *GUNICORN_ARGS],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=45,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")[-2000:].decode(errors="replace")
        raise AssertionError(f"gunicorn still serving after 45 s without a broker:\n{tail}") from None
    elapsed = time.monotonic() - started
    assert result.returncode == 4, result.stderr  # gunicorn's "App failed to load"
    assert "fraud: cannot reach Kafka at 127.0.0.1:1 within 2 s" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert elapsed < 30
