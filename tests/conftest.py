"""Shared fixtures: a real single-node Kafka broker for the session, unique topics per test,
and pipeline workers run as real processes.

The broker is the project's own local KRaft broker (pipeline/tools/local_kafka.py) on a free port,
unless KAFKA_BOOTSTRAP_SERVERS names an existing cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from pipeline.config import REPO_ROOT, Settings, load_settings
from pipeline.tools.local_kafka import LocalKafka
from pipeline.tools.local_registry import LocalRegistry
from pipeline.worker.topics import ensure_topics


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a running real Kafka broker for the whole test session."""
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    defaults = Settings()
    broker = LocalKafka(defaults.local_kafka_version, free_port(), defaults.local_kafka_home)
    try:
        yield broker.start()
    finally:
        broker.stop()
        broker.wipe()


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    """The Confluent-compatible API of a real schema registry for the whole session: the project's
    local Apicurio Registry (pipeline/tools/local_registry.py), in memory, on a free port."""
    registry = LocalRegistry(free_port(), Settings().local_kafka_home)
    try:
        yield registry.start()
    finally:
        registry.stop()
        shutil.rmtree(registry.instance_dir, ignore_errors=True)


@pytest.fixture
def make_settings(
    kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[..., Settings]:
    """Settings with topic names and an app id of their own, whose topics exist on the broker."""

    def factory(**overrides: Any) -> Settings:
        name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]
        unique = f"test-{name}-{uuid.uuid4().hex[:8]}"
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": kafka_bootstrap,
            "app_id": unique,
            "topic_transactions": f"{unique}-transactions",
            "topic_decisions": f"{unique}-decisions",
            "topic_alerts": f"{unique}-alerts",
            "topic_labels": f"{unique}-labels",
            "topic_dead_letter": f"{unique}-dead-letter",
            "topic_lists": f"{unique}-list-updates",
            "topic_partitions": 2,
            "data_dir": tmp_path / "var",
            "worker_web_port": free_port(),
            "monitor_port": free_port(),
        }
        values.update(overrides)
        settings = load_settings(**values)
        ensure_topics(settings)
        return settings

    return factory


class WorkerProcess:
    """A pipeline worker started as ``python -m pipeline worker`` with the given settings."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        env = settings.child_environment()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "worker", "--loglevel", "info"],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.worker_web_port}"

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker not ready within {timeout}s:\n{self.log()}")

    def metrics(self) -> str:
        return requests.get(f"{self.url}/metrics", timeout=5).text

    def log(self) -> str:
        if not self._log.closed:  # a stopped worker's log is closed, and complete
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return self.process.returncode


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[Settings], WorkerProcess]]:
    """Start workers (real processes); they are stopped after the test."""
    workers: list[WorkerProcess] = []

    def factory(settings: Settings, wait: bool = True) -> WorkerProcess:
        clash = [
            w
            for w in workers
            if w.process.poll() is None and w.settings.worker_web_port == settings.worker_web_port
        ]
        assert not clash, (
            "two live workers on one worker_web_port: the second cannot bind it and its readiness "
            "check would reach the first; give it another worker_web_port (free_port())"
        )
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield factory
    for worker in workers:
        worker.stop()
