"""Backtest: replay labelled transactions through the detection core in event-time order.

Labels become known only ``label_delay_days`` after their transaction (as chargebacks do), and the
model learns from them then; every transaction is scored before its own label is known
(prequential evaluation). Reads CSV, JSON lines (optionally gzipped) or Parquet, with a column
mapping for data sets that name their columns differently; writes metrics per day and overall,
an HTML report with charts, and optionally every transaction's score to a CSV file.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import io
import json
import math
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from pipeline.config import FRAUD_TYPE_NAMES, FRAUD_TYPES, Settings
from pipeline.contracts.json_schemas import SchemaViolation, load_schema, validator
from pipeline.detection.engine import DetectionEngine
from pipeline.detection.evaluation import average_precision, card_precision_at_k, roc_auc
from pipeline.detection.features import (
    ENTITY_STAGES,
    FEATURE_NAMES,
    CardState,
    Features,
    LabelledActivityState,
    event_seconds,
    observe,
    observe_entities,
    transaction_features,
)
from pipeline.detection.model import OnlineFraudModel
from pipeline.detection.rules import RuleSet, load_rules

Mode = Literal["combined", "rules", "model"]
DEFAULTS: dict[str, Any] = {
    "schema_version": 1,
    "merchant_category": "0000",
    "currency": "EUR",
    "channel": "card_present",
    "country": "ZZ",
    "account_age_days": 365,
    "device_id": None,
    "ip_address": None,
    "hours_since_contact_change": None,
    "shipping_matches_billing": None,
}


class BacktestError(ValueError):
    """The input cannot be read or mapped; the message says which row or column."""


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


# --- reading -----------------------------------------------------------------------------------
def parse_column_map(pairs: Iterable[str]) -> dict[str, str]:
    """``["transaction_id=TRANSACTION_ID", ...]`` -> {our field: their column}."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        ours, sep, theirs = pair.partition("=")
        if not sep or not ours or not theirs:
            raise BacktestError(f"--map takes field=column, not {pair!r}")
        mapping[ours.strip()] = theirs.strip()
    return mapping


FORMATS = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet")


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a CSV, TSV, JSON-lines (.jsonl/.ndjson, optionally .gz) or Parquet file. The file and
    its format are checked at once, so a wrong path fails here with one clear message."""
    stem = path.name.lower().removesuffix(".gz")
    if not stem.endswith(FORMATS):
        raise BacktestError(f"{path}: unknown format (use .csv, .tsv, .jsonl[.gz] or .parquet)")
    if not path.is_file():
        raise BacktestError(f"{path}: no such file")
    return _rows(path, stem)


def _rows(path: Path, stem: str) -> Iterator[dict[str, Any]]:
    if stem.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise BacktestError("reading Parquet needs pyarrow: pip install pyarrow") from None
        yield from pq.read_table(path).to_pylist()
        return
    opener: Callable[..., Any] = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        if stem.endswith((".csv", ".tsv")):
            yield from csv.DictReader(handle, delimiter="\t" if stem.endswith(".tsv") else ",")
            return
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise BacktestError(f"{path}:{number}: not JSON ({exc})") from None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "t", "fraud")
    return bool(value)


def _iso(value: Any) -> str:
    """An event time in RFC 3339 with offset, from what data sets usually hold."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.isoformat()
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    text = str(value).strip().replace(" ", "T", 1)
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _token(value: Any) -> str:
    """A card token as our schema wants it; other identifiers become ``tok_`` + their letters and digits."""
    text = str(value)
    if text.startswith("tok_") and 8 <= len(text) - 4 <= 64 and text[4:].isalnum():
        return text
    return f"tok_{''.join(ch for ch in text if ch.isalnum())[:64]:0>8}"


def normalise(
    row: Mapping[str, Any], column_map: Mapping[str, str]
) -> tuple[dict[str, Any], bool, str | None]:
    """A data-set row -> (transaction per our schema, is_fraud, fraud type). Missing optional
    fields get neutral defaults; cards identified only by a customer id get a token from it."""

    def get(name: str) -> Any:
        column = column_map.get(name, name)
        value = row.get(column)
        return None if value == "" else value

    txn: dict[str, Any] = dict(DEFAULTS)
    for name in load_schema("transaction")["properties"]:  # every field the contract knows
        value = get(name)
        if value is not None:
            txn[name] = value
    if txn.get("event_time") is None or txn.get("transaction_id") is None or txn.get("amount") is None:
        raise BacktestError("transaction_id, event_time and amount are required (map them with --map)")
    txn["schema_version"] = 1
    txn["transaction_id"] = str(txn["transaction_id"])
    txn["event_time"] = _iso(txn["event_time"])
    txn["amount"] = float(txn["amount"])
    txn["customer_id"] = str(txn.get("customer_id") or txn.get("card_token") or "unknown")
    txn["card_token"] = _token(txn.get("card_token") or txn["customer_id"])
    txn["terminal_id"] = str(txn.get("terminal_id") or txn.get("merchant_id") or "unknown")
    txn["merchant_id"] = str(txn.get("merchant_id") or txn["terminal_id"])
    txn["card_country"] = txn.get("card_country") or txn["country"]
    for name in ("account_age_days",):
        txn[name] = int(float(txn[name]))
    if isinstance(txn.get("shipping_matches_billing"), str):
        txn["shipping_matches_billing"] = _truthy(txn["shipping_matches_billing"])
    if txn.get("hours_since_contact_change") is not None:
        txn["hours_since_contact_change"] = float(txn["hours_since_contact_change"])
    is_fraud = _truthy(get("is_fraud"))
    fraud_type = get("fraud_type")
    fraud_type = fraud_type if is_fraud and fraud_type in FRAUD_TYPES else None
    return txn, is_fraud, fraud_type


# --- replay ------------------------------------------------------------------------------------
def build_engine(settings: Settings, mode: Mode) -> DetectionEngine:
    rules = load_rules(settings.rules_file, FEATURE_NAMES) if mode != "model" else RuleSet(())
    return DetectionEngine(
        rules=rules,
        model=OnlineFraudModel(),
        learning=mode != "rules",
        alert_budget=None if mode == "model" else settings.alert_budget,
        anomaly_budget=settings.anomaly_budget if mode == "combined" else None,
        review_threshold=settings.review_threshold,
        block_threshold=settings.block_threshold,
        model_min_labels=10**12 if mode == "rules" else (0 if mode == "model" else settings.model_min_labels),
    )


def replay(
    rows: Iterable[Mapping[str, Any]],
    engine: DetectionEngine,
    *,
    column_map: Mapping[str, str] | None = None,
    label_delay_days: float = 7.0,
    k: int = 100,
    keep_features: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> BacktestResult:
    """Score every row in event-time order, learning each label ``label_delay_days`` later."""
    started = time.perf_counter()
    check = validator("transaction")
    refused: Counter[str] = Counter()
    prepared: list[tuple[float, dict[str, Any], bool, str | None]] = []
    for row in rows:
        try:
            txn, is_fraud, fraud_type = normalise(row, column_map or {})
            check(txn)
        except SchemaViolation as exc:
            refused[f"schema: {exc.message}"] += 1
            continue
        except (ValueError, TypeError) as exc:
            refused[f"unreadable: {exc}"] += 1
            continue
        prepared.append((event_seconds(txn), txn, is_fraud, fraud_type))
    prepared.sort(key=lambda item: item[0])

    delay = label_delay_days * 86400
    cards: dict[str, CardState] = defaultdict(CardState)
    states: dict[str, dict[str, Any]] = {entity.name: {} for entity in ENTITY_STAGES}
    labelled = [e for e in ENTITY_STAGES if issubclass(e.state_type, LabelledActivityState)]
    labels: list[tuple[float, int, str, dict[str, str], Features, bool, str | None]] = []
    scored: list[ScoredTransaction] = []
    kept: list[Features] = []
    total = len(prepared)
    for index, (at, txn, is_fraud, fraud_type) in enumerate(prepared):
        while labels and labels[0][0] <= at:  # labels known by now, as the pipeline's learn agent
            known_at, _, transaction_id, keys, features, fraud, kind = heapq.heappop(labels)
            engine.learn(transaction_id, features, fraud, kind)
            for entity in labelled:  # as the pipeline's learn agent does
                if entity.name in keys:
                    known = states[entity.name].setdefault(keys[entity.name], entity.state_type())
                    known.record_label(fraud, known_at)
        features = transaction_features(txn, at)
        features.update(observe_entities(states, txn, at))  # the pipeline's entity stages, in order
        features.update(observe(cards[txn["card_token"]], txn, at))
        verdict = engine.decide(txn, features)
        heapq.heappush(
            labels,
            (
                at + delay,
                index,
                txn["transaction_id"],
                {e.name: key for e in labelled if (key := e.key(txn))},
                features,
                is_fraud,
                fraud_type,
            ),
        )
        scored.append(
            ScoredTransaction(
                txn["transaction_id"],
                txn["event_time"],
                txn["card_token"],
                txn["customer_id"],
                verdict.score,
                verdict.model_score,
                verdict.fraud_type,
                verdict.decision,
                is_fraud,
                fraud_type,
            )
        )
        if keep_features:
            kept.append(features)
        if progress and (index + 1) % 20_000 == 0:
            progress(index + 1, total, time.perf_counter() - started)
    if progress:
        progress(total, total, time.perf_counter() - started)
    daily, overall = summarise(scored, k)
    return BacktestResult(total, refused, overall, daily, scored, kept, time.perf_counter() - started)


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
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(SCORES_COLUMNS)
        for s in scored:
            writer.writerow(
                [
                    s.transaction_id,
                    s.event_time,
                    s.card_token,
                    s.customer_id,
                    f"{s.score:.6f}",
                    f"{s.model_score:.6f}",
                    s.fraud_type or "",
                    s.decision,
                    int(s.is_fraud),
                    s.true_fraud_type or "",
                ]
            )


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
