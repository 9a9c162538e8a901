"""Prometheus metrics of the pipeline worker, in an injectable registry (tests use a fresh one)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import faust
import numpy as np
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pipeline.config import FRAUD_TYPES
from pipeline.contracts.json_schemas import load_schema
from pipeline.detection.health import DELAY_BOUNDS_HOURS
from pipeline.worker.process_memory import malloc_info

if TYPE_CHECKING:
    from pipeline.worker.producer import NativeProducer
    from pipeline.worker.recovery_progress import RecoveryStatus

DEAD_LETTER_REASONS: tuple[str, ...] = tuple(load_schema("dead_letter")["properties"]["reason_code"]["enum"])
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def observe_many(histogram: Histogram, values: Sequence[float] | np.ndarray) -> None:
    """``histogram.observe(value)`` for each of ``values``, with one increment per bucket: about
    1 µs a call otherwise, several calls per transaction. prometheus_client has no public call for
    it, so its bucket counters are used as its own ``observe`` uses them (one value: a value goes to
    the first bucket whose bound it does not exceed); without them, one ``observe`` each."""
    buckets, total = getattr(histogram, "_buckets", None), getattr(histogram, "_sum", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    array = np.asarray(values, dtype=np.float64)
    if buckets is None or total is None or bounds is None or len(array) < 8:
        for value in array.tolist():
            histogram.observe(value)
        return
    slots = np.searchsorted(np.asarray(bounds), array, side="left")  # NaN: past the last, counted nowhere
    counts = np.bincount(slots, minlength=len(bounds) + 1)[: len(bounds)]
    for index in np.flatnonzero(counts).tolist():
        buckets[index].inc(int(counts[index]))
    total.inc(float(array.sum()))


def install_faust_sensors(app: faust.App, registry: CollectorRegistry) -> None:
    """Faust's Prometheus sensor (``faust_*`` metrics, served at /metrics with ours), less
    ``faust_events_runtime_ms``: Faust observes it when a stream hands out one event at a time,
    and the stages take theirs in batches (pipeline/worker/batching.py), so it stayed at 0 for
    good; ``fraud_processing_latency_seconds`` measures the worker's time per transaction instead."""
    setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="faust")
    registry.unregister(app.monitor._metrics.events_runtime_latency)  # no public accessor


class PipelineMetrics:
    """Counters and histograms of what went through one worker. Labels are low-cardinality."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.transactions_consumed = Counter(
            "fraud_transactions_consumed", "Transactions read from the input topic", registry=registry
        )
        self.decisions = Counter(
            "fraud_decisions", "Decisions emitted, by outcome", ["decision"], registry=registry
        )
        self.alerts = Counter(
            "fraud_alerts", "Alerts emitted, by fraud type", ["fraud_type"], registry=registry
        )
        self.dead_letters = Counter(
            "fraud_dead_letters",
            "Messages sent to the dead-letter topic, by reason",
            ["reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "fraud_duplicate_transactions",
            "Transactions seen again (redelivery or upstream duplicate)",
            registry=registry,
        )
        self.labels = Counter(
            "fraud_labels",
            "Labels received, by outcome (learnt, skipped, unknown)",
            ["outcome"],
            registry=registry,
        )
        self._latencies(registry)
        self._model_and_state(registry)
        self._zero_every_label()

    def _latencies(self, registry: CollectorRegistry) -> None:
        self.scoring_latency = Histogram(
            "fraud_scoring_latency_seconds",
            "Time to compute features, rules and model for one transaction",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.processing_latency = Histogram(
            "fraud_processing_latency_seconds",
            "From arrival at the worker to the decision being sent",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.end_to_end_latency = Histogram(
            "fraud_end_to_end_latency_seconds",
            "From the transaction's event time to its decision",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def _model_and_state(self, registry: CollectorRegistry) -> None:
        self.model_labels_learnt = Gauge(
            "fraud_model_labels_learnt", "Labels the online model has learnt from", registry=registry
        )
        self.model_drifts = Counter(
            "fraud_model_drift_events",
            "Rises of the model's error rate detected by ADWIN (model reset)",
            registry=registry,
        )
        self.model_snapshots = Counter("fraud_model_snapshots", "Model snapshots written", registry=registry)
        self.rule_reloads = Counter(
            "fraud_rule_reloads",
            "Rule file reloads, by outcome (loaded, refused)",
            ["outcome"],
            registry=registry,
        )
        self.expired_entries = Counter(
            "fraud_table_entries_expired",
            "Table entries deleted after their TTL, by table",
            ["table"],
            registry=registry,
        )
        self.pending_labels = Gauge(
            "fraud_pending_label_entries", "Scored transactions waiting for their label", registry=registry
        )
        self._model_health(registry)
        self.recovery_remaining = Gauge(
            "fraud_table_recovery_remaining_records",
            "Changelog records a table still has to restore before the worker is ready (0 once restored)",
            ["table"],
            registry=registry,
        )

    def _model_health(self, registry: CollectorRegistry) -> None:
        """The model's health (pipeline/detection/health.py), set when the worker reports it."""
        self.label_delay = Histogram(
            "fraud_label_delay_seconds",
            "From a transaction's event time to its label, for the labels the model learns",
            buckets=tuple(hours * 3600 for hours in DELAY_BOUNDS_HOURS),
            registry=registry,
        )
        self.model_generation = Gauge(
            "fraud_model_generation", "Promotions of a challenger to champion so far", registry=registry
        )
        per_contender = ["candidate", "role"]
        self.model_average_precision = Gauge(
            "fraud_model_average_precision",
            "Average precision of each contender on its recent labels (scored before learning them)",
            per_contender,
            registry=registry,
        )
        self.model_precision_at_review = Gauge(
            "fraud_model_precision_at_review",
            "Frauds among the recent labels a contender scored at or above the model review threshold",
            per_contender,
            registry=registry,
        )
        self.model_flagged_at_review = Gauge(
            "fraud_model_flagged_at_review",
            "Recent labels a contender scored at or above the model review threshold",
            per_contender,
            registry=registry,
        )
        self.model_precision_floor = Gauge(
            "fraud_model_precision_floor",
            "FRAUD_MODEL_HEALTH_MIN_PRECISION: the champion's recent precision below which an alert fires",
            registry=registry,
        )
        self.model_last_learnt = Gauge(
            "fraud_model_last_learnt_timestamp_seconds",
            "When the model last learnt a label (Unix seconds; 0 before the first)",
            registry=registry,
        )

    def show_model_health(self, report: Mapping[str, Any]) -> None:
        """Set the model gauges from a ``model_health`` report; contenders no longer in the pool go."""
        self.model_generation.set(report["generation"])
        for gauge in (
            self.model_average_precision,
            self.model_precision_at_review,
            self.model_flagged_at_review,
        ):
            gauge.clear()
        for c in report["contenders"]:  # a figure not defined yet (no fraud, none flagged) is NaN
            labels = (c["name"], c["role"])
            for gauge, value in (
                (self.model_average_precision, c["average_precision"]),
                (self.model_precision_at_review, c["precision_at_review"]),
            ):
                gauge.labels(*labels).set(math.nan if value is None else value)
            self.model_flagged_at_review.labels(*labels).set(c["flagged_at_review"])

    def _zero_every_label(self) -> None:
        """Every label value exists from the start, so that rate() sees the first event of each."""
        for outcome in ("allow", "review", "block"):
            self.decisions.labels(outcome)
        for fraud_type in FRAUD_TYPES:
            self.alerts.labels(fraud_type)
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)
        for outcome in ("learnt", "skipped", "unknown"):
            self.labels.labels(outcome)
        for outcome in ("loaded", "refused"):
            self.rule_reloads.labels(outcome)

    def show_recovery(self, tables: tuple[str, ...], status: RecoveryStatus) -> None:
        """Records each table still has to restore (0 for every table outside a recovery)."""
        left = {t.table: t.remaining for t in status.tables} if status.state == "recovering" else {}
        for table in tables:
            self.recovery_remaining.labels(table).set(left.get(table, 0))

    def watch_producer(self, producer: NativeProducer) -> None:
        """Expose the worker's librdkafka producer: messages by topic, queue, failures (read at
        scrape time, so sending costs no metric update)."""
        self.registry.register(_ProducerCollector(producer))

    def watch_memory(self, caches: Callable[[], Mapping[str, int]]) -> None:
        """Expose where the worker's memory is (``fraud_worker_memory_bytes{part}``, read at scrape
        time): malloc's bytes in use, free and mmapped (glibc), and ``caches()``'s bytes by part
        (the record caches, RocksDB's shared cache)."""
        self.registry.register(_MemoryCollector(caches))


class _MemoryCollector:
    def __init__(self, caches: Callable[[], Mapping[str, int]]) -> None:
        self.caches = caches

    def collect(self) -> Iterator[Metric]:
        parts = GaugeMetricFamily(
            "fraud_worker_memory_bytes",
            "The worker's memory by part: malloc_in_use, malloc_free (held by malloc for reuse), "
            "malloc_mmapped, record_cache (the tables' cached rows), rocksdb (block cache and memtables)",
            labels=["part"],
        )
        malloc = malloc_info() or {}
        for part in ("in_use", "free", "mmapped"):
            if part in malloc:
                parts.add_metric([f"malloc_{part}"], malloc[part])
        for part, value in self.caches().items():
            parts.add_metric([part], value)
        yield parts


class _ProducerCollector:
    def __init__(self, producer: NativeProducer) -> None:
        self.producer = producer

    def collect(self) -> Iterator[Metric]:
        sent = CounterMetricFamily(
            "fraud_produced_messages", "Messages handed to the worker's producer, by topic", labels=["topic"]
        )
        for topic, count in sorted(self.producer.sent_by_topic.items()):
            sent.add_metric([topic], count)
        yield sent
        yield GaugeMetricFamily(
            "fraud_producer_queue_messages",
            "Messages the worker's producer holds until the broker acknowledges them",
            value=self.producer.pending(),
        )
        yield CounterMetricFamily(
            "fraud_produce_failures",
            "Messages the worker's producer failed to deliver (the worker then stops before committing)",
            value=self.producer.failures,
        )
