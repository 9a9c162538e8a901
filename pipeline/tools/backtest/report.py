"""Backtest metrics per day and overall, the scores file, the HTML report and the progress bar."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.config import FRAUD_TYPE_NAMES, FRAUD_TYPES
from pipeline.detection.evaluation import average_precision, card_precision_at_k, roc_auc
from pipeline.detection.features import Features

Mode = Literal["combined", "rules", "model"]


@dataclass
class ScoredTransaction:
    """One row of the scores file."""

    transaction_id: str
    event_time: str
    card_token: str
    customer_id: str
    score: float
    model_score: float
    fraud_type: str | None
    decision: str
    is_fraud: bool
    true_fraud_type: str | None


@dataclass
class BacktestResult:
    rows: int
    refused: Counter[str]
    overall: dict[str, Any]
    daily: list[dict[str, Any]]
    scored: list[ScoredTransaction] = field(repr=False)
    features: list[Features] = field(repr=False, default_factory=list)
    seconds: float = 0.0


def _score_for_ranking(item: ScoredTransaction) -> float:
    """The combined score, with the model's probability breaking ties among equal rule scores."""
    return item.score + item.model_score * 1e-3


def metrics(items: list[ScoredTransaction], k: int) -> dict[str, Any]:
    labels = [item.is_fraud for item in items]
    scores = [_score_for_ranking(item) for item in items]
    flagged = [item.decision != "allow" for item in items]
    frauds = sum(labels)
    result: dict[str, Any] = {
        "transactions": len(items),
        "frauds": frauds,
        "roc_auc": roc_auc(labels, scores),
        "average_precision": average_precision(labels, scores),
        "alert_rate": sum(flagged) / len(items) if items else 0.0,
        "precision_of_alerts": (
            sum(1 for f, y in zip(flagged, labels, strict=True) if f and y) / sum(flagged)
        )
        if any(flagged)
        else None,
        "recall": (sum(1 for f, y in zip(flagged, labels, strict=True) if f and y) / frauds)
        if frauds
        else None,
    }
    for kind in FRAUD_TYPES:
        of_kind = [item for item in items if item.true_fraud_type == kind]
        result[f"recall_{kind}"] = (
            sum(1 for item in of_kind if item.decision != "allow") / len(of_kind) if of_kind else None
        )
    return result


def summarise(scored: list[ScoredTransaction], k: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Metrics per day (of event time) and overall, with card precision@k averaged over days."""
    by_day: dict[str, list[ScoredTransaction]] = defaultdict(list)
    for item in scored:
        by_day[item.event_time[:10]].append(item)
    daily = []
    for day in sorted(by_day):
        items = by_day[day]
        row = {"day": day, **metrics(items, k)}
        row["card_precision_at_k"] = card_precision_at_k(
            ((i.card_token, _score_for_ranking(i), i.is_fraud) for i in items), k
        )
        daily.append(row)
    overall = metrics(scored, k)
    values = [row["card_precision_at_k"] for row in daily if row["card_precision_at_k"] is not None]
    overall["card_precision_at_k"] = sum(values) / len(values) if values else None
    overall["k"] = k
    overall["days"] = len(daily)
    return daily, overall


# --- output ------------------------------------------------------------------------------------
SCORES_COLUMNS = (
    "transaction_id", "event_time", "card_token", "customer_id", "score", "model_score",
    "predicted_fraud_type", "decision", "is_fraud", "true_fraud_type",
)  # fmt: skip


def write_scores(path: Path, scored: Iterable[ScoredTransaction]) -> None:
    """One CSV row per transaction. A row of text that needs no quoting (the contract's ids, times
    and names never do) is joined directly, as ``csv.writer`` writes it; any other goes through it."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(SCORES_COLUMNS)
        lines: list[str] = []
        for s in scored:
            row = (
                s.transaction_id,
                s.event_time,
                s.card_token,
                s.customer_id,
                f"{s.score:.6f}",
                f"{s.model_score:.6f}",
                s.fraud_type or "",
                s.decision,
                str(int(s.is_fraud)),
                s.true_fraud_type or "",
            )
            try:
                line = ",".join(row)
            except TypeError:
                line = '"'
            if line.count(",") == 9 and _QUOTED.search(line) is None:
                lines.append(line)
            else:
                handle.write("".join(f"{line}\r\n" for line in lines))
                lines.clear()
                writer.writerow(row)
        handle.write("".join(f"{line}\r\n" for line in lines))


_QUOTED = re.compile(r'["\r\n]')
"""What makes ``csv.writer`` quote a cell, besides its delimiter (a joined row of ten cells has nine
commas when none is within a cell): its quote character and line ends."""


def write_report(directory: Path, result: BacktestResult, title: str = "Backtest") -> Path:
    """metrics.json and report.html (plotly charts, self-contained) in ``directory``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.json").write_text(
        json.dumps(
            {"overall": result.overall, "daily": result.daily, "refused": dict(result.refused)}, indent=2
        )
    )
    days = [row["day"] for row in result.daily]
    figure = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("Ranking quality per day", "Recall per fraud type", "Alert rate"),
    )
    for key, name in (
        ("roc_auc", "ROC AUC"),
        ("average_precision", "Average precision"),
        ("card_precision_at_k", f"Card precision@{result.overall['k']}"),
    ):
        figure.add_trace(
            go.Scatter(x=days, y=[row[key] for row in result.daily], name=name, mode="lines+markers"),
            row=1,
            col=1,
        )
    for kind in FRAUD_TYPES:
        figure.add_trace(
            go.Scatter(
                x=days,
                y=[row[f"recall_{kind}"] for row in result.daily],
                name=f"Recall: {FRAUD_TYPE_NAMES[kind]}",
                mode="lines",
            ),
            row=2,
            col=1,
        )
    figure.add_trace(
        go.Bar(x=days, y=[row["alert_rate"] for row in result.daily], name="Alert rate"), row=3, col=1
    )
    figure.update_yaxes(range=[0, 1.02], row=1, col=1)
    figure.update_yaxes(range=[0, 1.02], row=2, col=1)
    figure.update_yaxes(tickformat=".1%", row=3, col=1)
    figure.update_layout(height=900, title=title, template="plotly_white")
    overall = "".join(
        f"<tr><th>{key}</th><td>{_fmt(value)}</td></tr>" for key, value in result.overall.items()
    )
    html = io.StringIO()
    html.write(f"<html><head><meta charset='utf-8'><title>{title}</title></head><body>")
    html.write(f"<h1>{title}</h1><p>{result.rows} transactions replayed in {result.seconds:.1f} s; ")
    html.write(f"{sum(result.refused.values())} refused.</p><table>{overall}</table>")
    html.write(figure.to_html(full_html=False, include_plotlyjs=True))
    html.write("</body></html>")
    path = directory / "report.html"
    path.write_text(html.getvalue(), encoding="utf-8")
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return "n/a" if value is None else str(value)


def print_progress(done: int, total: int, seconds: float) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    rate = done / seconds if seconds > 0 else 0.0
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({rate:,.0f}/s)")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()
