"""`fraud monitor` (Flask's own server) logs the requests of people, not Prometheus' scrapes of
/metrics, which come every few seconds."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from pipeline.config import REPO_ROOT

pytestmark = [pytest.mark.kafka]


def test_metrics_scrapes_leave_no_access_log_line(make_settings, tmp_path: Path) -> None:
    settings = make_settings()
    url = f"http://127.0.0.1:{settings.monitor_port}"
    log = tmp_path / "monitor.log"
    with log.open("wb") as out:
        monitor = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "monitor"],
            cwd=REPO_ROOT,
            env=settings.child_environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not _answers(f"{url}/healthz"):
            assert monitor.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        for _ in range(3):
            assert requests.get(f"{url}/metrics", timeout=5).status_code == 200
        assert requests.get(f"{url}/metrics?name[]=up", timeout=5).status_code == 200
        assert requests.get(f"{url}/api/summary", timeout=5).status_code == 200
        time.sleep(0.5)
    finally:
        monitor.terminate()
        monitor.wait(30)
    text = log.read_text()
    assert '"GET /api/summary HTTP/1.1" 200' in text, "other requests are still logged"
    assert "GET /metrics" not in text, text[-3000:]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
