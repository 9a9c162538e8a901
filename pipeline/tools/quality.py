"""The quality benchmark's protocol and baselines (benchmarks/quality.py): pure, no Kafka.

Protocol (as in the fraud-detection handbook, "Reproducible Machine Learning for Credit Card Fraud
Detection"): every scorer scores every transaction before its label is known; a label becomes known
``known_at`` (7 days after its transaction, as chargebacks arrive). After a burn-in, each test week
is scored without the cards already known to be compromised (a fraud label known before the week
starts: their transactions would be blocked anyway). Per test week: ROC AUC, average precision,
and card precision@k per day, the cards found on earlier days of the week removed (an investigator
who found a compromised card does not find it again).

Baselines: the handbook's standard features computed from the raw stream with only what is known
at scoring time (``baseline_features``), a loop that retrains a batch model every week on the
labels known by then (``weekly_retrained``), and online models (a logistic regression, an adaptive
random forest on a rebalanced sample of the labels) that learn each label when it becomes known
(``online_delayed``).

The module is longer than 400 lines because the protocol, the baseline features and the baselines'
training loops are one benchmark's method, read together when its figures are questioned.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any

import numpy as np

from pipeline.detection.evaluation import average_precision, card_precision_at_k, roc_auc

DAY = 86400.0
WEEK = 7 * DAY
WINDOWS = (1, 7, 30)
BASELINE_FEATURES: tuple[str, ...] = (
    "amount",
    "is_weekend",
    "is_night",
    *(f"customer_{name}_{w}d" for w in WINDOWS for name in ("count", "mean_amount")),
    *(f"terminal_{name}_{w}d" for w in WINDOWS for name in ("labelled", "frauds", "risk")),
)
"""Amount, weekend and night flags; per customer, count and mean amount over 1/7/30 days (this
payment included); per terminal, over the labels that became known in the last 1/7/30 days: how
many, how many frauds, and the fraud rate."""

Predict = Callable[[np.ndarray], np.ndarray]
Fit = Callable[[np.ndarray, np.ndarray], Predict]
Progress = Callable[[str], None]


# --- the stream and the protocol ---------------------------------------------------------------
@dataclass(frozen=True)
class Stream:
    """The columns the protocol needs, in event-time order."""

    ids: list[str]
    times: np.ndarray
    cards: np.ndarray
    labels: np.ndarray
    known_at: np.ndarray
    """When each label becomes known (seconds since the epoch, as ``times``)."""

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Mapping[str, Any]],
        delay_days: float = 7.0,
        known_at: Sequence[float] | None = None,
    ) -> Stream:
        """From transactions in event-time order with ``is_fraud``; labels known ``delay_days``
        after their transaction unless ``known_at`` says when."""
        times = np.array([parse_time(row["event_time"]) for row in rows], dtype=np.float64)
        if len(times) > 1 and np.any(np.diff(times) < 0):
            raise ValueError("the rows are not in event-time order")
        return cls(
            ids=[str(row["transaction_id"]) for row in rows],
            times=times,
            cards=np.array([row["card_token"] for row in rows], dtype=object),
            labels=np.array([bool(row["is_fraud"]) for row in rows], dtype=bool),
            known_at=np.asarray(known_at, dtype=np.float64)
            if known_at is not None
            else times + delay_days * DAY,
        )

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class TestWeek:
    """One test week: its rows (known-compromised cards removed) and those rows day by day."""

    start: float
    end: float
    rows: np.ndarray
    days: list[np.ndarray]
    removed_cards: int

    @property
    def label(self) -> str:
        return datetime.fromtimestamp(self.start, UTC).date().isoformat()


def known_compromised(stream: Stream, before: float) -> set[str]:
    """The cards with a fraud label known before ``before``."""
    known = stream.labels & (stream.known_at < before)
    return set(stream.cards[known].tolist())


def test_weeks(stream: Stream, burn_in_days: float, week_days: float = 7.0) -> list[TestWeek]:
    """The whole test weeks after ``burn_in_days`` from the first transaction (at midnight UTC),
    each without the cards already known to be compromised when it starts."""
    if not len(stream):
        return []
    first = math.floor(stream.times[0] / DAY) * DAY
    start = first + burn_in_days * DAY
    out: list[TestWeek] = []
    last = math.floor(stream.times[-1] / DAY) * DAY + DAY  # the end of the last day
    while start + week_days * DAY <= last:
        end = start + week_days * DAY
        lo, hi = np.searchsorted(stream.times, [start, end], side="left")
        known = known_compromised(stream, start)
        keep = np.array([i for i in range(lo, hi) if stream.cards[i] not in known], dtype=np.int64)
        day_of = np.floor((stream.times[keep] - start) / DAY).astype(np.int64)
        days = [keep[day_of == d] for d in range(round(week_days))]
        out.append(TestWeek(start, end, keep, days, len(known)))
        start = end
    return out


def daily_card_precision(
    stream: Stream, week: TestWeek, scores: np.ndarray, k: int = 100
) -> list[float | None]:
    """Card precision@k of each day of ``week``; the compromised cards among a day's top k are
    removed from the following days of the week."""
    found: set[str] = set()
    out: list[float | None] = []
    for day in week.days:
        items = [
            (str(stream.cards[i]), float(scores[i]), bool(stream.labels[i]))
            for i in day
            if stream.cards[i] not in found
        ]
        out.append(card_precision_at_k(items, k))
        frauds = {card for card, _, is_fraud in items if is_fraud}
        found.update(card for card in top_cards(items, k) if card in frauds)
    return out


def top_cards(items: Iterable[tuple[str, float, bool]], k: int) -> list[str]:
    """The ``k`` cards with the highest score, as ``card_precision_at_k`` ranks them."""
    best: dict[str, float] = {}
    for card, score, _ in items:
        best[card] = max(best.get(card, 0.0), score)
    return sorted(best, key=lambda card: -best[card])[:k]


@dataclass
class WeekMetrics:
    week: str
    transactions: int
    frauds: int
    roc_auc: float | None
    average_precision: float | None
    card_precision: float | None
    """Mean of the week's daily card precision@k."""
    daily_card_precision: list[float | None] = field(default_factory=list)


def evaluate(
    stream: Stream, weeks: Sequence[TestWeek], scores: np.ndarray, k: int = 100
) -> list[WeekMetrics]:
    """The metrics of ``scores`` (one per row of ``stream``) on each test week."""
    out = []
    for week in weeks:
        labels = stream.labels[week.rows].tolist()
        values = scores[week.rows].astype(float).tolist()
        daily = daily_card_precision(stream, week, scores, k)
        known = [v for v in daily if v is not None]
        out.append(
            WeekMetrics(
                week.label,
                len(labels),
                int(sum(labels)),
                roc_auc(labels, values),
                average_precision(labels, values),
                sum(known) / len(known) if known else None,
                daily,
            )
        )
    return out


def mean(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are not None; None when there are none."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def precision_recall(
    labels: Sequence[bool], scores: Sequence[float], points: int = 200
) -> tuple[list[float], list[float]]:
    """(recall, precision) at up to ``points`` thresholds, highest score first; tied scores are one
    threshold."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    ranked = np.asarray(scores, dtype=float)[order]
    hits = np.cumsum(np.asarray(labels, dtype=bool)[order])
    positives = int(hits[-1]) if len(hits) else 0
    if not positives:
        return [], []
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))  # last row of each tie group
    if len(ends) > points:  # where the recall first reaches each of ``points`` even levels
        levels = np.searchsorted(hits[ends] / positives, np.linspace(0, 1, points), side="left")
        ends = ends[np.unique(np.minimum(levels, len(ends) - 1))]
    recall = (hits[ends] / positives).tolist()
    precision = (hits[ends] / (ends + 1)).tolist()
    return recall, precision


# --- baseline features -------------------------------------------------------------------------
class _Window:
    """Values of the last ``seconds``: count and sum, amortised O(1)."""

    __slots__ = ("items", "seconds", "total")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.items: deque[tuple[float, float]] = deque()
        self.total = 0.0

    def add(self, at: float, value: float) -> None:
        self.items.append((at, value))
        self.total += value

    def totals(self, at: float) -> tuple[int, float]:
        """(count, sum) of the values added in (at - seconds, at]."""
        items = self.items
        while items and items[0][0] <= at - self.seconds:
            self.total -= items.popleft()[1]
        if not items:
            self.total = 0.0  # no drift of the float sum
        return len(items), self.total


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def baseline_features(
    rows: Sequence[Mapping[str, Any]], stream: Stream, progress: Progress | None = None
) -> np.ndarray:
    """BASELINE_FEATURES of each row (rows in event-time order, as ``stream``), from the history
    before it and the labels known by then (a label counts from its ``known_at`` on, never before)."""
    seconds = [w * DAY for w in WINDOWS]
    customers: dict[str, list[_Window]] = {}
    terminals: dict[str, list[_Window]] = {}
    due: list[tuple[float, int]] = []  # (known at, row): a heap
    out = np.zeros((len(rows), len(BASELINE_FEATURES)), dtype=np.float64)
    keys = [f"{row['merchant_id']}|{row['terminal_id']}" for row in rows]
    for i, row in enumerate(rows):
        at = float(stream.times[i])
        while due and due[0][0] <= at:
            known, j = heapq.heappop(due)
            for window in terminals.setdefault(keys[j], [_Window(s) for s in seconds]):
                window.add(known, float(stream.labels[j]))
        amount = float(row["amount"])
        moment = datetime.fromtimestamp(at, UTC)
        values = [amount, float(moment.weekday() >= 5), float(moment.hour < 6)]
        spending = customers.setdefault(str(row["customer_id"]), [_Window(s) for s in seconds])
        for window in spending:
            window.add(at, amount)
            count, total = window.totals(at)
            values += [count, total / count]
        for window in terminals.setdefault(keys[i], [_Window(s) for s in seconds]):
            count, frauds = window.totals(at)
            values += [count, frauds, frauds / count if count else 0.0]
        out[i] = values
        heapq.heappush(due, (float(stream.known_at[i]), i))
        if progress and i and i % 100_000 == 0:
            progress(f"baseline features: {i:,}/{len(rows):,}")
    return out


# --- baselines ---------------------------------------------------------------------------------
def weekly_retrained(
    features: np.ndarray,
    stream: Stream,
    weeks: Sequence[tuple[float, float]],
    fit: Fit,
    train_days: float = 21.0,
    progress: Progress | None = None,
) -> np.ndarray:
    """Scores of a model retrained at the start of each of ``weeks`` (start, end) on the labels
    known then, of the last ``train_days`` of labelled transactions, scoring that week. Rows
    outside the weeks score 0."""
    scores = np.zeros(len(stream))
    for start, end in weeks:
        labelled = stream.known_at <= start
        lo, hi = np.searchsorted(stream.times, [start, end], side="left")
        if labelled.any():
            newest = stream.times[labelled].max()
            train = labelled & (stream.times > newest - train_days * DAY)
            y = stream.labels[train]
            if y.any() and not y.all():
                predict = fit(features[train], y)
                scores[lo:hi] = predict(features[lo:hi])
                if progress:
                    day = datetime.fromtimestamp(start, UTC).date()
                    progress(
                        f"trained on {int(train.sum()):,} rows ({int(y.sum())} frauds), scored week {day}"
                    )
    return scores


def online_delayed(
    features: np.ndarray,
    stream: Stream,
    make_model: Callable[[], Any],
    names: Sequence[str] = BASELINE_FEATURES,
    progress: Progress | None = None,
) -> np.ndarray:
    """Scores of a River classifier that scores each row first and learns each label when it
    becomes known (``known_at``), prequentially over the whole stream."""
    model = make_model()
    scores = np.zeros(len(stream))
    due: list[tuple[float, int]] = []
    xs: dict[int, dict[str, float]] = {}
    for i in range(len(stream)):
        at = float(stream.times[i])
        while due and due[0][0] <= at:
            _, j = heapq.heappop(due)
            model.learn_one(xs.pop(j), bool(stream.labels[j]))
        x = dict(zip(names, features[i].tolist(), strict=True))
        scores[i] = model.predict_proba_one(x).get(True, 0.0)
        xs[i] = x
        heapq.heappush(due, (float(stream.known_at[i]), i))
        if progress and i and i % 100_000 == 0:
            progress(f"online model: {i:,}/{len(stream):,}")
    return scores


def river_logistic() -> Any:
    """The textbook online model: River ``StandardScaler | LogisticRegression``."""
    from river import linear_model, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


def river_forest(n_models: int = 10, fraud_share: float = 0.1, seed: int = 0) -> Any:
    """River's adaptive random forest (``forest.ARFClassifier``, ``n_models`` trees, drift
    detection per tree) learning through ``imblearn.RandomUnderSampler``: legitimate labels are
    dropped at random so that frauds are about ``fraud_share`` of what it learns (every fraud is
    learnt). Under-sampling ranked better than weighting frauds up or over-sampling them and
    learns a tenth of the labels (docs/quality.md); ``learn_one`` ignores a weight ``w``."""
    from river import forest, imblearn

    return imblearn.RandomUnderSampler(
        forest.ARFClassifier(n_models=n_models, seed=seed),
        desired_dist={False: 1.0 - fraud_share, True: fraud_share},
        seed=seed,
    )


def lightgbm_fit(seed: int = 0) -> Fit:
    """Gradient boosting (LightGBM), the usual batch practice."""

    def fit(x: np.ndarray, y: np.ndarray) -> Predict:
        import lightgbm

        model = lightgbm.LGBMClassifier(  # small leaves and many samples per leaf: stable on 0.5 % fraud
            n_estimators=150,
            learning_rate=0.05,
            num_leaves=15,
            min_child_samples=100,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            reg_lambda=1.0,
            random_state=seed,
            n_jobs=1,  # OpenMP threads spin when other processes share the cores
            verbose=-1,
        )
        model.fit(x, y)
        return lambda rows: model.predict_proba(rows)[:, 1]

    return fit


def random_forest_fit(seed: int = 0) -> Fit:
    """A scikit-learn random forest, as the handbook's baseline."""

    def fit(x: np.ndarray, y: np.ndarray) -> Predict:
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(
            n_estimators=100,
            max_depth=12,
            min_samples_leaf=10,
            max_samples=0.3,  # each tree on 30 % of the rows: 4x faster, as good here
            n_jobs=2,
            random_state=seed,
        )
        model.fit(x, y)
        return lambda rows: model.predict_proba(rows)[:, 1]

    return fit


# --- charts ------------------------------------------------------------------------------------
PALETTE = (
    "#d62728",
    "#ff7f0e",
    "#1f77b4",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#e377c2",
)

Series = tuple[str, Sequence[float], Sequence[float | None]]
"""(name, x values, y values; None leaves a gap)"""


def line_chart_svg(
    title: str,
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    *,
    x_ticks: Sequence[tuple[float, str]] | None = None,
    y_max: float | None = None,
    width: int = 820,
    height: int = 440,
) -> str:
    """A line chart as a self-contained SVG (renders on GitHub and in any browser), legend on the right."""
    left, right, top, bottom = 60, 260, 40, 50
    xs = [x for _, values, _ in series for x in values]
    ys = [y for _, _, values in series for y in values if y is not None]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_step = _nice_step((y_max if y_max is not None else max([*ys, 1e-9])) / 5)
    y_hi = y_max if y_max is not None else y_step * math.ceil(max([*ys, 1e-9]) / y_step)
    x_hi = x_hi if x_hi > x_lo else x_lo + 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def py(y: float) -> float:
        return top + plot_h - min(y, y_hi) / y_hi * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    for step in range(round(y_hi / y_step) + 1):
        y = step * y_step
        parts += [
            f'<line x1="{left}" x2="{left + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#eee"/>',
            f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>',
        ]
    ticks = x_ticks if x_ticks is not None else [(x_lo + (x_hi - x_lo) * s / 5, "") for s in range(6)]
    for x, text in ticks:
        label = text or f"{x:.2f}"
        parts.append(
            f'<text x="{px(x):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{escape(label)}</text>'
        )
    parts += [
        f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">{escape(x_label)}</text>',
        f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>',
    ]
    for index, (name, x_values, y_values) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for x, y in zip(x_values, y_values, strict=True):
            if y is None:
                runs.append([])
            else:
                runs[-1].append(f"{px(x):.1f},{py(y):.1f}")
        for run in runs:
            if len(run) > 1:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="1.8"/>'
                )
            elif run:
                x, y = run[0].split(",")
                parts.append(f'<circle cx="{x}" cy="{y}" r="2" fill="{colour}"/>')
        ly = top + 10 + index * 20
        parts += [
            f'<line x1="{width - right + 14}" x2="{width - right + 38}" y1="{ly}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="3"/>',
            f'<text x="{width - right + 44}" y="{ly + 4}">{escape(name)}</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _nice_step(rough: float) -> float:
    """The smallest of 1, 2, 2.5 and 5 times a power of ten that is at least ``rough``."""
    power = 10 ** math.floor(math.log10(rough))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= rough * (1 - 1e-9))
