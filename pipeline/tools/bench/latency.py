"""Latency from produce to decision at a fixed offered rate, on a fresh worker."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psutil
from confluent_kafka import Consumer, Producer

from pipeline.config import Settings
from pipeline.tools.bench.charts import (
    latency_summary,
)
from pipeline.tools.bench.detector_alone import install_model
from pipeline.tools.bench.processes import cpu_seconds
from pipeline.tools.bench.workers import app_settings, start_worker, transactions, wait_ready


def latency_run(
    base: Settings, model: Any, rate: float, seconds: float, out: Path, run: str, warmup: float = 10.0
) -> dict[str, Any]:
    """Offer ``rate`` transactions per second for ``warmup`` + ``seconds`` to a fresh worker (an app
    and input topic of its own, running ``model``); time each of the last ``seconds`` from just
    before its produce call to the arrival of its decision. (The first transactions after a worker
    starts wait for its consumers of the internal topics to fetch.)"""
    topic = f"bench-{run}-latency-transactions"
    settings = app_settings(base, f"bench-{run}-latency", topic_transactions=topic)
    install_model(settings, model)
    count = max(int(rate * (seconds + warmup)), 50)
    measured_from = int(rate * warmup) if count > rate * warmup else 0
    records = [
        (key, value, orjson.loads(value)["transaction_id"])
        for key, value in transactions(settings, count, f"{run}lat")
    ]
    process, port = start_worker(settings, 0, out)
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    try:
        wait_ready(process, port)
        consumer = Consumer(
            settings.confluent_config(
                **{
                    "group.id": f"{settings.app_id}-latency-reader",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 5,
                }
            )
        )
        consumer.subscribe([settings.topic_decisions])
        reading = threading.Event()
        reading.set()

        def read() -> None:
            while reading.is_set() or len(arrived) < len(sent):
                message = consumer.poll(0.1)
                if message is None or message.error():
                    if not reading.is_set() and time.monotonic() > give_up:
                        return
                    continue
                arrived.setdefault(orjson.loads(message.value())["transaction_id"], time.time())

        give_up = float("inf")
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(2)  # the reader's partitions are assigned before the first transaction
        producer = Producer(settings.producer_config())
        worker = psutil.Process(process.pid)
        cpu_from = (time.monotonic(), cpu_seconds(worker))
        started = time.monotonic()
        for index, (key, value, transaction_id) in enumerate(records):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if index == measured_from:
                cpu_from = (time.monotonic(), cpu_seconds(worker))
            sent[transaction_id] = time.time()
            producer.produce(settings.topic_transactions, value, key.encode())
            producer.poll(0)
        producer.flush(30)
        cpu_to = (time.monotonic(), cpu_seconds(worker))
        give_up = time.monotonic() + 60
        reading.clear()
        reader.join(90)
        consumer.close()
    finally:
        process.terminate()
        process.wait(30)
    measured = list(sent.items())[measured_from:]
    latencies = [arrived[t] - at for t, at in measured if t in arrived]
    return {
        "offered_rate": rate,
        "warmup_seconds": warmup,
        "sent": len(measured),
        "decided": len(latencies),
        # The worker's CPU while the measured transactions were offered: at a steady moderate rate a
        # transaction costs several times what it costs on a backlog (docs/performance.md).
        "cpu_cores": (cpu_to[1] - cpu_from[1]) / max(cpu_to[0] - cpu_from[0], 1e-9),
        "cpu_ms_per_transaction": 1000 * (cpu_to[1] - cpu_from[1]) / max(len(measured), 1),
        **latency_summary(latencies),
    }
