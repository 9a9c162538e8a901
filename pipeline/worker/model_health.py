"""The worker's model-health reports: every ``FRAUD_MODEL_HEALTH_INTERVAL_SECONDS`` a
``model_health`` message (schemas/model_health.v2.schema.json) on ``<app id>-model-health``, keyed
by the worker, and the same figures as Prometheus gauges (pipeline/worker/telemetry.py).

The figures come from pipeline/detection/health.py (pure); here are the clock, the tally of the
labels learnt since the last report, the time of each promotion and the producer. The stages call
``learnt`` for each label the model learns and ``maybe_report`` after each batch (and a timer
between batches): a report costs one pass over each contender's recent scores (5,000 at most),
once per interval, not per transaction.

The model knows a promotion by its label count only. A promotion is made only while a batch of
labels is learnt, and ``maybe_report`` runs right after each, so it stamps each promotion it has
not seen before with the time then (``promotions[].at``, v2); those the model made before the
worker started (restored from its snapshot) have no time.
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
from pipeline.contracts.json_schemas import latest_version, validator
from pipeline.detection.detector import Detector
from pipeline.detection.health import PROMOTIONS_KEPT, LabelTally, model_figures
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
        self.promoted_at: dict[tuple[int, str, str], str] = {}
        """The time of each promotion made since the worker started: the end of its batch of labels."""
        self._untimed = {_promotion_key(p) for p in detector.engine.model.promotions}
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
        self.stamp_promotions(now)
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

    def stamp_promotions(self, now: float) -> None:
        """Give ``now`` to the model's promotions not seen before (the stages call ``maybe_report``
        right after each batch of labels learnt, the only place a promotion is made); only those
        a report can list are kept."""
        listed = [_promotion_key(p) for p in self.detector.engine.model.promotions[-PROMOTIONS_KEPT:]]
        for key in listed:
            if key not in self._untimed and key not in self.promoted_at:
                self.promoted_at[key] = _iso(now)
        self.promoted_at = {key: self.promoted_at[key] for key in listed if key in self.promoted_at}

    def report(self, now: float) -> dict[str, Any]:
        """The ``model_health`` message as of ``now``; the tally starts again."""
        model = self.detector.engine.model
        self.stamp_promotions(now)
        figures = model_figures(model, self.settings.model_review_threshold)
        for promotion in figures["promotions"]:
            key = (promotion["at_label"], promotion["champion"], promotion["beaten"])
            if key in self.promoted_at:
                promotion["at"] = self.promoted_at[key]
        report = {
            "schema_version": latest_version("model_health"),  # 2: v1 and promotions[].at
            "worker": self.key.decode(),
            "at": _iso(now),
            **figures,
            "interval": {"since": _iso(self.since), **self.tally.as_json()},
        }
        self.check(report)  # a bug here must not reach the topic's readers
        self.tally, self.since = LabelTally(), now
        return report


def _promotion_key(promotion: Any) -> tuple[int, str, str]:
    return (promotion.at_label, promotion.champion, promotion.beaten)
