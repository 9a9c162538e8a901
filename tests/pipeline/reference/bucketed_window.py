"""The reference for pipeline/detection/rows.py's ``Ring``: sliding-window counts and amount sums
kept in fixed-width time buckets, as a dict scanned on every query.

A window of ``W`` seconds at time ``now`` covers the buckets whose index lies in
``(bucket(now) - W // width, bucket(now)]``: whole buckets, so the window slides one bucket at
a time. Only the buckets within ``horizon`` of the newest are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BucketedWindow:
    """Counts and sums of amounts in buckets of ``width`` seconds, kept for ``horizon`` seconds."""

    width: int
    horizon: int
    buckets: dict[int, list[float]] = field(default_factory=dict)
    newest: int | None = None

    def __post_init__(self) -> None:
        if self.width <= 0 or self.horizon < self.width or self.horizon % self.width:
            raise ValueError("horizon must be a positive multiple of width")

    def add(self, at: float, amount: float) -> None:
        """Record one event of ``amount`` at time ``at`` (seconds since the epoch)."""
        index = int(at // self.width)
        newest = index if self.newest is None else max(self.newest, index)
        if index <= newest - self.horizon // self.width:
            return  # later than the horizon: no window it could count in is kept
        self.newest = newest
        for stale in [i for i in self.buckets if i <= newest - self.horizon // self.width]:
            del self.buckets[stale]
        bucket = self.buckets.setdefault(index, [0.0, 0.0])
        bucket[0] += 1.0
        bucket[1] += amount

    def count(self, now: float, window: int) -> float:
        return self.totals(now, window)[0]

    def totals(self, now: float, window: int) -> tuple[float, float]:
        """(count, amount sum) of the events in the window of ``window`` seconds ending at ``now``."""
        if window % self.width or window > self.horizon:
            raise ValueError(f"window {window}s must be a multiple of {self.width}s up to {self.horizon}s")
        last = int(now // self.width)
        first = last - window // self.width
        count = total = 0.0
        for index, (n, amount) in self.buckets.items():
            if first < index <= last:
                count += n
                total += amount
        return count, total
