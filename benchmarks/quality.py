"""Quality benchmark: the online system against a weekly-retrained batch model, rules alone and
the online model alone, on the same simulated data with the same label delay.

    python benchmarks/quality.py [--days 60] [--rate 0.08] [--label-delay-days 7]

Prints the figures side by side and writes them to var/benchmarks/quality.json. The batch baseline
is the usual practice of this field: a scikit-learn random forest retrained every 7 days on the
labelled history older than the label delay, scoring the following week (on the same features).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.config import load_settings
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.vocabulary import parse_timestamp
from pipeline.tools.backtest import ScoredTransaction, build_engine, print_progress, replay, summarise
from pipeline.tools.simulator.generator import FraudRates, TrafficGenerator

WEEK = 7 * 86400


def simulated_rows(days: float, rate: float, seed: int) -> list[dict]:
    start = datetime(2026, 1, 5, tzinfo=UTC).timestamp()  # a Monday
    generator = TrafficGenerator(
        seed=seed,
        customers=4000,
        merchants=500,
        rate=rate,
        start=start,
        fraud=FraudRates(0.0015, 0.001, 0.0006),
    )
    rows = []
    for item in generator.events(until=start + days * 86400):
        rows.append({**item.transaction, "is_fraud": item.is_fraud, "fraud_type": item.fraud_type})
    return rows


def batch_baseline(scored: list[ScoredTransaction], features: list[dict], delay_days: float) -> list[float]:
    """Scores of a random forest retrained weekly on labels known by the start of each week."""
    times = np.array([parse_timestamp(s.event_time) for s in scored])
    matrix = np.array([[f[name] for name in FEATURE_NAMES] for f in features], dtype=np.float32)
    labels = np.array([s.is_fraud for s in scored])
    scores = np.zeros(len(scored))
    week_start = times.min()
    while week_start <= times.max():
        week = (times >= week_start) & (times < week_start + WEEK)
        known = times < week_start - delay_days * 86400
        if week.any() and known.sum() > 100 and labels[known].any() and not labels[known].all():
            model = RandomForestClassifier(
                n_estimators=100,
                min_samples_leaf=5,
                n_jobs=-1,
                random_state=0,
                class_weight="balanced_subsample",
            )
            model.fit(matrix[known], labels[known])
            scores[week] = model.predict_proba(matrix[week])[:, 1]
        week_start += WEEK
    return scores.tolist()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=float, default=60)
    parser.add_argument("--rate", type=float, default=0.08, help="transactions per simulated second")
    parser.add_argument("--label-delay-days", type=float, default=7)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=Path("var/benchmarks/quality.json"))
    args = parser.parse_args()
    settings = load_settings()

    began = time.perf_counter()
    rows = simulated_rows(args.days, args.rate, args.seed)
    print(
        f"generated {len(rows)} transactions over {args.days:.0f} days "
        f"({sum(r['is_fraud'] for r in rows)} fraudulent) in {time.perf_counter() - began:.0f} s"
    )

    results = {}
    scored_by_mode: dict[str, list[ScoredTransaction]] = {}
    kept_features: list[dict] = []
    scored_combined: list[ScoredTransaction] = []
    for mode in ("combined", "rules", "model"):
        print(f"replaying: {mode}")
        result = replay(
            rows,
            build_engine(settings, mode),
            label_delay_days=args.label_delay_days,
            k=args.k,
            keep_features=mode == "combined",
            progress=print_progress,
        )
        results[mode] = result.overall | {
            "seconds": result.seconds,
            "rows_per_second": result.rows / result.seconds,
        }
        scored_by_mode[mode] = result.scored
        if mode == "combined":
            kept_features, scored_combined = result.features, result.scored

    print("training the batch baseline (random forest, retrained weekly)")
    started = time.perf_counter()
    baseline_scores = batch_baseline(scored_combined, kept_features, args.label_delay_days)
    baseline_scored = [
        ScoredTransaction(
            s.transaction_id,
            s.event_time,
            s.card_token,
            s.customer_id,
            score,
            score,
            None,
            "block" if score >= 0.5 else "allow",
            s.is_fraud,
            s.true_fraud_type,
        )
        for s, score in zip(scored_combined, baseline_scores, strict=True)
    ]
    _, results["batch_random_forest"] = summarise(baseline_scored, args.k)
    results["batch_random_forest"]["seconds"] = time.perf_counter() - started
    scored_by_mode["batch_random_forest"] = baseline_scored

    # The batch model has nothing to learn from in its first weeks; compare also on the days
    # when every contender has had two weeks of labels.
    warm_from = datetime.fromtimestamp(
        parse_timestamp(rows[0]["event_time"]) + 2 * WEEK + args.label_delay_days * 86400, UTC
    ).isoformat()
    warm = {
        mode: summarise([s for s in scored if s.event_time >= warm_from], args.k)[1]
        for mode, scored in scored_by_mode.items()
    }

    keys = [
        "roc_auc",
        "average_precision",
        "card_precision_at_k",
        "recall",
        "alert_rate",
        "recall_unauthorized_transactions",
        "recall_identity_theft",
        "recall_malicious_behavior",
    ]
    names = {
        "combined": "online (rules+model)",
        "rules": "rules alone",
        "model": "model alone",
        "batch_random_forest": "batch RF (weekly)",
    }
    for title, table in ((f"all {args.days:.0f} days", results), (f"from {warm_from[:10]} on", warm)):
        print(f"\n{title}\n{'metric':34}" + "".join(f"{names[m]:>22}" for m in table))
        for key in keys:
            cells = "".join(f"{table[m].get(key) or 0:>22.4f}" for m in table)
            print(f"{key:34}{cells}")
        for key in ("average_precision", "card_precision_at_k"):
            ratio = (table["combined"][key] or 0) / max(table["batch_random_forest"][key] or 1e-9, 1e-9)
            print(f"online / batch, {key}: {ratio:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "results": results,
                "warm_from": warm_from,
                "results_warm": warm,
            },
            indent=2,
        )
    )
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
