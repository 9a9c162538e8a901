"""`fraud simulate` serves its metrics on FRAUD_SIMULATOR_METRICS_PORT (the real-Prometheus test
scrapes it there); a port already taken stops it with one clear message before it touches Kafka."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from pipeline.config import REPO_ROOT


def test_a_taken_metrics_port_stops_the_simulator_with_a_clear_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:9"  # never reached: the port is checked first
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env["FRAUD_SIMULATOR_METRICS_PORT"] = str(port)
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "simulate", "--count", "1"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"fraud: cannot serve the simulator's metrics on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
