"""Metric names: those the worker, the simulator and the monitor export, derived from the code, and
those a PromQL expression uses.

The worker's names come from pipeline.worker.telemetry.PipelineMetrics in a fresh registry, plus the Faust
sensor's metrics created the way pipeline/worker/telemetry.py does (``install_faust_sensors``: Faust's
sensor with ``name_prefix="faust"``, less ``faust_events_runtime_ms``); the simulator's from
SimulatorMetrics, the monitor's from MonitorMetrics.
Labelled families count even before their first child.
"""

from __future__ import annotations

import re

from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry

from monitor.metrics import MonitorMetrics
from pipeline.tools.simulator.producer import SimulatorMetrics
from pipeline.worker.telemetry import PipelineMetrics

# Series Prometheus itself makes: the scrape health and the alerts' state.
PROMETHEUS_SERIES = {"up", "ALERTS"}
# Sample names of each metric type in the text exposition (prometheus_client).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}
# Aggregation operators, their modifiers, the set and comparison keywords, and the float literals.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan",
}  # fmt: skip


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """The sample names the registry's families produce, children or not."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def worker_sample_names() -> set[str]:
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    faust_metrics = FaustMetrics.create(registry, "faust")
    registry.unregister(faust_metrics.events_runtime_latency)  # as install_faust_sensors does
    return exposed_names(registry)


def simulator_sample_names() -> set[str]:
    registry = CollectorRegistry()
    SimulatorMetrics(registry)
    return exposed_names(registry)


def monitor_sample_names() -> set[str]:
    return exposed_names(MonitorMetrics(CollectorRegistry()).registry)


def all_sample_names() -> set[str]:
    """What the three jobs (worker, simulator, monitor) export, process collectors aside."""
    return worker_sample_names() | simulator_sample_names() | monitor_sample_names()


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (strings, ranges, matchers, grouping
    clauses, functions and keywords removed)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names
