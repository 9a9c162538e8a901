"""`fraud demo` as a user runs it: everything starts, the monitor shows all three fraud types,
and Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests

from pipeline.config import REPO_ROOT
from tests.conftest import free_port
from tests.support import start_demo

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _monitor_log(env: dict[str, str]) -> str:
    """The monitor's log of the demo (the demo writes each child's output to demo-logs/)."""
    logs = Path(env["FRAUD_DATA_DIR"]) / "demo-logs" / "monitor.log"
    return logs.read_text(errors="replace") if logs.exists() else ""


def _demo_env(unique: str, kafka_bootstrap: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a demo on topics, app id, data folder and ports of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        FRAUD_APP_ID=unique,
        FRAUD_TOPIC_TRANSACTIONS=f"{unique}-transactions",
        FRAUD_TOPIC_DECISIONS=f"{unique}-decisions",
        FRAUD_TOPIC_ALERTS=f"{unique}-alerts",
        FRAUD_TOPIC_LABELS=f"{unique}-labels",
        FRAUD_TOPIC_DEAD_LETTER=f"{unique}-dead-letter",
        FRAUD_DATA_DIR=str(tmp_path / "var"),
        FRAUD_WORKER_WEB_PORT=str(free_port()),
        FRAUD_MONITOR_PORT=str(free_port()),
        FRAUD_SIMULATOR_METRICS_PORT=str(free_port()),
        **extra,
    )
    return env


def test_demo_shows_all_three_fraud_types_and_stops_cleanly(kafka_bootstrap: str, tmp_path: Path) -> None:
    unique = f"demo-{os.getpid()}-{int(time.time())}"
    env = _demo_env(unique, kafka_bootstrap, tmp_path)
    output = tmp_path / "demo.out"
    demo, url = start_demo(env, output)
    try:
        shown_at = time.monotonic()
        summary: dict = {}
        while time.monotonic() - shown_at < 120:
            summary = requests.get(f"{url}api/summary", timeout=5).json()
            if all(rate > 0 for rate in summary["fraud_rate_by_type"].values()):
                break
            time.sleep(2)
        seconds = time.monotonic() - shown_at
        print(f"all three fraud types shown {seconds:.0f}s after the URL was printed: {summary}")
        assert all(rate > 0 for rate in summary["fraud_rate_by_type"].values()), summary
        assert set(summary["fraud_rate_by_type"]) == {
            "Unauthorized Transactions",
            "Identity Theft",
            "Malicious Behavior",
        }
        # /api/summary, /healthz and /metrics are for machines (no login); the page needs one
        assert requests.get(f"{url}healthz", timeout=5).status_code == 200
        assert requests.get(f"{url}metrics", timeout=5).status_code == 200
        anonymous = requests.get(url, timeout=5)
        assert "/login" in anonymous.url and 'id="username"' in anonymous.text, "login first"
        assert "demo logins analyst/analyst" in (tmp_path / "demo.out").read_text() + _monitor_log(env)
        browser = requests.Session()
        form = browser.get(f"{url}login", timeout=5).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token, form
        login = browser.post(
            f"{url}login",
            data={"username": "analyst", "password": "analyst", "csrf_token": token.group(1), "next": "/"},
            timeout=10,
        )
        assert login.status_code == 200 and "_dash-config" in login.text, "the Dash page is served"
        children = psutil.Process(demo.pid).children(recursive=True)
        assert len(children) >= 3, "worker, simulator and monitor run as child processes"
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(60)
    assert code == 0, output.read_text()
    assert all(not child.is_running() or child.status() == psutil.STATUS_ZOMBIE for child in children), (
        "Ctrl-C stops every process the demo started"
    )
    text = output.read_text()
    for name in ("worker", "monitor", "simulator"):
        assert f"{name} stopped." in text


def test_make_demo_stops_every_process_on_sigterm(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`timeout make demo` sends SIGTERM to make's process group: the demo gets it twice, from
    `timeout` and passed on by make (its recipe is the demo itself, run without a shell). The
    second must not cut short the stop of what the demo started."""
    unique = f"mkdemo-{os.getpid()}-{int(time.time())}"
    env = _demo_env(unique, kafka_bootstrap, tmp_path, FRAUD_TOPIC_LISTS=f"{unique}-list-updates")
    output = tmp_path / "make-demo.out"
    with output.open("wb") as out:  # -o setup: the environment is set up already
        make = subprocess.Popen(["make", "-o", "setup", "demo"], cwd=REPO_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 180
        while "Fraud monitor: http" not in output.read_text():
            assert make.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.5)
        started = psutil.Process(make.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in started)
        assert all(f"pipeline {name}" in names for name in ("worker", "monitor", "simulate")), names
        os.killpg(make.pid, signal.SIGTERM)  # as `timeout` does: make and the demo, not the children
        make.wait(60)
        _, alive = psutil.wait_procs(started, timeout=60)
        left = [" ".join(p.cmdline()) for p in alive]
    finally:
        for process in started:  # whatever is left, killed for the next tests
            if process.is_running():
                process.kill()
    assert not left, f"still running after SIGTERM to make: {left}\n{output.read_text()}"
    text = output.read_text()
    for name in ("worker", "monitor", "simulator"):
        assert f"{name} stopped." in text, text
