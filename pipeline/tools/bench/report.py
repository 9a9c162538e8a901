"""What ``fraud bench`` writes (throughput.json, the charts) and prints at the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.tools.bench.charts import (
    Bar,
    bar_chart_svg,
)


def say(message: str) -> None:
    print(message, flush=True)


def write_quick(results: dict[str, Any], out: Path) -> dict[str, Any]:
    """A quick look's figures (--one-worker-only, --latency-only) go to quick.json, beside the full
    run's throughput.json, which they leave alone."""
    (out / "quick.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def write(results: dict[str, Any], out: Path) -> None:
    (out / "throughput.json").write_text(json.dumps(results, indent=2) + "\n")
    raw, one, two = (results[k]["rate"] for k in ("raw", "workers_1", "workers_2"))
    logic = results["logic_alone"]["rate"]
    bars = [
        Bar("raw consume→produce", raw),
        *([Bar("detector alone", results["detector_alone"]["rate"])] if "detector_alone" in results else []),
        Bar("own work, no Kafka", logic),
        Bar("pipeline, 1 worker", one, f"({one / raw:.0%} of raw, {one / logic:.0%} of its work alone)"),
        Bar("pipeline, 2 workers", two, f"(x{two / one:.2f})"),
    ]
    (out / "throughput.svg").write_text(bar_chart_svg("Transactions per second", bars, "/s"))
    latency = results["latency"]
    bars = [Bar(name, latency[f"{name}_ms"]) for name in ("p50", "p95", "p99", "max")]
    title = f"End-to-end latency at {latency['offered_rate']:,.0f} transactions/s"
    (out / "latency.svg").write_text(bar_chart_svg(title, bars, "ms"))
    bars = [
        Bar(f"{row['offered_rate']:,.0f}/s {name}", row[f"{name}_ms"])
        for row in results.get("latency_by_rate", [])
        for name in ("p50", "p99")
    ]
    if bars:
        title = "End-to-end latency at fixed rates (p50, p99)"
        (out / "latency-by-rate.svg").write_text(bar_chart_svg(title, bars, "ms"))


def print_summary(results: dict[str, Any]) -> None:
    raw, one, two = (results[k] for k in ("raw", "workers_1", "workers_2"))
    latency = results["latency"]
    say("")
    say(f"{'':34}{'transactions/s':>16}{'CPU cores':>22}{'peak RSS MiB':>22}")
    say(
        f"{'raw consume -> produce':34}{raw['rate']:>16,.0f}"
        f"{raw['cpu_cores']:>22.2f}{raw['peak_rss_mb']:>22.0f}"
    )
    if "detector_alone" in results:
        say(f"{'detector alone, batches of 500':34}{results['detector_alone']['rate']:>16,.0f}{1.0:>22.2f}")
    say(f"{'own work alone, no Kafka':34}{results['logic_alone']['rate']:>16,.0f}{1.0:>22.2f}")
    for name, row in (("pipeline, 1 worker", one), ("pipeline, 2 workers", two)):
        cpu = " / ".join(f"{c:.2f}" for c in row["cpu_cores_per_worker"])
        mem = " / ".join(f"{m:.0f}" for m in row["peak_rss_mb_per_worker"])
        say(f"{name:34}{row['rate']:>16,.0f}{cpu:>22}{mem:>22}")
    say("")
    say(f"1 worker / raw:        {results['ratios']['one_worker_over_raw']:.1%}")
    say(f"2 workers / 1 worker:  x{results['ratios']['two_workers_over_one']:.2f}")
    say(f"1 worker / own work:   {results['ratios']['one_worker_over_logic_alone']:.1%}")
    say(latency_line(latency))
    for row in results.get("latency_by_rate", []):
        say(latency_line(row))
    duplicates = one["duplicates"] + two["duplicates"]
    say(f"decisions: every transaction decided in each run; {duplicates} duplicate decisions")
    say(f"alerted (review or block): {one['alert_share']:.1%} with 1 worker, {two['alert_share']:.1%} with 2")
    if "profile_top" in one:
        say("\nwhere one worker spends its time (py-spy, self time):")
        for frame, share in one["profile_top"]:
            say(f"  {share:6.1%}  {frame}")


def latency_line(latency: dict[str, Any]) -> str:
    return (
        f"latency at {latency['offered_rate']:,.0f}/s ({latency['decided']:,}/{latency['sent']:,} decided): "
        f"p50 {latency['p50_ms']:.1f} ms, p95 {latency['p95_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms, "
        f"max {latency['max_ms']:.1f} ms; worker {latency['cpu_cores']:.2f} cores, "
        f"{latency['cpu_ms_per_transaction']:.2f} ms CPU per transaction"
    )
