"""What ``fraud soak`` writes at the end (soak.json, rss.svg, memory-parts.svg, lag.svg) and prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.tools.bench.report import say
from pipeline.tools.soak.figures import (
    BROKER_RESTART,
    KILL,
    Marker,
    Sample,
    line_chart_svg,
    parts_lines,
    rss_lines,
)


def write_report(report: dict[str, Any], out: Path) -> None:
    """The report as JSON, the memory and lag charts with the faults marked, and the summary."""
    (out / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    markers = [
        Marker(event["at"], "kill" if event["action"] == KILL else "broker restart",
               "#c0392b" if event["action"] == KILL else "#6a1b9a")
        for event in report["events"]
        if event["action"] in (KILL, BROKER_RESTART)
    ]  # fmt: skip
    options = report["options"]
    title = (
        f"Resident memory, soak of {options['minutes']:g} min at {options['rate']:g}/s "
        f"({report['kills']} kills, {report['broker_restarts']} broker restart)"
    )
    samples = [Sample(**sample) for sample in report["samples"]]
    (out / "rss.svg").write_text(line_chart_svg(title, "RSS MiB", rss_lines(samples), markers))
    parts = parts_lines(samples, "worker-1")  # the worker that runs the whole soak
    if parts:
        (out / "memory-parts.svg").write_text(
            line_chart_svg("worker-1's memory by part (fraud_worker_memory_bytes)", "MiB", parts, markers)
        )
    lag = {"input lag (transactions)": [(o["at"], float(o["lag"])) for o in report["offsets"]]}
    (out / "lag.svg").write_text(line_chart_svg("Workers' uncommitted input", "transactions", lag, markers))
    print_summary(report, out)


def print_summary(report: dict[str, Any], out: Path) -> None:
    ids = report["ids"]
    say("")
    say(
        f"soak {report['app_id']}: {report['ran_seconds'] / 60:.1f} min, "
        f"offered {report['offered_rate']:g}/s, "
        f"produced {report['produced_rate']:,.1f}/s; {report['kills']} kills, "
        f"{report['broker_restarts']} broker restarts, {report['unexpected_exits']} unexpected exits"
    )
    say(
        f"produced {ids['produced']:,} ({ids['produced_distinct']:,} distinct), "
        f"decided {ids['decided_distinct']:,}, "
        f"missing {ids['missing']:,}, duplicate decisions {ids['duplicate_decisions']:,}, "
        f"dead letters {report['dead_letters']:,}; "
        f"all decided {report['all_decided_after_stop_s']} s after the stop; "
        f"the monitor counts {report['monitor_transactions']}"
    )
    latency = report["latency"]
    if latency:
        say(
            f"event to decision: p50 {latency['p50_s']:.2f} s, p99 {latency['p99_s']:.2f} s, "
            f"max {latency['max_s']:.1f} s, worst minute's p99 {latency['worst_minute_p99_s']:.1f} s; "
            f"largest input lag {report['max_input_lag']}"
        )
    for role, rows in report["memory"].items():
        for row in rows:
            judged = row.get("after_warmup")
            verdict = (
                f"after warm-up {judged['start_mb']:,.0f} -> {judged['end_mb']:,.0f} "
                f"({'flat' if judged['flat'] else 'GROWING'})"
                if judged
                else "too short to judge"
            )
            say(
                f"  {role:10} pid {row['pid']:>7}: {row['first_mb']:,.0f} -> {row['last_mb']:,.0f} MiB "
                f"(peak {row['peak_mb']:,.0f}), {row['cpu_cores'] or 0:.2f} cores, "
                f"over {clock(row['from_s'])}-{clock(row['to_s'])}; {verdict}"
            )
            if row.get("parts_after_warmup"):
                say(
                    "      by part after warm-up (MiB): "
                    + ", ".join(
                        f"{part} {p['start_mb']:,.0f} -> {p['end_mb']:,.0f}"
                        for part, p in row["parts_after_warmup"].items()
                    )
                )
    say(
        f"{'PASSED' if report['passed'] else 'FAILED'}; report: {out / 'soak.json'}, charts: "
        f"{out / 'rss.svg'}, {out / 'lag.svg'}"
    )


def clock(seconds: float) -> str:
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"
