"""Pure: a draft rule run over past decided transactions (no Kafka, no Dash callbacks, no I/O).

``evaluate`` checks the rule on every transaction of a ``Sample`` (``monitor.state.scored``) with
the project's own rule code (``RuleSet.evaluate_columns``, what the worker's engine runs), over
columns built from the features the worker scored and the decision's fields, and counts: hits, hit
rate, precision among the hits that have a label, labelled frauds caught, the amount it would
block (or send to review) per currency, and the overlap with the alerts the pipeline raised. A
name the store does not keep (``merchant_category``, ``device_id``, ...) reads as missing, as a
field the transaction left empty does in the worker; the result says which.

``result_rows`` is the table and ``whatif_figure`` the chart (hits per hour: new alerts, and those
the pipeline already raised).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import plotly.graph_objects as go

from monitor.state.scored import FEATURE_INDEX, STRING_FIELDS, Sample
from pipeline.detection.rules import Rule, RuleSet

HOUR = 3600


class WhatIfError(ValueError):
    """The rule cannot be evaluated on these transactions (a division by zero)."""


@dataclass(frozen=True)
class WhatIfResult:
    """What the rule would have done over ``evaluated`` transactions from ``start`` to ``end``."""

    rule: Rule
    days: float
    evaluated: int
    start: datetime | None
    end: datetime | None
    hits: int
    labelled_hits: int
    fraud_hits: int
    labelled_frauds: int
    amounts: Mapping[str, float]
    """Amount of the hits per currency (blocked for a block rule, sent to review for a review rule)."""
    already_alerted: int
    """Hits the pipeline had already decided review or block."""
    by_model: int
    """Of those, alerts no rule or list raised (the model or the anomaly detector)."""
    unseen_names: tuple[str, ...] = ()
    """Names the rule reads that the store does not keep (read as missing)."""
    hours: list[datetime] = field(default_factory=list)
    new_per_hour: list[int] = field(default_factory=list)
    alerted_per_hour: list[int] = field(default_factory=list)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.evaluated if self.evaluated else 0.0

    @property
    def precision(self) -> float | None:
        """Frauds among the labelled hits; None without a labelled hit."""
        return self.fraud_hits / self.labelled_hits if self.labelled_hits else None

    @property
    def new_alerts(self) -> int:
        return self.hits - self.already_alerted


def columns_of(rule: Rule, sample: Sample) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """The columns the rule reads (numeric: float64 with NaN; strings: object arrays with None), and
    the names the store does not keep."""
    rows = sample.rows
    columns: dict[str, np.ndarray] = {}
    unseen = []
    for name in RuleSet((rule,)).names:
        if name in FEATURE_INDEX:
            index = FEATURE_INDEX[name]
            columns[name] = np.fromiter((r.features[index] for r in rows), dtype=np.float64, count=len(rows))
        elif name == "amount":
            columns[name] = np.fromiter((r.amount for r in rows), dtype=np.float64, count=len(rows))
        elif name in STRING_FIELDS:
            index = STRING_FIELDS.index(name)
            column = np.empty(len(rows), dtype=object)
            column[:] = [r.fields[index] for r in rows]
            columns[name] = column
        else:
            unseen.append(name)
    return columns, tuple(unseen)


def evaluate(rule: Rule, sample: Sample, *, days: float) -> WhatIfResult:
    """Run ``rule`` over ``sample`` (the last ``days`` of decided transactions)."""
    rows = sample.rows
    columns, unseen = columns_of(rule, sample)
    try:
        fired = RuleSet((rule,)).evaluate_columns(columns, len(rows))[0]
    except ZeroDivisionError:
        raise WhatIfError("the rule divides by zero on some of these transactions") from None
    hit_rows = [r for r, hit in zip(rows, fired, strict=True) if hit]
    labels = sample.labels
    amounts: dict[str, float] = {}
    hours: dict[int, list[int]] = {}
    if rows:
        first, last = int(rows[0].event_time // HOUR), int(rows[-1].event_time // HOUR)
        hours = {h: [0, 0] for h in range(first, last + 1)}
    for r in hit_rows:
        amounts[r.currency] = amounts.get(r.currency, 0.0) + r.amount
        hours[int(r.event_time // HOUR)][r.decision != "allow"] += 1
    alerted = [r for r in hit_rows if r.decision != "allow"]
    labelled = [labels[r.transaction_id] for r in hit_rows if r.transaction_id in labels]
    return WhatIfResult(
        rule=rule,
        days=days,
        evaluated=len(rows),
        start=datetime.fromtimestamp(rows[0].event_time, UTC) if rows else None,
        end=datetime.fromtimestamp(rows[-1].event_time, UTC) if rows else None,
        hits=len(hit_rows),
        labelled_hits=len(labelled),
        fraud_hits=sum(labelled),
        labelled_frauds=sum(labels.values()),
        amounts=dict(sorted(amounts.items())),
        already_alerted=len(alerted),
        by_model=sum(not r.by_rules for r in alerted),
        unseen_names=unseen,
        hours=[datetime.fromtimestamp(h * HOUR, UTC) for h in hours],
        new_per_hour=[counts[0] for counts in hours.values()],
        alerted_per_hour=[counts[1] for counts in hours.values()],
    )


def _money(amounts: Mapping[str, float]) -> str:
    return ", ".join(f"{amount:,.2f} {currency}" for currency, amount in amounts.items()) or "0"


def _when(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M") if ts is not None else "-"


def result_rows(result: WhatIfResult) -> list[tuple[str, str]]:
    """The what-if's figures as (what, value) rows of a table."""
    precision = result.precision
    blocked = "would be blocked" if result.rule.action == "block" else "would be sent to review"
    rows = [
        (
            "Transactions evaluated",
            f"{result.evaluated:,} ({_when(result.start)} to {_when(result.end)} UTC)",
        ),
        ("Hits", f"{result.hits:,}"),
        ("Hit rate", f"{result.hit_rate:.2%}"),
        (
            "Labelled precision",
            f"{precision:.1%} ({result.fraud_hits} frauds of {result.labelled_hits} labelled hits)"
            if precision is not None
            else "no labelled hit yet",
        ),
        ("Labelled frauds caught", f"{result.fraud_hits} of {result.labelled_frauds}"),
        (f"Amount that {blocked}", _money(result.amounts)),
        (
            "Overlap with the pipeline's alerts",
            f"{result.already_alerted:,} already alerted ({result.by_model:,} by the model alone, no rule)",
        ),
        ("New alerts", f"{result.new_alerts:,}"),
    ]
    if result.unseen_names:
        rows.append(("Not kept, read as missing", ", ".join(result.unseen_names)))
    return rows


def whatif_figure(result: WhatIfResult) -> go.Figure:
    """Hits per hour (UTC), stacked: new alerts, and those the pipeline had already raised."""
    fig = go.Figure(
        [
            go.Bar(x=result.hours, y=result.new_per_hour, name="New alerts", marker_color="#c0392b"),
            go.Bar(x=result.hours, y=result.alerted_per_hour, name="Already alerted", marker_color="#7f8c8d"),
        ]
    )
    fig.update_layout(
        barmode="stack",
        title=f"{result.rule.id}: hits per hour over the last {result.days:g} day(s)",
        xaxis_title="hour (UTC)",
        yaxis_title="transactions",
        height=300,
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        legend={"orientation": "h", "y": -0.25},
    )
    return fig
