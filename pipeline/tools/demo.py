"""``fraud demo``: the whole system on this machine until Ctrl-C.

Starts the local Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS names a cluster), creates the
topics, then runs a pipeline worker, the traffic simulator and the monitor as child processes,
prints the monitor's URL, and on Ctrl-C (or SIGTERM) stops everything it started.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from types import FrameType

from pipeline.config import Settings
from pipeline.tools.children import fraud_command, spawn, stop_child, wait_for
from pipeline.tools.local_kafka import LocalKafka
from pipeline.worker.topics import ensure_topics

log = logging.getLogger(__name__)


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    _ignore_stop_signals()
    raise _Stop


def _ignore_stop_signals() -> None:
    """Once stopping, a second SIGTERM or Ctrl-C must not cut the stop short: `timeout make demo`
    signals make's process group, so the demo gets SIGTERM from `timeout` and again from make."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_demo(settings: Settings, rate: float | None = None) -> int:
    broker: LocalKafka | None = None
    children: dict[str, subprocess.Popen[bytes]] = {}
    logs_dir = settings.data_dir / "demo-logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    try:
        if not settings.kafka_bootstrap_servers:
            broker = LocalKafka(
                settings.local_kafka_version, settings.local_kafka_port, settings.local_kafka_home
            )
            print(f"Starting local Kafka {broker.version} on {broker.bootstrap_servers} ...", flush=True)
            broker.start()
        print(f"Kafka: {settings.bootstrap_servers}", flush=True)
        ensure_topics(settings)
        env = settings.child_environment()
        env["FRAUD_KAFKA_BOOTSTRAP_SERVERS"] = settings.bootstrap_servers
        if "FRAUD_SIMULATOR_RHYTHM" not in os.environ:  # a lively demo at any hour of the day
            env["FRAUD_SIMULATOR_RHYTHM"] = "false"
        simulate = fraud_command("simulate", "--metrics-port", str(settings.simulator_metrics_port))
        if rate:
            simulate += ["--rate", str(rate)]
        commands = {
            "worker": fraud_command("worker", "--loglevel", "warning"),
            "monitor": fraud_command("monitor"),
            "simulator": simulate,
        }
        for name, command in commands.items():
            children[name] = spawn(command, env, logs_dir / f"{name}.log")
        url = f"http://{_display_host(settings.monitor_host)}:{settings.monitor_port}/"
        wait_for(f"{url}healthz", children, timeout=60)
        wait_for(f"http://127.0.0.1:{settings.worker_web_port}/readyz", children, timeout=120)
        print(
            f"\nFraud monitor: {url}\n"
            f"Worker metrics: http://127.0.0.1:{settings.worker_web_port}/metrics   "
            f"Simulator metrics: http://127.0.0.1:{settings.simulator_metrics_port}/metrics\n"
            f"Logs: {logs_dir}\nPress Ctrl-C to stop.\n",
            flush=True,
        )
        while True:
            for name, child in children.items():
                if child.poll() is not None:
                    print(
                        f"{name} exited with {child.returncode}; see {logs_dir / (name + '.log')}", flush=True
                    )
                    return 1
            time.sleep(1)
    except (KeyboardInterrupt, _Stop):
        print("\nStopping ...", flush=True)
        return 0
    finally:
        _ignore_stop_signals()
        for name, child in reversed(list(children.items())):
            stop_child(name, child)
        if broker is not None:
            broker.stop()
            print("Local Kafka stopped.", flush=True)


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host
