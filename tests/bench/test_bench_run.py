"""`fraud bench` end to end on the real broker, small: every phase runs and its figures add up."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.tools.bench.runner import BenchOptions, run_benchmark

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_small_benchmark_measures_every_phase(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = load_settings(kafka_bootstrap_servers=kafka_bootstrap, data_dir=tmp_path / "var")
    options = BenchOptions(
        transactions=3000,
        partitions=2,
        latency_seconds=3,
        warmup_transactions=1500,
        latency_rates=(40.0,),
        out=tmp_path / "bench",
    )
    results = run_benchmark(settings, options)

    written = json.loads((tmp_path / "bench" / "throughput.json").read_text())
    assert written["ratios"] == results["ratios"]
    for run in ("workers_1", "workers_2"):
        figures = written[run]
        assert figures["distinct_transactions"] == 3000  # every transaction decided
        assert figures["rate"] > 0
        assert len(figures["cpu_cores_per_worker"]) == int(run[-1])
        assert all(mb > 50 for mb in figures["peak_rss_mb_per_worker"])  # a real worker process
    assert written["raw"]["rate"] > 0
    assert written["ratios"]["one_worker_over_raw"] == pytest.approx(
        written["workers_1"]["rate"] / written["raw"]["rate"]
    )
    logic = written["logic_alone"]
    assert logic["transactions"] == 3000 and logic["rate"] > 0
    alone = written["detector_alone"]
    assert alone["transactions"] == 3000 and alone["batch"] == 500 and alone["rate"] > 0
    assert written["ratios"]["one_worker_over_logic_alone"] == pytest.approx(
        written["workers_1"]["rate"] / logic["rate"]
    )
    latency = written["latency"]
    assert latency["decided"] == latency["sent"] > 0
    assert latency["cpu_cores"] > 0 and latency["cpu_ms_per_transaction"] > 0  # the worker's own CPU
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert set(written["models"]) >= {
        "logistic candidate predict (batches of 500)",
        "whole decision (rules, models, anomaly, explanation; batches of 500)",
    }
    (fixed,) = written["latency_by_rate"]
    assert fixed["offered_rate"] == 40.0
    assert fixed["decided"] == fixed["sent"] > 0
    assert 0 < fixed["p50_ms"] <= fixed["p99_ms"] <= fixed["max_ms"]
    for chart in ("throughput.svg", "latency.svg", "latency-by-rate.svg"):
        ET.parse(tmp_path / "bench" / chart)  # well-formed SVG
