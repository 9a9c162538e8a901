"""Starting the worker processes a benchmark measures, each with an app of its own, and reading what
they emit."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import requests
from confluent_kafka import Consumer, Producer

from pipeline.config import REPO_ROOT, Settings
from pipeline.tools.bench.processes import free_port
from pipeline.tools.bench.report import say
from pipeline.tools.simulator.generator import TrafficGenerator
from pipeline.worker.topics import ensure_topics


def app_settings(base: Settings, app_id: str, **update: Any) -> Settings:
    settings = base.model_copy(
        update={
            "app_id": app_id,
            "topic_decisions": f"{app_id}-decisions",
            "topic_alerts": f"{app_id}-alerts",
            "topic_labels": f"{app_id}-labels",
            "topic_dead_letter": f"{app_id}-dead-letter",
            **update,
        }
    )
    ensure_topics(settings)
    return settings


def start_worker(settings: Settings, index: int, out: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = settings.model_copy(update={"worker_web_port": port}).child_environment()
    log = (out / "logs" / f"{settings.app_id}-{index}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "worker", "--loglevel", "warning"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, port


def wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"a benchmark worker exited with {process.returncode}; see var/bench/logs")
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"a benchmark worker was not ready within {timeout:.0f}s")


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
         "--output", str(out / "profile-1-worker.txt"), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=(out / "logs" / "py-spy.log").open("wb"),
    )  # fmt: skip


def collect(
    settings: Settings,
    topic: str,
    expected: int,
    label: str,
    key_only: bool = False,
    idle: float = 180.0,
    actions: Counter[str] | None = None,
) -> list[tuple[float, str]]:
    """(Kafka timestamp in seconds, transaction id or key) of the messages of ``topic``, read
    from the start until ``expected`` distinct ones arrived; shows progress. ``actions`` (for a
    decisions topic) counts each decision's action (allow, review, block)."""
    consumer = Consumer(
        settings.confluent_config(
            **{
                "group.id": f"bench-reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([topic])
    seen: list[tuple[float, str]] = []
    distinct: set[str] = set()
    last_message, last_report, reported = time.monotonic(), time.monotonic(), 0
    try:
        while len(distinct) < expected:
            batch = consumer.consume(5000, 0.5)
            now = time.monotonic()
            for message in batch:
                if message.error():
                    continue
                if key_only:
                    ident = f"{message.partition()}:{message.offset()}"
                else:
                    decoded = orjson.loads(message.value())
                    ident = decoded["transaction_id"]
                    if actions is not None:
                        actions[decoded.get("decision", "?")] += 1
                seen.append((message.timestamp()[1] / 1000, ident))
                distinct.add(ident)
                last_message = now
            if now - last_message > idle:
                raise RuntimeError(
                    f"{label}: no output for {idle:.0f}s after {len(distinct):,} of {expected:,}"
                )
            if now - last_report >= 5:
                rate = (len(distinct) - reported) / (now - last_report)
                say(f"      {label}: {len(distinct):,}/{expected:,} ({rate:,.0f}/s)")
                last_report, reported = now, len(distinct)
    finally:
        consumer.close()
    return seen


WEEK_SECONDS = 7 * 86400


def bench_clock(now: float | None = None) -> float:
    """The event time the benchmark's traffic ends at: the start of the current epoch week (a
    Thursday, 00:00 UTC), at most seven days ago. The bench's model is trained on traffic three days
    before it (``trained_model``); anchored so, every run offers the model the same time of week it
    was trained at, and the share of transactions it alerts on stops depending on the hour the bench
    was started (it moved the one-worker figure by half between runs of the same code)."""
    current = time.time() if now is None else now
    return (current // WEEK_SECONDS) * WEEK_SECONDS


def transactions(
    settings: Settings, count: int, run_id: str, rate: float = 400.0
) -> Iterator[tuple[str, bytes]]:
    """(card token, JSON) of ``count`` simulated transactions whose event times end at ``bench_clock()``."""
    start = bench_clock() - count / rate
    generator = TrafficGenerator.from_settings(settings, rate=rate, start=start, rhythm=False, run_id=run_id)
    for item in generator.events(count=count):
        yield item.transaction["card_token"], orjson.dumps(item.transaction)


def produce_all(settings: Settings, topic: str, records: Iterator[tuple[str, bytes]]) -> dict[str, Any]:
    producer = Producer(settings.producer_config(**{"linger.ms": 20, "batch.size": 1_000_000}))
    errors: list[str] = []

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            errors.append(str(error))

    started, count = time.perf_counter(), 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key.encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if count % 50_000 == 0:
            say(f"      {count:,} produced")
    remaining = producer.flush(60)
    if errors or remaining:
        raise RuntimeError(f"producing the benchmark traffic failed: {errors[:3]}, {remaining} undelivered")
    seconds = time.perf_counter() - started
    return {"count": count, "seconds": seconds, "rate": count / seconds}
