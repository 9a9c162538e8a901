"""The figures of the monitor's "Model health" section, pure (no Kafka, no Dash callbacks):

* labels learnt per hour and the label-delay distribution, summed from the workers' reports'
  intervals (``monitor.state.model_health``; each report counts the labels learnt since the last);
* the champion and challengers of each worker's latest report, with their recent average
  precision and precision at the review threshold (computed by the worker from labels,
  pipeline/detection/health.py);
* the generations and promotions on a timeline (each change of a worker's champion or generation),
  placed at the promotion's own time when the report gives it (``promotions[].at``,
  ``model_health.v2``), else at the time of the report that first shows it, the report's own
  ``at`` (never when the monitor read it): then the promotion happened within that report's
  interval (``interval.since`` to ``at``), at the label count its ``promotions`` entry gives (a v1
  report, or a promotion made before the worker started, has no time of promotion);
* the score distribution by outcome (fraud, legitimate, no label yet) of the decided transactions
  (``monitor.state.scored``);
* the live alert precision from analysts' verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from monitor.state.model_health import HealthPoint, Promotion
from monitor.state.scored import Sample
from monitor.state.verdicts import Verdict
from pipeline.detection.health import DELAY_BOUNDS_HOURS

HOUR = 3600
DELAY_NAMES = ("≤ 1 h", "1-6 h", "6 h-1 d", "1-3 d", "3-7 d", "7-30 d", "> 30 d")
assert len(DELAY_NAMES) == len(DELAY_BOUNDS_HOURS) + 1
SCORE_BINS = 20
OUTCOMES = ("fraud", "legitimate", "no label yet")
OUTCOME_COLOURS = {"fraud": "#d62728", "legitimate": "#2ca02c", "no label yet": "#7f7f7f"}


@dataclass(frozen=True, slots=True)
class HourCount:
    hour: datetime
    labels: int
    frauds: int


def labels_per_hour(points: Iterable[HealthPoint], since: float, until: float) -> list[HourCount]:
    """Labels (and frauds) learnt in each hour from ``since`` to ``until`` (seconds), by the time of
    the report that counted them; every hour is listed, empty ones with 0."""
    first = int(since // HOUR)
    last = int(until // HOUR)
    labels = [0] * (last - first + 1)
    frauds = [0] * (last - first + 1)
    for point in points:
        index = int(point.at // HOUR) - first
        if 0 <= index < len(labels):
            labels[index] += point.interval_labels
            frauds[index] += point.interval_frauds
    return [
        HourCount(datetime.fromtimestamp((first + i) * HOUR, UTC), labels[i], frauds[i])
        for i in range(len(labels))
    ]


def delay_distribution(points: Iterable[HealthPoint]) -> list[int]:
    """Labels learnt in each delay bucket (``DELAY_NAMES``)."""
    counts = [0] * len(DELAY_NAMES)
    for point in points:
        for i, count in enumerate(point.delay_counts[: len(counts)]):
            counts[i] += count
    return counts


def generation_changes(points: Iterable[HealthPoint]) -> list[HealthPoint]:
    """For each worker, its first report and every report whose champion or generation differs
    from its report before: the timeline of generations and promotions."""
    last: dict[str, tuple[int, str]] = {}
    changes: list[HealthPoint] = []
    for point in sorted(points, key=lambda p: p.at):
        now = (point.generation, point.champion)
        if last.get(point.worker) != now:
            changes.append(point)
            last[point.worker] = now
    return changes


def latest_points(points: Iterable[HealthPoint]) -> dict[str, HealthPoint]:
    """Each worker's newest point."""
    latest: dict[str, HealthPoint] = {}
    for point in points:
        if point.worker not in latest or latest[point.worker].at < point.at:
            latest[point.worker] = point
    return latest


def promotion_in(point: HealthPoint) -> Promotion | None:
    """The promotion made within ``point``'s interval: the newest of its report's promotions whose
    label count falls among the labels learnt since the previous report; None if none did."""
    first = point.labels_learnt - point.interval_labels
    return next((p for p in reversed(point.promotions) if first < p.at_label <= point.labels_learnt), None)


def change_time(point: HealthPoint) -> float:
    """Where the timeline places a change (seconds): the time of the promotion made within its
    report's interval when the report gives it (v2), else the report's time."""
    promotion = promotion_in(point)
    return point.at if promotion is None or promotion.at is None else promotion.at


def _clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def generation_text(point: HealthPoint) -> str:
    """What the timeline says of a change: the champion and generation as of the report, and for a
    promotion when it happened (v2), or the interval it happened in (a report without its time)."""
    text = f"{point.champion}, generation {point.generation}, after {point.labels_learnt:,} labels"
    promotion = promotion_in(point)
    if promotion is None:
        return f"{text}; reported {_clock(point.at)} UTC"
    promoted = f"promoted at label {promotion.at_label:,} ({promotion.champion} beat {promotion.beaten})"
    if promotion.at is not None:
        return f"{text}; {promoted} at {_clock(promotion.at)} UTC"
    return f"{text}; {promoted} between {_clock(point.since)} and {_clock(point.at)} UTC"


def score_histogram(sample: Sample, bins: int = SCORE_BINS) -> dict[str, list[int]]:
    """Decided transactions by model score (``bins`` equal bins over [0, 1]) and outcome."""
    counts = {outcome: [0] * bins for outcome in OUTCOMES}
    for row in sample.rows:
        if math.isnan(row.model_score):
            continue
        label = sample.labels.get(row.transaction_id)
        outcome = OUTCOMES[2] if label is None else OUTCOMES[0] if label else OUTCOMES[1]
        counts[outcome][min(int(row.model_score * bins), bins - 1)] += 1
    return counts


@dataclass(frozen=True, slots=True)
class VerdictPrecision:
    fraud: int
    legitimate: int

    @property
    def precision(self) -> float | None:
        total = self.fraud + self.legitimate
        return self.fraud / total if total else None

    def text(self) -> str:
        if self.precision is None:
            return "no analyst verdict yet"
        return (
            f"{self.precision:.1%} ({self.fraud} confirmed fraud of "
            f"{self.fraud + self.legitimate} alerts with a verdict)"
        )


def verdict_precision(verdicts: Iterable[Verdict], since: datetime | None = None) -> VerdictPrecision:
    """Analysts' verdicts on alerts (given since ``since``): confirmed frauds against legitimate."""
    chosen = [v for v in verdicts if since is None or v.labelled_at >= since]
    fraud = sum(v.is_fraud for v in chosen)
    return VerdictPrecision(fraud, len(chosen) - fraud)


CONTENDER_COLUMNS = (
    "Worker", "Model", "Role", "Learnt", "Recent labels", "Frauds", "Average precision",
    "Precision at review", "Scored at or above review",
)  # fmt: skip


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def contender_rows(latest: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """One row per contender of each worker's latest report, the champion first."""
    rows = []
    for worker in sorted(latest):
        report = latest[worker]
        for c in sorted(report["contenders"], key=lambda c: c["role"] != "champion"):
            rows.append(
                (
                    worker,
                    c["name"],
                    c["role"],
                    f"{c['learnt']:,}",
                    f"{c['labels']:,}",
                    f"{c['frauds']:,}",
                    _share(c["average_precision"]),
                    _share(c["precision_at_review"]),
                    f"{c['flagged_at_review']:,}",
                )
            )
    return rows


def summary(
    latest: Mapping[str, Mapping[str, Any]], points: list[HealthPoint], now: float, verdicts: VerdictPrecision
) -> str:
    """One line: the workers, their champions, labels learnt in the last hour, when last reported."""
    if not latest:
        return "No model-health report yet: the workers report once a minute while they run."
    champions = []
    for worker in sorted(latest):
        report = latest[worker]
        at = datetime.fromisoformat(report["at"]).timestamp()
        champions.append(
            f"{worker}: {report['model_version']}, generation {report['generation']}, "
            f"{report['labels_learnt']:,} labels learnt, reported {max(now - at, 0):.0f} s ago"
        )
    last_hour = sum(p.interval_labels for p in points if p.at >= now - HOUR)
    return (
        f"{'; '.join(champions)}. Labels learnt in the last hour: {last_hour:,}. "
        f"Alert precision from analysts' verdicts: {verdicts.text()}."
    )


def health_figure(
    hours: list[HourCount],
    delays: list[int],
    changes: list[HealthPoint],
    scores: dict[str, list[int]],
    window: tuple[float, float] | None = None,
    ends: Mapping[str, HealthPoint] | None = None,
) -> go.Figure:
    """Four charts: labels learnt per hour, label delays, generations (over ``window``, seconds,
    when given; each worker's line drawn on to its report in ``ends``, its latest), and the model
    score's distribution within each outcome (the share of its transactions per bin)."""
    ends = ends or {}
    figure = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=(
            "Labels learnt per hour",
            "Label delay (event time to label)",
            "Champion generation (promotions)",
            "Model score by outcome (share of each)",
        ),
        vertical_spacing=0.18,
    )
    figure.add_bar(
        x=[h.hour for h in hours], y=[h.labels - h.frauds for h in hours], name="legitimate labels",
        marker_color=OUTCOME_COLOURS["legitimate"], row=1, col=1,
    )  # fmt: skip
    figure.add_bar(
        x=[h.hour for h in hours], y=[h.frauds for h in hours], name="fraud labels",
        marker_color=OUTCOME_COLOURS["fraud"], row=1, col=1,
    )  # fmt: skip
    figure.add_bar(
        x=list(DELAY_NAMES), y=delays, name="labels by delay", marker_color="#1f77b4", row=1, col=2
    )
    for worker in sorted({p.worker for p in changes}):
        mine = [p for p in changes if p.worker == worker]
        end = ends.get(worker)
        extra = [end] if end is not None and end.at > mine[-1].at else []  # the line goes on to now
        figure.add_scatter(
            x=[datetime.fromtimestamp(change_time(p), UTC) for p in mine]
            + [datetime.fromtimestamp(p.at, UTC) for p in extra],
            y=[p.generation for p in mine + extra],
            text=[p.champion for p in mine] + [""] * len(extra),
            hovertext=[generation_text(p) for p in mine + extra],
            mode="lines+markers+text",
            marker_size=[8] * len(mine) + [0] * len(extra),
            textposition=["top right"] * (len(mine) - 1) + ["top left"] + ["top left"] * len(extra),
            line_shape="hv",
            name=f"generation, {worker}",
            row=2,
            col=1,
        )
    width = 1 / SCORE_BINS
    centres = [round((i + 0.5) * width, 4) for i in range(SCORE_BINS)]
    for outcome in OUTCOMES:  # each outcome's share per bin: comparable whatever the counts
        counts = scores[outcome]
        total = sum(counts)
        figure.add_scatter(
            x=centres, y=[c / total if total else 0.0 for c in counts], customdata=counts,
            name=f"score, {outcome} ({total:,})", mode="lines+markers", line_color=OUTCOME_COLOURS[outcome],
            hovertemplate="%{customdata} transactions (%{y:.1%}) scored %{x}<extra></extra>", row=2, col=2,
        )  # fmt: skip
    figure.update_layout(barmode="stack", height=620, margin={"l": 40, "r": 10, "t": 40, "b": 30})
    figure.update_xaxes(range=[0, 1], title_text="model score", row=2, col=2)
    if window is not None:
        figure.update_xaxes(range=[datetime.fromtimestamp(t, UTC) for t in window], row=2, col=1)
    figure.update_yaxes(tickformat=".0%", title_text="share of the outcome", row=2, col=2)
    return figure
