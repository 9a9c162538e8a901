"""`fraud demo` a second time on the same machine (issue 22, item 4): it finds the local broker
running and leaves it running, waits while the worker restores its tables with a progress bar,
and shows decisions; and when nothing moves, it gives up with one line, not a traceback."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from pipeline.config import REPO_ROOT, Settings
from pipeline.tools.local_kafka import LocalKafka
from tests.e2e.test_demo import _demo_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _start(env: dict[str, str], output: Path, *arguments: str) -> subprocess.Popen[bytes]:
    with output.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline", "demo", *arguments],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _monitor_url(demo: subprocess.Popen[bytes], output: Path, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert demo.poll() is None, output.read_text()
        match = re.search(r"Fraud monitor: (http://\S+)", output.read_text())
        if match:
            return match.group(1)
        time.sleep(0.5)
    raise AssertionError(f"the demo never printed the monitor's URL:\n{output.read_text()}")


def _decisions(url: str, at_least: int, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline:
        total = requests.get(f"{url}api/summary", timeout=5).json()["transactions"]
        if total >= at_least:
            return total
        time.sleep(1)
    raise AssertionError(f"the monitor shows {total} decisions, expected {at_least}")


def _stop(demo: subprocess.Popen[bytes], output: Path) -> str:
    demo.send_signal(signal.SIGINT)
    assert demo.wait(60) == 0, output.read_text()
    return output.read_text()


def test_a_second_demo_waits_for_recovery_and_leaves_the_broker_it_found(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("needs the session's local broker (the demo must find it running)")
    port = int(kafka_bootstrap.rsplit(":", 1)[1])
    unique = f"demo2-{os.getpid()}-{int(time.time())}"
    env = _demo_env(unique, kafka_bootstrap, tmp_path, FRAUD_TOPIC_LISTS=f"{unique}-list-updates")
    # As `make demo` runs it: no cluster named, the local broker on its port (running already).
    del env["KAFKA_BOOTSTRAP_SERVERS"]
    env["FRAUD_LOCAL_KAFKA_PORT"] = str(port)
    broker = LocalKafka(Settings().local_kafka_version, port, Settings().local_kafka_home)

    first = _start(env, tmp_path / "first.out", "--rate", "400")
    _decisions(_monitor_url(first, tmp_path / "first.out"), at_least=1000)
    text = _stop(first, tmp_path / "first.out")
    assert f"Local Kafka already running on 127.0.0.1:{port}: used, and left running." in text, text
    assert "Local Kafka stopped." not in text, text
    assert broker.running(), "the demo stopped a broker it had not started"

    shutil.rmtree(tmp_path / "var")  # a fresh checkout: the worker restores every table
    # Through Faust's own recovery, slow enough for the bar to show (in bulk it takes a blink).
    env["FRAUD_WORKER_BULK_RESTORE_MIN_RECORDS"] = str(10**9)
    second = _start(env, tmp_path / "second.out")
    try:
        url = _monitor_url(second, tmp_path / "second.out")
        shown = _decisions(url, at_least=1)
        assert _decisions(url, at_least=shown + 20) > shown, "new decisions after the restart"
        children = psutil.Process(second.pid).children(recursive=True)
    finally:
        text = _stop(second, tmp_path / "second.out")
    # The demo waited through the recovery: its bar when the restore lasted past the first redraw,
    # else at least the worker's "recovering" state (on a quiet machine Faust's path can be that fast;
    # the bar itself is tested offline).
    bar = "worker: [" in text and re.search(r"restoring its tables [\d,]+ of [\d,]+ records", text)
    assert bar or "worker: recovering" in text, text
    assert "Traceback" not in text
    assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert broker.running()
    worker_log = (tmp_path / "var" / "demo-logs" / "worker.log").read_text(errors="replace")
    assert "table recovery done:" in worker_log, worker_log[-3000:]


def test_the_demo_gives_up_in_one_line_when_nothing_moves(kafka_bootstrap: str, tmp_path: Path) -> None:
    unique = f"demo3-{os.getpid()}-{int(time.time())}"
    # Less than the readiness poll's half second: the first two answers of a starting process are
    # always the same ("not answering yet"), however fast the machine (with 2 s, a quiet machine's
    # demo came up without a stall and never gave up).
    env = _demo_env(unique, kafka_bootstrap, tmp_path, FRAUD_DEMO_NO_PROGRESS_TIMEOUT_SECONDS="0.3")
    output = tmp_path / "demo.out"
    demo = _start(env, output)
    try:
        assert demo.wait(120) == 1, output.read_text()
    finally:
        if demo.poll() is None:
            _stop(demo, output)  # Ctrl-C: the demo stops its children
    text = output.read_text()
    assert "Traceback" not in text, text
    [line] = [line for line in text.splitlines() if line.startswith("fraud demo:")]
    assert re.fullmatch(
        r"fraud demo: (monitor|worker) made no progress for 0.3 s \(.+\); see .+demo-logs; "
        r"FRAUD_DEMO_NO_PROGRESS_TIMEOUT_SECONDS sets how long to wait",
        line,
    ), line
    for name in ("worker", "monitor", "simulator"):
        assert f"{name} stopped." in text, text
