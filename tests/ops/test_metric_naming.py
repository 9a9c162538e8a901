"""The metrics of the worker, the simulator and the monitor follow Prometheus' naming conventions
(https://prometheus.io/docs/practices/naming/), checked on the registries the code builds."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Metric

from monitor.metrics import MonitorMetrics
from pipeline.tools.simulator.producer import SimulatorMetrics
from pipeline.worker.telemetry import PipelineMetrics

# Labels that may hold an id (a card, a transaction, a customer) would make a series per entity.
FORBIDDEN_LABELS = re.compile(r"(^|_)(id|card|token|customer|transaction|merchant|terminal|device|user)(_|$)")


def families() -> list[tuple[str, Metric, tuple[str, ...]]]:
    """(process, metric family, its label names) of every metric the three processes define."""
    found = []
    for process, build in (
        ("worker", PipelineMetrics),
        ("simulator", SimulatorMetrics),
        ("monitor", MonitorMetrics),
    ):
        registry = CollectorRegistry()
        build(registry)
        # Label names from the metric objects: a labelled family without children has no sample.
        label_names = {
            name: tuple(getattr(collector, "_labelnames", ()))
            for name, collector in registry._names_to_collectors.items()
        }
        found += [(process, family, label_names[family.name]) for family in registry.collect()]
    return found


def _id(value: object) -> str:
    return value.name if isinstance(value, Metric) else value if isinstance(value, str) else ""


@pytest.mark.parametrize(("process", "family", "labels"), families(), ids=_id)
def test_metric_follows_the_conventions(process: str, family: Metric, labels: tuple[str, ...]) -> None:
    name = family.name
    prefix = {"worker": "fraud_", "simulator": "fraud_simulator_", "monitor": "fraud_monitor_"}[process]
    assert name.startswith(prefix), name
    assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
    assert family.documentation.strip(), f"{name} has no help text"
    samples = {sample.name for sample in family.samples}
    if family.type == "counter":
        assert not name.endswith("_total"), f"{name}: the client appends _total"
        assert all(s.endswith(("_total", "_created")) for s in samples), samples
    if family.type == "histogram":
        assert name.endswith("_seconds"), f"{name}: durations in seconds"
    if "timestamp" in name:
        assert name.endswith("_timestamp_seconds"), name
    assert not any(part in name for part in ("_ms", "_milliseconds", "_minutes", "_percent")), name
    assert not [label for label in labels if FORBIDDEN_LABELS.search(label)], f"{name}: {labels}"


def test_the_worker_exports_no_faust_metric_that_never_records(tmp_path, monkeypatch) -> None:
    """Faust's events_runtime_ms is observed only for events handed out one at a time; the stages
    take batches, so the worker's registry (built as the worker builds it) leaves it out."""
    from pipeline.config import load_settings
    from pipeline.worker import faust_app

    monkeypatch.setattr(faust_app, "install_lists", lambda *args: None)  # it reads the list topic
    settings = load_settings(data_dir=tmp_path, kafka_bootstrap_servers="127.0.0.1:1")
    pipeline = faust_app.FraudPipeline(settings)
    try:
        names = {family.name for family in pipeline.metrics.registry.collect()}
    finally:
        pipeline.native.close()
    assert "faust_consumer_commit_latency" in names and "fraud_processing_latency_seconds" in names
    assert "faust_events_runtime_ms" not in names
