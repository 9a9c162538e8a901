"""The arithmetic of ``fraud soak``: its schedule of faults, the accounting of ids, memory over time
and the chart. No I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from pipeline.tools.bench.charts import percentile

KILL = "kill"
BROKER_RESTART = "broker_restart"


@dataclass(frozen=True)
class Fault:
    """A fault the soak causes ``at`` seconds after its start."""

    at: float
    action: str  # KILL or BROKER_RESTART


def fault_plan(minutes: float, kill_every_minutes: float, restart_broker: bool) -> list[Fault]:
    """A SIGKILL every ``kill_every_minutes`` (none in the last half-interval, so that the last
    restart is seen working), and one broker restart halfway between the two kills nearest the
    middle of the run."""
    if minutes <= 0 or kill_every_minutes <= 0:
        raise ValueError("minutes and kill_every_minutes must be positive")
    every = kill_every_minutes * 60
    duration = minutes * 60
    faults = [Fault(every * n, KILL) for n in range(1, int(duration / every) + 1)]
    faults = [fault for fault in faults if fault.at <= duration - every / 2]
    if restart_broker:
        middle = (math.floor(duration / 2 / every) + 0.5) * every
        faults.append(Fault(min(middle, duration * 0.75), BROKER_RESTART))
    return sorted(faults, key=lambda fault: fault.at)


def id_accounting(produced: Sequence[str], decided: Sequence[str]) -> dict[str, Any]:
    """Produced ids against decided ids: every produced id must be decided at least once;
    repeated decisions are counted, not errors."""
    produced_set, decided_set = set(produced), set(decided)
    missing = sorted(produced_set - decided_set)
    return {
        "produced": len(produced),
        "produced_distinct": len(produced_set),
        "decisions": len(decided),
        "decided_distinct": len(decided_set & produced_set),
        "missing": len(missing),
        "missing_first": missing[:10],
        "duplicate_decisions": len(decided) - len(decided_set),
        "decided_not_produced": len(decided_set - produced_set),
    }


def latency_figures(latencies_seconds: Sequence[tuple[float, float]]) -> dict[str, float]:
    """(decision time, seconds from event to decision) -> p50, p99, max over the run and the
    worst minute's p99, in seconds."""
    if not latencies_seconds:
        return {}
    values = [latency for _, latency in latencies_seconds]
    by_minute: dict[int, list[float]] = {}
    for at, latency in latencies_seconds:
        by_minute.setdefault(int(at // 60), []).append(latency)
    return {
        "p50_s": percentile(values, 50),
        "p99_s": percentile(values, 99),
        "max_s": max(values),
        "worst_minute_p99_s": max(percentile(minute, 99) for minute in by_minute.values()),
    }


@dataclass(frozen=True)
class Sample:
    """The resident memory and CPU time so far of one process ``at`` seconds after the soak's start."""

    at: float
    role: str  # worker-1, worker-2, simulator, monitor, broker
    pid: int
    rss_mb: float
    cpu_seconds: float = 0.0
    parts_mb: dict[str, float] | None = None
    """A worker's memory by part (``fraud_worker_memory_bytes``), when it answered."""


def memory_summary(
    samples: Iterable[Sample], warmup_seconds: float, tolerance: float = 0.1
) -> dict[str, Any]:
    """Per role, each process (pid) it had: its first, last and peak RSS; and, for a process that
    lived at least one and a half warm-ups, whether its RSS stayed flat after the warm-up: the
    median of the last fifth of its later samples at most ``tolerance`` (or 32 MiB, whichever is
    more) above the median of their first fifth."""
    by_pid: dict[tuple[str, int], list[Sample]] = {}
    for sample in samples:
        by_pid.setdefault((sample.role, sample.pid), []).append(sample)
    summary: dict[str, Any] = {}
    for (role, pid), series in sorted(by_pid.items(), key=lambda item: (item[0][0], item[1][0].at)):
        series.sort(key=lambda s: s.at)
        row: dict[str, Any] = {
            "pid": pid,
            "from_s": round(series[0].at, 1),
            "to_s": round(series[-1].at, 1),
            "first_mb": round(series[0].rss_mb, 1),
            "last_mb": round(series[-1].rss_mb, 1),
            "peak_mb": round(max(s.rss_mb for s in series), 1),
            "cpu_cores": _cores(series),
        }
        later = [s.rss_mb for s in series if s.at - series[0].at >= warmup_seconds]
        if series[-1].at - series[0].at >= 1.5 * warmup_seconds and len(later) >= 10:
            fifth = max(1, len(later) // 5)
            start = percentile(later[:fifth], 50)
            end = percentile(later[-fifth:], 50)
            growth = end - start
            row["after_warmup"] = {
                "start_mb": round(start, 1),
                "end_mb": round(end, 1),
                "growth_mb": round(growth, 1),
                "flat": growth <= max(tolerance * start, 32.0),
            }
            parts = _parts_after_warmup([s for s in series if s.at - series[0].at >= warmup_seconds])
            if parts:
                row["parts_after_warmup"] = parts
        summary.setdefault(role, []).append(row)
    return summary


def _parts_after_warmup(later: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """For each memory part a worker reported after the warm-up, the medians of the first and the
    last fifth of its samples in MiB, as RSS is judged: what grew, when RSS grew."""
    by_part: dict[str, list[float]] = {}
    for sample in later:
        for part, mb in (sample.parts_mb or {}).items():
            by_part.setdefault(part, []).append(mb)
    out = {}
    for part, values in sorted(by_part.items()):
        if len(values) >= 10:
            fifth = max(1, len(values) // 5)
            out[part] = {
                "start_mb": round(percentile(values[:fifth], 50), 1),
                "end_mb": round(percentile(values[-fifth:], 50), 1),
            }
    return out


def parts_lines(samples: Iterable[Sample], role: str) -> dict[str, list[tuple[float, float] | None]]:
    """The memory-parts chart's lines for ``role``'s processes: its RSS and each part it reported,
    broken where its process changed or did not answer."""
    lines: dict[str, list[tuple[float, float] | None]] = {"RSS": []}
    last_pid = None
    for sample in sorted((s for s in samples if s.role == role), key=lambda s: s.at):
        if last_pid is not None and sample.pid != last_pid:
            for line in lines.values():
                line.append(None)
        last_pid = sample.pid
        lines["RSS"].append((sample.at, sample.rss_mb))
        for part, mb in (sample.parts_mb or {}).items():
            lines.setdefault(part, []).append((sample.at, mb))
    return lines if len(lines) > 1 else {}


def _cores(series: Sequence[Sample]) -> float | None:
    """Average CPU cores a process used between its first and last sample."""
    seconds = series[-1].at - series[0].at
    if seconds <= 0:
        return None
    return round((series[-1].cpu_seconds - series[0].cpu_seconds) / seconds, 3)


def all_flat(summary: dict[str, Any]) -> bool:
    """No process whose growth after warm-up was judged went beyond its tolerance."""
    return all(
        row["after_warmup"]["flat"] for rows in summary.values() for row in rows if "after_warmup" in row
    )


@dataclass(frozen=True)
class Marker:
    """A vertical line on the chart: a fault at ``at`` seconds."""

    at: float
    label: str
    colour: str


_COLOURS = ("#3b6fb6", "#e08a1e", "#2e9c5a", "#b03a8e", "#6b6b6b", "#c0392b", "#17a2b8")


def line_chart_svg(
    title: str,
    unit: str,
    lines: dict[str, list[tuple[float, float] | None]],
    markers: Sequence[Marker] = (),
    width: int = 900,
    height: int = 420,
) -> str:
    """Lines of (seconds, value) points against minutes, a ``None`` breaking a line (a process
    restarted), with labelled vertical markers; a self-contained SVG."""
    left, right, top, bottom = 70, 150, 40, 50
    points = [p for line in lines.values() for p in line if p is not None]
    x_max = max([p[0] for p in points] + [m.at for m in markers] + [60.0])
    y_max = max([p[1] for p in points] + [1.0]) * 1.1
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(seconds: float) -> float:
        return left + seconds / x_max * plot_w

    def y(value: float) -> float:
        return top + plot_h - value / y_max * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>',
        f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">minutes</text>',
        f'<text x="15" y="{top + plot_h / 2}" transform="rotate(-90 15 {top + plot_h / 2})" '
        f'text-anchor="middle">{escape(unit)}</text>',
    ]
    for tick in _ticks(y_max):
        parts += [
            f'<line x1="{left - 4}" y1="{y(tick):.1f}" x2="{left + plot_w}" y2="{y(tick):.1f}" '
            'stroke="#eee"/>',
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:,.0f}</text>',
        ]
    for tick in _ticks(x_max / 60):
        parts.append(
            f'<text x="{x(tick * 60):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{tick:g}</text>'
        )
    for marker in markers:
        parts += [
            f'<line x1="{x(marker.at):.1f}" y1="{top}" x2="{x(marker.at):.1f}" y2="{top + plot_h}" '
            f'stroke="{marker.colour}" stroke-dasharray="4 3"/>',
            f'<text x="{x(marker.at) + 2:.1f}" y="{top + 10}" fill="{marker.colour}" font-size="10">'
            f"{escape(marker.label)}</text>",
        ]
    for index, (name, line) in enumerate(lines.items()):
        colour = _COLOURS[index % len(_COLOURS)]
        for segment in _segments(line):
            path = " ".join(f"{x(at):.1f},{y(value):.1f}" for at, value in segment)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        legend_y = top + 16 * index + 8
        parts += [
            f'<rect x="{left + plot_w + 12}" y="{legend_y - 8}" width="12" height="3" fill="{colour}"/>',
            f'<text x="{left + plot_w + 30}" y="{legend_y}">{escape(name)}</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def rss_lines(samples: Iterable[Sample]) -> dict[str, list[tuple[float, float] | None]]:
    """The chart's lines: one per role, broken where its process changed."""
    lines: dict[str, list[tuple[float, float] | None]] = {}
    last_pid: dict[str, int] = {}
    for sample in sorted(samples, key=lambda s: s.at):
        line = lines.setdefault(sample.role, [])
        if sample.role in last_pid and last_pid[sample.role] != sample.pid:
            line.append(None)
        last_pid[sample.role] = sample.pid
        line.append((sample.at, sample.rss_mb))
    return dict(sorted(lines.items()))


def _segments(line: list[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    segments: list[list[tuple[float, float]]] = [[]]
    for point in line:
        if point is None:
            segments.append([])
        else:
            segments[-1].append(point)
    return [segment for segment in segments if segment]


def _ticks(maximum: float, count: int = 6) -> list[float]:
    """Round tick values from 0 up to ``maximum``."""
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return [step * n for n in range(int(maximum / step) + 1)]


def next_tick(tick: float, step: float, now: float) -> float:
    """The first tick of the grid ``tick + n * step`` after ``now`` (ticks missed while the soak
    was busy, e.g. restarting the broker, are skipped, not caught up)."""
    while tick <= now:
        tick += step
    return tick
