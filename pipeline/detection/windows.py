"""Sliding-window counts and amount sums, kept in fixed-width time buckets.

A window of ``W`` seconds at time ``now`` covers the buckets whose index lies in
``(bucket(now) - W // width, bucket(now)]``: whole buckets, so the window slides one bucket at
a time. Memory is bounded by ``horizon // width`` buckets whatever the traffic.
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
    _counts: dict[int, float] = field(default_factory=dict, repr=False, compare=False)
    """Per window asked by ``count`` (in buckets), the events in it at the newest bucket, kept up to
    date by ``add``: whole numbers, so these running counts are exactly what a scan would give."""

    def __post_init__(self) -> None:
        if self.width <= 0 or self.horizon < self.width or self.horizon % self.width:
            raise ValueError("horizon must be a positive multiple of width")

    def add(self, at: float, amount: float) -> None:
        """Record one event of ``amount`` at time ``at`` (seconds since the epoch)."""
        index = int(at // self.width)
        newest = index if self.newest is None else max(self.newest, index)
        if index <= newest - self.horizon // self.width:
            return  # later than the horizon: no window it could count in is kept
        if newest != self.newest:
            if self.newest is not None:
                self._slide_counts(self.newest, newest)
            self.newest = newest
            self._expire(newest)
        bucket = self.buckets.get(index)
        if bucket is None:
            self.buckets[index] = [1.0, amount]
        else:
            bucket[0] += 1.0
            bucket[1] += amount
        for size in self._counts:
            if index > newest - size:
                self._counts[size] += 1.0

    def count(self, now: float, window: int) -> float:
        """The count of ``totals(now, window)``, from a running count when ``now`` is not earlier
        than the newest event: no scan of the buckets for a busy entity."""
        if window % self.width or window > self.horizon:
            raise ValueError(f"window {window}s must be a multiple of {self.width}s up to {self.horizon}s")
        newest = self.newest
        if newest is None:
            return 0.0
        last, size = int(now // self.width), window // self.width
        if last < newest:  # a moment before the newest event: scan
            return self.totals(now, window)[0]
        running = self._counts.get(size)
        if running is None:
            running = self._counts[size] = self.totals(newest * self.width, window)[0]
        return self._slid(running, newest, last, size)

    def _slid(self, running: float, old: int, new: int, size: int) -> float:
        """A window of ``size`` buckets counting ``running`` events at bucket ``old``, counted at
        bucket ``new`` (not earlier): less the buckets that left it meanwhile."""
        if new - old >= size:
            return 0.0
        for index in range(old - size + 1, new - size + 1):
            bucket = self.buckets.get(index)
            if bucket is not None:
                running -= bucket[0]
        return running

    def _slide_counts(self, old: int, new: int) -> None:
        """The running counts as the newest bucket moves from ``old`` to ``new``."""
        for size, running in self._counts.items():
            self._counts[size] = self._slid(running, old, new, size)

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

    def _expire(self, newest: int) -> None:
        oldest_kept = newest - self.horizon // self.width
        stale = [index for index in self.buckets if index <= oldest_kept]
        for index in stale:
            del self.buckets[index]

    def to_state(self) -> list[list[float]]:
        return [[index, n, amount] for index, (n, amount) in self.buckets.items()]

    @classmethod
    def from_state(cls, width: int, horizon: int, state: list[list[float]] | None) -> BucketedWindow:
        buckets = {int(index): [n, amount] for index, n, amount in state or []}
        return cls(width, horizon, buckets, max(buckets) if buckets else None)
