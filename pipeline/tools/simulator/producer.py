"""Publishing simulated traffic to Kafka in real time, with ground-truth labels after a delay."""

from __future__ import annotations

import base64
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import CollectorRegistry, Counter

from pipeline.config import FRAUD_TYPES, Settings
from pipeline.tools.simulator.generator import SimulatedTransaction, TrafficGenerator, label_for

log = logging.getLogger(__name__)


@dataclass
class SimulationReport:
    transactions: int = 0
    frauds: int = 0
    labels: int = 0
    delivery_errors: int = 0


class SimulatorMetrics:
    """The simulator's Prometheus metrics (served by `fraud simulate` on FRAUD_SIMULATOR_METRICS_PORT)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # Exposed as fraud_simulator_produced_total etc. (prometheus_client appends _total).
        self.produced = Counter(
            "fraud_simulator_produced",
            "Messages handed to the producer, by kind (transaction, label)",
            ["kind"],
            registry=registry,
        )
        self.frauds = Counter(
            "fraud_simulator_fraud_transactions",
            "Fraudulent transactions produced (ground truth), by fraud type",
            ["fraud_type"],
            registry=registry,
        )
        self.delivery_errors = Counter(
            "fraud_simulator_delivery_errors",
            "Messages the broker did not acknowledge (failed or still undelivered at exit)",
            registry=registry,
        )
        for kind in ("transaction", "label"):  # every child exists from the start, for rate()
            self.produced.labels(kind)
        for fraud_type in FRAUD_TYPES:
            self.frauds.labels(fraud_type)


class TrafficProducer:
    """Produces the generator's transactions (key: card token) and, later, their labels."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.producer = Producer(settings.producer_config(**{"client.id": "fraud-simulator"}))
        registry = registry or CollectorRegistry()
        self.registry = registry
        self.metrics = SimulatorMetrics(registry)
        self.report = SimulationReport()

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.report.delivery_errors += 1
            self.metrics.delivery_errors.inc()
            log.error("delivery to %s failed: %s", message.topic(), error)

    def send(self, topic: str, key: str, value: dict[str, Any]) -> None:
        """Produce one message; waits for room when the local queue is full."""
        payload = orjson.dumps(value)
        while True:
            try:
                self.producer.produce(topic, payload, key.encode(), on_delivery=self._on_delivery)
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def run(
        self,
        *,
        count: int | None = None,
        duration: float | None = None,
        realtime: bool = True,
        label_delay: float | None = None,
        run_id: str | None = None,
    ) -> SimulationReport:
        """Produce ``count`` transactions or for ``duration`` seconds (or until interrupted)."""
        s = self.settings
        delay = s.simulator_label_delay_seconds if label_delay is None else label_delay
        generator = TrafficGenerator.from_settings(s, run_id=run_id or _run_id())
        started = time.time()
        until = started + duration if duration is not None else None
        pending_labels: deque[tuple[float, SimulatedTransaction]] = deque()
        last_progress = started
        try:
            for item in generator.events(count=count, until=until):
                if realtime:
                    self._publish_due_labels(pending_labels, item.at)
                    while (wait := item.at - time.time()) > 0:
                        self.producer.poll(min(wait, 0.05))  # serves delivery reports while waiting
                self.send(s.topic_transactions, item.transaction["card_token"], item.transaction)
                self.metrics.produced.labels("transaction").inc()
                self.report.transactions += 1
                self.report.frauds += item.is_fraud
                if item.is_fraud and item.fraud_type:
                    self.metrics.frauds.labels(item.fraud_type).inc()
                pending_labels.append((item.at + delay, item))
                if time.time() - last_progress >= 10:
                    last_progress = time.time()
                    rate = self.report.transactions / max(last_progress - started, 1e-9)
                    log.info(
                        "produced %d transactions (%d fraud, %d labels) at %.1f/s",
                        self.report.transactions,
                        self.report.frauds,
                        self.report.labels,
                        rate,
                    )
            if realtime and pending_labels:
                self._publish_due_labels(pending_labels, pending_labels[-1][0], sleep=True)
            elif pending_labels:
                self._publish_due_labels(pending_labels, float("inf"))
        except KeyboardInterrupt:
            log.info("interrupted")
        finally:
            remaining = self.producer.flush(30)
            if remaining:
                log.error("%d messages not delivered", remaining)
                self.report.delivery_errors += remaining
                self.metrics.delivery_errors.inc(remaining)
        return self.report

    def _publish_due_labels(
        self, pending: deque[tuple[float, SimulatedTransaction]], now: float, sleep: bool = False
    ) -> None:
        while pending and pending[0][0] <= now:
            due, item = pending.popleft()
            wait = due - time.time()  # read the clock once: a second read may be past ``due``
            if sleep and wait > 0:
                time.sleep(wait)
            label = label_for(item, max(due, item.at))
            self.send(self.settings.topic_labels, label["card_token"], label)
            self.metrics.produced.labels("label").inc()
            self.report.labels += 1


def _run_id() -> str:
    """A short id unique to this run, so transaction ids never repeat across runs."""
    return base64.b32encode(os.urandom(5)).decode().lower()
