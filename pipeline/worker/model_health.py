"""The worker's model-health reports: every ``FRAUD_MODEL_HEALTH_INTERVAL_SECONDS`` a
``model_health`` message (schemas/model_health.v1.schema.json) on ``<app id>-model-health``, keyed
by the worker, and the same figures as Prometheus gauges (pipeline/worker/telemetry.py).

The figures come from pipeline/detection/health.py (pure); here are the clock, the tally of the
labels learnt since the last report and the producer. The stages call ``learnt`` for each label
the model learns and ``maybe_report`` after each batch (and a timer between batches): a report
costs one pass over each contender's recent scores (5,000 at most), once per interval, not per
transaction.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.config import Settings
from pipeline.contracts.json_schemas import validator
from pipeline.detection.detector import Detector
from pipeline.detection.health import LabelTally, model_figures
from pipeline.worker.producer import NativeProducer
from pipeline.worker.telemetry import PipelineMetrics

log = logging.getLogger(__name__)


def worker_name(settings: Settings) -> str:
    """The key of a worker's reports: its host and web port (stable across its restarts)."""
    return f"{socket.gethostname()}:{settings.worker_web_port}"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


class ModelHealthReporter:
    """Tallies the labels learnt and reports the model's health once per interval."""

    def __init__(
        self,
        settings: Settings,
        detector: Detector,
        producer: NativeProducer,
        metrics: PipelineMetrics,
        *,
        clock: Any = time.time,
    ) -> None:
        self.settings = settings
        self.detector = detector
        self.producer = producer
        self.metrics = metrics
        self.topic = settings.topic_model_health
        self.key = worker_name(settings).encode()
        self.clock = clock
        self.tally = LabelTally()
        self.since = clock()
        self.next_report = self.since  # the first batch reports at once: the page shows the worker
        self.check = validator("model_health")
        self._timer: asyncio.TimerHandle | None = None
        metrics.model_precision_floor.set(settings.model_health_min_precision)

    def learnt(self, is_fraud: bool, event_time: float, labelled_at: float) -> None:
        """A label the model learnt: counted, and its delay observed."""
        delay = max(labelled_at - event_time, 0.0)
        self.tally.add(is_fraud, delay)
        self.metrics.label_delay.observe(delay)
        self.metrics.model_last_learnt.set(self.clock())

    def maybe_report(self) -> dict[str, Any] | None:
        """Send a report if the interval has passed since the last one; returns it (or None). The
        first call (in the event loop) also starts a timer, so that the reports go on when no
        batch comes: the labels of the last batch are reported, and an idle model is seen."""
        if self._timer is None:
            self._tick_later()
        now = self.clock()
        if now < self.next_report:
            return None
        self.next_report = now + self.settings.model_health_interval_seconds
        try:
            report = self.report(now)
            self.metrics.show_model_health(report)
            self.producer.send(self.topic, orjson.dumps(report), self.key)
        except Exception:  # a report is never worth a transaction: log it, the stage goes on
            log.exception("model health report failed")
            return None
        return report

    def _tick_later(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.settings.model_health_interval_seconds, self._tick)

    def _tick(self) -> None:
        self.maybe_report()
        self._tick_later()

    def report(self, now: float) -> dict[str, Any]:
        """The ``model_health`` message as of ``now``; the tally starts again."""
        model = self.detector.engine.model
        report = {
            "schema_version": 1,
            "worker": self.key.decode(),
            "at": _iso(now),
            **model_figures(model, self.settings.model_review_threshold),
            "interval": {"since": _iso(self.since), **self.tally.as_json()},
        }
        self.check(report)  # a bug here must not reach the topic's readers
        self.tally, self.since = LabelTally(), now
        return report
