"""The workers' model-health reports (``model_health`` v1 and v2 on ``<app id>-model-health``), kept for the
monitor's "Model health" section: the latest report of each worker in full, and of every report
the few figures the charts need over time, bounded (``MAX_REPORTS``: a week of one report a minute
from two workers). Thread-safe; the math is in ``monitor.model_health``."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.state.records import AddResult, InvalidRecordError, VersionedStore, record_time
from pipeline.contracts.json_schemas import SchemaViolation, validator

MAX_REPORTS = 20_160


@dataclass(frozen=True, slots=True)
class HealthPoint:
    """What the charts need of one report."""

    worker: str
    at: float
    """Seconds since the epoch."""
    labels_learnt: int
    generation: int
    champion: str
    interval_labels: int
    interval_frauds: int
    delay_counts: tuple[int, ...]
    since: float = 0.0
    """The report's ``interval.since``: the worker's previous report (or its start), in seconds."""
    promotions: tuple[Promotion, ...] = ()
    """The report's newest promotions, oldest first."""


@dataclass(frozen=True, slots=True)
class Promotion:
    """A promotion as a report lists it: the label count at which ``champion`` beat ``beaten``, and
    when (seconds since the epoch; ``promotions[].at`` of a v2 report, None in a v1 report and for
    a promotion made before the worker started)."""

    at_label: int
    champion: str
    beaten: str
    at: float | None = None


class ModelHealthStore(VersionedStore):
    """The reports of every worker (a report must be schema-valid: the section trusts its figures)."""

    def __init__(self, max_reports: int = MAX_REPORTS) -> None:
        super().__init__()
        self._points: deque[HealthPoint] = deque(maxlen=max_reports)
        self._latest: dict[str, dict[str, Any]] = {}
        self._seen: set[tuple[str, float]] = set()
        self._check = validator("model_health")

    def _count(self) -> int:
        return len(self._points)

    def add(self, record: Mapping[str, Any]) -> AddResult:
        """Keep one report; a redelivered one (same worker and time) is a duplicate."""
        try:
            self._check(dict(record))
        except SchemaViolation as exc:
            raise InvalidRecordError(f"model_health: {exc.message}") from exc
        at = record_time(record["at"], "at").timestamp()
        champion = next((c["name"] for c in record["contenders"] if c["role"] == "champion"), "")
        interval = record["interval"]
        point = HealthPoint(
            record["worker"], at, record["labels_learnt"], record["generation"], champion,
            interval["labels"], interval["frauds"], tuple(interval["delay_counts"]),
            record_time(interval["since"], "interval.since").timestamp(),
            tuple(
                Promotion(p["at_label"], p["champion"], p["beaten"],
                          record_time(p["at"], "promotions.at").timestamp() if "at" in p else None)
                for p in record["promotions"]
            ),
        )  # fmt: skip
        with self._lock:
            if (point.worker, at) in self._seen:
                return "duplicate"
            if len(self._points) == self._points.maxlen:  # the oldest goes
                oldest = self._points[0]
                self._seen.discard((oldest.worker, oldest.at))
            self._seen.add((point.worker, at))
            self._points.append(point)
            latest = self._latest.get(point.worker)
            if latest is None or record_time(latest["at"], "at").timestamp() <= at:
                self._latest[point.worker] = dict(record)
            self._version += 1
            return "added"

    def points(self, since: float = 0.0) -> list[HealthPoint]:
        """The reports' points from ``since`` (seconds), oldest first."""
        with self._lock:
            return sorted((p for p in self._points if p.at >= since), key=lambda p: p.at)

    def latest(self) -> dict[str, dict[str, Any]]:
        """The newest report of each worker, by worker."""
        with self._lock:
            return dict(self._latest)
