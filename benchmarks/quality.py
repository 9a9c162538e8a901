"""Quality benchmark: the project's detector against the usual baselines on a realistic, hard stream.

    .venv/bin/python benchmarks/quality.py [--quick] [--days N] [--customers N] [--terminals N]
                                           [--seed N] [--out DIR] [--jobs N]

Generates a stream with pipeline/tools/simulator/realistic.py (default 5,000 customers, 1,000
terminals, 84 days: about 500,000 transactions, 0.6 % fraud), then scores every transaction, before
its label is known, with:

* the project's detector, replayed by ``fraud backtest``'s replay (combined, and the model alone),
  learning each label 7 days late;
* baselines on the handbook's standard features, computed here from the raw stream with only what
  is known at scoring time: LightGBM and a random forest retrained every week on the last three
  labelled weeks, River StandardScaler | LogisticRegression learning each label when it is known,
  River's adaptive random forest (10 trees) learning the labels when they are known, legitimate
  ones under-sampled to nine per fraud, the amount alone, random scores; and, as a diagnostic,
  LightGBM on the detector's own features.

The protocol (pipeline/tools/quality.py): test weeks after a 4-week burn-in, each without the cards
already known to be compromised; AUC, average precision and card precision@100 per day (cards found
on earlier days of the week removed), averaged over the test weeks. Prints the table and writes
quality.json, quality.html (plotly) and two SVG charts to --out (default var/benchmarks/quality).
``--quick`` is a smoke run of under a minute.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.detection.evaluation import roc_auc
from pipeline.tools import quality
from pipeline.tools.simulator.realistic import SCENARIOS, RealisticConfig, RealisticGenerator

STARTED = time.perf_counter()
DETECTOR_MODES = ("combined", "model")


def log(message: str) -> None:
    """Progress, on stderr."""
    print(f"[{time.perf_counter() - STARTED:6.0f} s] {message}", file=sys.stderr, flush=True)


# --- the project's detector: every call into it is here ----------------------------------------
@dataclass
class DetectorRun:
    scores: np.ndarray
    """``ScoredTransaction.score`` of each row, in the rows' order."""
    model_scores: np.ndarray
    features: np.ndarray | None
    feature_names: list[str]
    seconds: float
    refused: int


def run_detector(
    rows: list[dict[str, Any]], mode: str, delay_days: float, keep_features: bool
) -> DetectorRun:
    """Replay ``rows`` through the project's detector in ``mode`` ("combined" or "model"), labels
    learnt ``delay_days`` late: the one place that calls the detector."""
    from pipeline.config import load_settings
    from pipeline.tools.backtest import replay
    from pipeline.wiring import build_detector as build

    def progress(done: int, total: int, seconds: float) -> None:
        log(f"detector ({mode}): {done:,}/{total:,} in {seconds:.0f} s")

    began = time.perf_counter()
    result = replay(
        rows,
        build(load_settings(), mode),  # type: ignore[arg-type]
        label_delay_days=delay_days,
        keep_features=keep_features,
        progress=progress,
    )
    position = {s.transaction_id: i for i, s in enumerate(result.scored)}
    order = [position[row["transaction_id"]] for row in rows if row["transaction_id"] in position]
    if len(order) != len(rows):
        raise RuntimeError(f"the replay refused rows: {dict(result.refused)}")
    scores = np.array([result.scored[i].score for i in order])
    model_scores = np.array([result.scored[i].model_score for i in order])
    names = sorted(result.features[0]) if keep_features and result.features else []
    features = (
        np.array([[result.features[i].get(n, 0.0) for n in names] for i in order], dtype=np.float32)
        if names
        else None
    )
    return DetectorRun(
        scores, model_scores, features, names, time.perf_counter() - began, sum(result.refused.values())
    )


_ROWS: list[dict[str, Any]] = []  # the stream, inherited by the forked replay processes


def _replay_inherited(mode: str, delay_days: float, keep_features: bool) -> DetectorRun:
    return run_detector(_ROWS, mode, delay_days, keep_features)


def _exit_with(parent: int) -> None:
    """A replay process ends when the benchmark does: a killed run leaves no replay running."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


# --- the benchmark -----------------------------------------------------------------------------
@dataclass
class Scorer:
    key: str
    name: str
    scores: np.ndarray
    seconds: float
    note: str = ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 500 customers, 35 days")
    parser.add_argument("--days", type=int, help="simulated days (default 84, quick 35)")
    parser.add_argument("--customers", type=int, help="default 5000, quick 500")
    parser.add_argument("--terminals", type=int, help="default 1000, quick 100")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--burn-in-days", type=int, help="days before the first test week (default 28, quick 21)"
    )
    parser.add_argument("--label-delay-days", type=float, default=7.0)
    parser.add_argument(
        "--train-days", type=float, default=21.0, help="labelled days a weekly model learns from"
    )
    parser.add_argument("--k", type=int, default=100, help="card precision@k")
    parser.add_argument(
        "--jobs", type=int, default=2, help="processes for the detector's replays (1: in line)"
    )
    parser.add_argument("--out", type=Path, default=Path("var/benchmarks/quality"))
    args = parser.parse_args(argv)
    quick = args.quick
    config = RealisticConfig(
        customers=args.customers or (500 if quick else 5000),
        terminals=args.terminals or (100 if quick else 1000),
        days=args.days or (35 if quick else 84),
        seed=args.seed,
    )
    burn_in = args.burn_in_days if args.burn_in_days is not None else (21 if quick else 28)
    delay = args.label_delay_days

    log(f"generating {config.customers:,} customers, {config.terminals:,} terminals, {config.days} days")
    began = time.perf_counter()
    items = list(RealisticGenerator(config).events())
    rows = [item.row() for item in items]
    generation_seconds = time.perf_counter() - began
    stream = quality.Stream.from_rows(rows, delay)
    weeks = quality.test_weeks(stream, burn_in)
    if not weeks:
        parser.error(f"no test week: {config.days} days with a burn-in of {burn_in}")
    dataset = describe(items, stream, weeks, generation_seconds)
    log(
        f"{dataset['transactions']:,} transactions, {dataset['fraud_rate']:.2%} fraud, "
        f"{len(weeks)} test weeks, generated in {generation_seconds:.0f} s"
    )

    runs = detector_runs(rows, delay, args.jobs)  # started first: they run while the baselines train
    scorers: list[Scorer] = []
    began = time.perf_counter()
    features = quality.baseline_features(rows, stream, progress=log)
    feature_seconds = time.perf_counter() - began
    log(f"baseline features in {feature_seconds:.0f} s")
    spans = [(week.start, week.end) for week in weeks]

    def timed(key: str, name: str, compute: Callable[[], np.ndarray], note: str = "") -> None:
        log(f"scoring: {name}")
        began = time.perf_counter()
        scores = compute()
        scorers.append(Scorer(key, name, scores, time.perf_counter() - began, note))

    timed(
        "lightgbm",
        "LightGBM, weekly",
        lambda: quality.weekly_retrained(
            features, stream, spans, quality.lightgbm_fit(), args.train_days, progress=log
        ),
    )
    timed(
        "random_forest",
        "random forest, weekly",
        lambda: quality.weekly_retrained(
            features, stream, spans, quality.random_forest_fit(), args.train_days, progress=log
        ),
    )
    timed(
        "river_logistic",
        "River LR, online",
        lambda: quality.online_delayed(features, stream, quality.river_logistic, progress=log),
    )
    timed(
        "river_forest",
        "River ARF, online",
        lambda: quality.online_delayed(features, stream, quality.river_forest, progress=log),
        note="10 trees; learns every fraud label and legitimate ones at random, frauds a tenth of them",
    )
    timed("amount", "amount", lambda: features[:, quality.BASELINE_FEATURES.index("amount")].copy())
    timed("random", "random", lambda: np.random.default_rng(args.seed).random(len(stream)))

    detector: dict[str, DetectorRun] = {mode: get() for mode, get in runs.items()}
    for mode in DETECTOR_MODES:
        run = detector[mode]
        label = "detector, combined" if mode == "combined" else "detector, model alone"
        scorers.insert(DETECTOR_MODES.index(mode), Scorer(f"detector_{mode}", label, run.scores, run.seconds))
    combined = detector["combined"]
    if combined.features is not None:
        matrix = combined.features
        timed(
            "lightgbm_detector_features",
            "LightGBM on detector features",
            lambda: quality.weekly_retrained(matrix, stream, spans, quality.lightgbm_fit(), args.train_days),
            note="diagnostic: the detector's features, a weekly batch model",
        )
    scorers.append(
        Scorer("perfect", "perfect ranking", stream.labels.astype(float), 0.0, "reference: the labels")
    )

    log("evaluating")
    results = {scorer.key: evaluate(scorer, stream, weeks, items, args.k) for scorer in scorers}
    results["detector_combined"]["tie_broken"] = tie_broken(combined, stream, weeks)
    table = format_table(scorers, results, args.k)
    print(table)
    print(format_scenarios(scorers, results))

    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": {key: str(value) for key, value in vars(args).items()},
        "config": asdict(config),
        "dataset": dataset,
        "protocol": {
            "label_delay_days": delay,
            "burn_in_days": burn_in,
            "train_days": args.train_days,
            "k": args.k,
            "test_weeks": [
                {"start": week.label, "transactions": len(week.rows), "removed_cards": week.removed_cards}
                for week in weeks
            ],
        },
        "baseline_features": list(quality.BASELINE_FEATURES),
        "baseline_feature_seconds": feature_seconds,
        "detector_features": combined.feature_names,
        "scorers": results,
        "total_seconds": time.perf_counter() - STARTED,
    }
    (args.out / "quality.json").write_text(json.dumps(report, indent=2))
    write_charts(args.out, scorers, results, stream, weeks)
    log(f"written: {args.out}/quality.json, quality.html, quality-pr.svg, quality-daily-card-precision.svg")
    return 0


def detector_runs(
    rows: list[dict[str, Any]], delay: float, jobs: int
) -> dict[str, Callable[[], DetectorRun]]:
    """The detector's replays, in forked processes when ``jobs`` > 1 (started now, awaited by the
    callables), else in line when awaited."""
    keep = {"combined": True, "model": False}
    if jobs <= 1:
        return {mode: (lambda m=mode: run_detector(rows, m, delay, keep[m])) for mode in DETECTOR_MODES}
    global _ROWS
    _ROWS = rows
    pool = ProcessPoolExecutor(
        min(jobs, len(DETECTOR_MODES)),
        mp_context=multiprocessing.get_context("fork"),
        initializer=_exit_with,
        initargs=(os.getpid(),),
    )
    futures: dict[str, Future[DetectorRun]] = {
        mode: pool.submit(_replay_inherited, mode, delay, keep[mode]) for mode in DETECTOR_MODES
    }
    pool.shutdown(wait=False)
    log(f"detector replays started in {min(jobs, len(DETECTOR_MODES))} processes")
    return {mode: future.result for mode, future in futures.items()}


def describe(
    items: list[Any], stream: quality.Stream, weeks: list[quality.TestWeek], seconds: float
) -> dict[str, Any]:
    labels = stream.labels.tolist()
    amounts = [float(item.transaction["amount"]) for item in items]
    return {
        "transactions": len(items),
        "frauds": int(sum(labels)),
        "fraud_rate": sum(labels) / len(labels),
        "frauds_by_scenario": dict(Counter(item.scenario for item in items if item.is_fraud)),
        "amount_roc_auc_all": roc_auc(labels, amounts),
        "test_transactions": int(sum(len(week.rows) for week in weeks)),
        "test_frauds": int(sum(stream.labels[week.rows].sum() for week in weeks)),
        "generation_seconds": seconds,
    }


def evaluate(
    scorer: Scorer, stream: quality.Stream, weeks: list[quality.TestWeek], items: list[Any], k: int
) -> dict[str, Any]:
    metrics = quality.evaluate(stream, weeks, scorer.scores, k)
    daily = [
        {"date": datetime.fromtimestamp(week.start + d * quality.DAY, UTC).date().isoformat(), "value": value}
        for week, m in zip(weeks, metrics, strict=True)
        for d, value in enumerate(m.daily_card_precision)
    ]
    return {
        "name": scorer.name,
        "note": scorer.note,
        "roc_auc": quality.mean(m.roc_auc for m in metrics),
        "average_precision": quality.mean(m.average_precision for m in metrics),
        "card_precision_at_k": quality.mean(m.card_precision for m in metrics),
        "seconds": scorer.seconds,
        "weeks": [asdict(m) for m in metrics],
        "daily_card_precision": daily,
        "recall_top_1pct_by_scenario": scenario_recall(scorer.scores, stream, weeks, items),
    }


def scenario_recall(
    scores: np.ndarray, stream: quality.Stream, weeks: list[quality.TestWeek], items: list[Any]
) -> dict[str, float | None]:
    """Of each scenario's test frauds, the share among each week's 1 % highest scores."""
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for week in weeks:
        rows = week.rows
        top = rows[np.argsort(-scores[rows], kind="stable")[: max(1, len(rows) // 100)]]
        chosen = set(top.tolist())
        for i in rows[stream.labels[rows]]:
            scenario = items[i].scenario
            total[scenario] += 1
            found[scenario] += int(i) in chosen
    return {s: (found[s] / total[s] if total[s] else None) for s in SCENARIOS}


def tie_broken(run: DetectorRun, stream: quality.Stream, weeks: list[quality.TestWeek]) -> dict[str, Any]:
    """The combined detector ranked as ``fraud backtest``'s report ranks it (the model's probability
    breaking ties between equal scores), for comparison: how many scores tie, and the metrics."""
    ranked = run.scores + run.model_scores * 1e-3
    metrics = quality.evaluate(stream, weeks, ranked)
    test = np.concatenate([week.rows for week in weeks])
    return {
        "share_of_zero_scores": float(np.mean(run.scores[test] == 0)),
        "roc_auc": quality.mean(m.roc_auc for m in metrics),
        "average_precision": quality.mean(m.average_precision for m in metrics),
        "card_precision_at_k": quality.mean(m.card_precision for m in metrics),
    }


def format_table(scorers: list[Scorer], results: dict[str, Any], k: int) -> str:
    def cell(value: float | None) -> str:
        return f"{value:8.3f}" if value is not None else "       -"

    lines = [f"{'scorer':32}{'AUC':>8}{'AP':>8}{f'CP@{k}':>8}{'seconds':>9}"]
    for scorer in scorers:
        r = results[scorer.key]
        lines.append(
            f"{scorer.name:32}{cell(r['roc_auc'])}{cell(r['average_precision'])}"
            f"{cell(r['card_precision_at_k'])}{scorer.seconds:9.0f}"
        )
    return "\n".join(lines)


def format_scenarios(scorers: list[Scorer], results: dict[str, Any]) -> str:
    lines = ["\nrecall in the 1 % highest scores of each test week, by scenario", f"{'scorer':32}"]
    lines[1] += "".join(f"{s[:12]:>13}" for s in SCENARIOS)
    for scorer in scorers:
        recall = results[scorer.key]["recall_top_1pct_by_scenario"]
        lines.append(
            f"{scorer.name:32}"
            + "".join(f"{recall[s]:13.3f}" if recall[s] is not None else f"{'-':>13}" for s in SCENARIOS)
        )
    return "\n".join(lines)


def write_charts(
    out: Path,
    scorers: list[Scorer],
    results: dict[str, Any],
    stream: quality.Stream,
    weeks: list[quality.TestWeek],
) -> None:
    """The precision-recall chart (pooled test weeks) and the daily card precision, as SVG and HTML."""
    test = np.concatenate([week.rows for week in weeks])
    shown = [s for s in scorers if s.key != "perfect"]
    curves = []
    for scorer in shown:
        recall, precision = quality.precision_recall(
            stream.labels[test].tolist(), scorer.scores[test].tolist()
        )
        curves.append((scorer.name, recall, precision))
    first = weeks[0].start
    days = [
        (datetime.fromisoformat(d["date"]).replace(tzinfo=UTC).timestamp() - first) / quality.DAY
        for d in results[shown[0].key]["daily_card_precision"]
    ]
    daily = [(s.name, days, [d["value"] for d in results[s.key]["daily_card_precision"]]) for s in shown]
    ticks = [
        ((week.start - first) / quality.DAY, datetime.fromtimestamp(week.start, UTC).strftime("%b %d"))
        for week in weeks
    ]
    pr_title = "Precision-recall over the test weeks"
    daily_title = "Card precision@100 per test day"
    (out / "quality-pr.svg").write_text(
        quality.line_chart_svg(pr_title, curves, "recall", "precision", y_max=1.0)
    )
    (out / "quality-daily-card-precision.svg").write_text(
        quality.line_chart_svg(daily_title, daily, "test day", "card precision@100", x_ticks=ticks)
    )
    import plotly.graph_objects as go

    pr = go.Figure([go.Scatter(x=r, y=p, name=name, mode="lines") for name, r, p in curves])
    pr.update_layout(title=pr_title, xaxis_title="recall", yaxis_title="precision", yaxis_range=[0, 1])
    dates = [d["date"] for d in results[shown[0].key]["daily_card_precision"]]
    cp = go.Figure(
        [go.Scatter(x=dates, y=values, name=name, mode="lines+markers") for name, _, values in daily]
    )
    cp.update_layout(title=daily_title, xaxis_title="test day", yaxis_title="card precision@100")
    html = pr.to_html(full_html=False, include_plotlyjs=True) + cp.to_html(
        full_html=False, include_plotlyjs=False
    )
    (out / "quality.html").write_text(f"<html><head><meta charset='utf-8'></head><body>{html}</body></html>")


if __name__ == "__main__":
    sys.exit(main())
