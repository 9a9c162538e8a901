"""The short soak: `fraud soak` as an operator runs it, for three minutes, with one SIGKILL of a worker
and one restart of its own broker. Every produced id is decided, nothing is dead-lettered, the
monitor counts each transaction once, and the report holds every process's memory over time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from pipeline.config import REPO_ROOT

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROLES = {"worker-1", "worker-2", "simulator", "monitor", "broker"}


def test_three_minute_soak_with_a_kill_and_a_broker_restart_loses_nothing(tmp_path: Path) -> None:
    # The soak starts and restarts a broker of its own: the session's broker must not restart.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FRAUD_") and k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    env["FRAUD_DATA_DIR"] = str(tmp_path / "var")
    out = tmp_path / "soak"
    command = [sys.executable, "-m", "pipeline", "soak", "--minutes", "3", "--rate", "50",
               "--kill-every", "1.5", "--progress-seconds", "15", "--sample-seconds", "5",
               "--warmup-minutes", "2", "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    print(result.stdout[-3000:])
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"

    report = json.loads((out / "soak.json").read_text())
    ids = report["ids"]
    assert ids["missing"] == 0
    assert ids["produced"] >= 0.9 * 50 * 180, "the simulator kept its rate through the faults"
    assert ids["decided_distinct"] == ids["produced_distinct"] == ids["produced"]
    assert report["dead_letters"] == 0
    assert report["monitor_transactions"] == ids["decided_distinct"], "the monitor counts each id once"
    assert (report["kills"], report["broker_restarts"], report["unexpected_exits"]) == (1, 1, 0)
    [kill] = [event for event in report["events"] if event["action"] == "kill"]
    assert kill["new_pid"] != kill["pid"] and kill.get("ready_after_s") is not None, kill
    assert set(report["memory"]) == ROLES
    assert len(report["memory"]["worker-2"]) == 2 and len(report["memory"]["broker"]) == 2
    assert all(row["peak_mb"] > 0 for rows in report["memory"].values() for row in rows)
    # Its broker has its whole heap (768 MiB) from the start, each side of its restart.
    assert all(row["first_mb"] > 768 for row in report["memory"]["broker"]), report["memory"]["broker"]
    assert "input lag" in result.stdout and "[00:15/03:00]" in result.stdout, "progress lines"
    assert not (out / "state").exists(), "the workers' state is removed at the end"
    # The workers' memory by part, from their metrics, beside their RSS.
    parts = [s["parts_mb"] for s in report["samples"] if s["role"] == "worker-1" and s.get("parts_mb")]
    assert parts and all(p["record_cache"] >= 0 and p["malloc_in_use"] > 0 for p in parts), parts[:3]
    assert "record_cache" in (out / "memory-parts.svg").read_text()
    chart = (out / "rss.svg").read_text()
    assert chart.count("<polyline ") >= len(ROLES) + 2  # worker-2 and the broker restarted once each


def test_an_interrupted_soak_stops_every_child_and_its_broker(tmp_path: Path) -> None:
    """Started as under nohup or ``&`` (SIGINT ignored), then Ctrl-C'd once its workers are ready:
    the soak stops its workers, simulator, monitor and broker and says so (before, SIGINT did
    nothing and SIGTERM left all of them running)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FRAUD_") and k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    env["FRAUD_DATA_DIR"] = str(tmp_path / "var")
    command = [sys.executable, "-m", "pipeline", "soak", "--minutes", "5", "--rate", "20",
               "--no-broker-restart", "--out", str(tmp_path / "soak")]  # fmt: skip
    soak = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert soak.stdout is not None
    seen: list[str] = []
    for line in soak.stdout:
        seen.append(line)
        if "workers ready" in line:
            break
    else:
        pytest.fail("the soak never got ready:\n" + "".join(seen[-40:]))
    children = psutil.Process(soak.pid).children(recursive=True)
    assert len(children) >= 5, children  # two workers, the simulator, the monitor, the broker's JVM
    soak.send_signal(signal.SIGINT)
    rest, _ = soak.communicate(timeout=120)
    assert soak.returncode == 1
    assert "soak interrupted by SIGINT" in rest, rest[-3000:]
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
