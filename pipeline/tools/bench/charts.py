"""The arithmetic of the throughput benchmark: rates, percentiles, ratios and the chart. No I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def steady_rate(timestamps: Sequence[float], skip: float = 0.1, keep: float = 0.95) -> float:
    """Messages per second over the steady part of a run: between the ``skip`` and ``keep``
    fractions of the messages in time order, so start-up, the first rebalance and the tail of the
    last partitions do not count."""
    if len(timestamps) < 20:
        raise ValueError(f"too few messages for a rate: {len(timestamps)}")
    ordered = sorted(timestamps)
    first, last = int(len(ordered) * skip), int(len(ordered) * keep) - 1
    seconds = ordered[last] - ordered[first]
    return (last - first) / seconds if seconds > 0 else float("inf")


def latency_summary(latencies_seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and max, in milliseconds."""
    return {
        "p50_ms": percentile(latencies_seconds, 50) * 1000,
        "p95_ms": percentile(latencies_seconds, 95) * 1000,
        "p99_ms": percentile(latencies_seconds, 99) * 1000,
        "max_ms": max(latencies_seconds) * 1000,
    }


def per_second(timestamps: Sequence[float]) -> list[int]:
    """How many messages fell in each whole second from the first one (for the chart)."""
    if not timestamps:
        return []
    start = min(timestamps)
    counts = [0] * (int(max(timestamps) - start) + 1)
    for at in timestamps:
        counts[int(at - start)] += 1
    return counts


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    note: str = ""


def bar_chart_svg(title: str, bars: Sequence[Bar], unit: str, width: int = 640) -> str:
    """A horizontal bar chart as a self-contained SVG (renders on GitHub and in any browser)."""
    row, left, top = 34, 190, 40
    height = top + row * len(bars) + 20
    scale = (width - left - 150) / max((bar.value for bar in bars), default=1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    for index, bar in enumerate(bars):
        y = top + index * row
        length = max(bar.value * scale, 1.0)
        parts += [
            f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{escape(bar.label)}</text>',
            f'<rect x="{left}" y="{y + 4}" width="{length:.1f}" height="{row - 12}" fill="#3b6fb6"/>',
            f'<text x="{left + length + 6:.1f}" y="{y + 17}">'
            f"{bar.value:,.{0 if bar.value >= 100 else 1}f} {escape(unit)} {escape(bar.note)}</text>",
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def top_frames(collapsed: Sequence[str], count: int) -> list[tuple[str, float]]:
    """The functions with the most self time in py-spy's collapsed stacks ("a;b;c 12" lines), as
    (function, share of all samples), largest first. Idle samples count as well: a worker that
    waits on Kafka shows it."""
    self_time: dict[str, int] = {}
    total = 0
    for line in collapsed:
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        self_time[leaf] = self_time.get(leaf, 0) + int(samples)
        total += int(samples)
    ranked = sorted(self_time.items(), key=lambda item: item[1], reverse=True)[:count]
    return [(frame, samples / total) for frame, samples in ranked]
