"""``fraud demo``: the whole system on this machine until Ctrl-C.

Starts the local Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS names a cluster, or it runs already),
creates the topics, then runs a pipeline worker, the traffic simulator and the monitor as child
processes, waits while they make progress (the worker may first restore its tables from a long
history: a progress bar shows it), prints the monitor's URL, and on Ctrl-C (or SIGTERM) stops
everything it started, and nothing else: a broker that was running before stays up.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TextIO

from pipeline.config import Settings
from pipeline.tools.children import (
    Readiness,
    StartupError,
    fraud_command,
    progress_bar,
    spawn,
    stop_child,
    wait_until_ready,
)
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


def demo_rules_file(settings: Settings) -> Path:
    """The rule file of the demo's worker and monitor: a copy of the configured one in the data
    dir, made when missing, so a rule an analyst enables in the monitor changes the copy (and
    stays for the next demo), never the repository's file. Delete it to start from the shipped rules."""
    copy = settings.data_dir / "demo-rules.yaml"
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(settings.rules_file.read_text(encoding="utf-8"), encoding="utf-8")
    return copy


def run_demo(settings: Settings, rate: float | None = None) -> int:
    broker: LocalKafka | None = None
    children: dict[str, subprocess.Popen[bytes]] = {}
    logs_dir = settings.data_dir / "demo-logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    try:
        if not settings.kafka_bootstrap_servers:
            local = LocalKafka(
                settings.local_kafka_version, settings.local_kafka_port, settings.local_kafka_home
            )
            if local.running():
                print(f"Local Kafka already running on {local.bootstrap_servers}: used, and left running.")
            else:
                broker = local  # started here, so stopped here
                print(f"Starting local Kafka {broker.version} on {broker.bootstrap_servers} ...", flush=True)
                broker.start()
        print(f"Kafka: {settings.bootstrap_servers}", flush=True)
        ensure_topics(settings)
        env = settings.child_environment()
        env["FRAUD_KAFKA_BOOTSTRAP_SERVERS"] = settings.bootstrap_servers
        if "FRAUD_SIMULATOR_RHYTHM" not in os.environ:  # a lively demo at any hour of the day
            env["FRAUD_SIMULATOR_RHYTHM"] = "false"
        if "rules_file" not in settings.model_fields_set:  # not chosen (environment, .env)
            env["FRAUD_RULES_FILE"] = str(demo_rules_file(settings))
            print(f"Rules: {env['FRAUD_RULES_FILE']} (rules enabled in the monitor go there)", flush=True)
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
        _wait(settings, "monitor", f"{url}healthz", children, logs_dir)
        _wait(settings, "worker", f"http://127.0.0.1:{settings.worker_web_port}/readyz", children, logs_dir)
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
    except StartupError as exc:
        print(f"fraud demo: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        _ignore_stop_signals()
        for name, child in reversed(list(children.items())):
            stop_child(name, child)
        if broker is not None:
            broker.stop()
            print("Local Kafka stopped.", flush=True)


def _wait(
    settings: Settings,
    name: str,
    url: str,
    children: dict[str, subprocess.Popen[bytes]],
    logs_dir: Path,
) -> None:
    """Wait for ``name`` while it makes progress, showing it (StartupError when it stops moving)."""
    show = ProgressDisplay(name, sys.stdout)
    try:
        wait_until_ready(
            name,
            url,
            children,
            settings.demo_no_progress_timeout_seconds,
            show,
            hint=f"; see {logs_dir}",
        )
    finally:
        show.close()


class ProgressDisplay:
    """Shows what a process does while the demo waits for it: on a terminal one line redrawn in
    place (with a progress bar while the worker restores its tables); in a file or pipe a line when
    it changes, at most every 5 s."""

    def __init__(self, name: str, stream: TextIO, every: float = 5.0) -> None:
        self.name, self.stream, self.every = name, stream, every
        self.tty = stream.isatty()
        self._shown = ""
        self._shown_at = 0.0
        self._step: object = None
        self._width = 0

    def __call__(self, readiness: Readiness) -> None:
        line = format_progress(self.name, readiness)
        now = time.monotonic()
        progress = readiness.progress
        step = progress[0] if isinstance(progress, tuple) else progress  # e.g. "recovering"
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = max(self._width, len(line))
        elif step != self._step or (line != self._shown and now - self._shown_at >= self.every):
            self.stream.write(line + "\n")
            self._shown, self._shown_at, self._step = line, now, step
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()


def format_progress(name: str, readiness: Readiness) -> str:
    """``worker: [#####...] 21% restoring its tables 12,000 of 57,000 records, ...``"""
    if readiness.fraction is not None and not readiness.ready:
        return f"{name}: {progress_bar(readiness.fraction)} {readiness.summary}"
    return f"{name}: {readiness.summary}"


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host
