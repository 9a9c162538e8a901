"""The worker and ``fraud backtest`` run one detector: the same transactions and labels, in the same
order, get the same scores and decisions from both, transaction by transaction.

The traffic comes in two phases an hour apart. The first phase is decided, then its labels (known
one hour after each transaction, as the backtest's label delay says) are learnt by the worker, then
the second phase is decided with the model, the anomaly detector and the terminals' and merchants'
fraud counts as the first phase left them. One partition keeps the worker's order equal to the
backtest's event-time order (the anomaly detector and the alert budget depend on the order)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.contracts.json_schemas import validator
from pipeline.tools.backtest import replay
from pipeline.tools.simulator.generator import FraudRates, TrafficGenerator
from pipeline.wiring import build_detector
from tests.e2e.test_pipeline import metric_value
from tests.support import consume_until, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PHASE = 1500
LABEL_DELAY = timedelta(hours=1)


def two_phases() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Simulated transactions with their ground truth; the second phase moved two hours later."""
    # Yesterday from 08:00 UTC: the traffic (which follows the time of day) is the same every run,
    # and both phases are in the past and within the worker's event-time window.
    yesterday = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(days=1)
    start = yesterday.timestamp()
    generator = TrafficGenerator(
        seed=21, customers=300, merchants=40, rate=20, fraud=FraudRates(0.03, 0.03, 0.02), start=start,
        run_id="match",
    )  # fmt: skip
    events = list(generator.events(count=2 * PHASE))
    rows = [{**e.transaction, "is_fraud": e.is_fraud, "fraud_type": e.fraud_type} for e in events]
    for row in rows[PHASE:]:
        moved = datetime.fromisoformat(row["event_time"]) + timedelta(hours=2)
        row["event_time"] = moved.isoformat(timespec="milliseconds")
    return rows[:PHASE], rows[PHASE:]


def transaction(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key not in ("is_fraud", "fraud_type")}


def label(row: dict[str, Any]) -> dict[str, Any]:
    known = datetime.fromisoformat(row["event_time"]) + LABEL_DELAY
    return {
        "schema_version": 1,
        "transaction_id": row["transaction_id"],
        "card_token": row["card_token"],
        "is_fraud": row["is_fraud"],
        "fraud_type": row["fraud_type"] if row["is_fraud"] else None,
        "source": "chargeback" if row["is_fraud"] else "settlement",
        "analyst": None,
        "comment": None,
        "labelled_at": known.isoformat(),
    }


def test_worker_and_backtest_score_every_transaction_alike(make_settings, start_worker) -> None:
    first, second = two_phases()
    settings = make_settings(topic_partitions=1, model_min_labels=50)
    worker = start_worker(settings)

    def decided(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        produce(settings, settings.topic_transactions, [(r["card_token"], transaction(r)) for r in rows])
        ids = {r["transaction_id"] for r in rows}
        got = consume_until(
            settings, settings.topic_decisions, lambda m: ids <= {d["transaction_id"] for d in m}
        )
        return {d["transaction_id"]: d for d in got if d["transaction_id"] in ids}

    online = decided(first)
    produce(settings, settings.topic_labels, [(r["card_token"], label(r)) for r in first])
    deadline = time.monotonic() + 90
    handled = 0.0
    while time.monotonic() < deadline:
        metrics = worker.metrics()
        handled = sum(metric_value(metrics, "fraud_labels_total", outcome=o) for o in ("learnt", "skipped"))
        if handled >= PHASE:
            break
        time.sleep(0.5)
    assert handled == PHASE, f"the worker handled {handled} of {PHASE} labels:\n{worker.log()}"
    online.update(decided(second))

    offline = replay(first + second, build_detector(settings, "combined"), label_delay_days=1 / 24)
    assert not offline.refused
    by_id = {s.transaction_id: s for s in offline.scored}
    differing = [
        (tid, (d["decision"], d["score"], d["model_score"], d["fraud_type"]),
         (by_id[tid].decision, by_id[tid].score, by_id[tid].model_score, by_id[tid].fraud_type))
        for tid, d in online.items()
        if (d["decision"], d["score"], d["model_score"], d["fraud_type"])
        != (by_id[tid].decision, by_id[tid].score, by_id[tid].model_score, by_id[tid].fraud_type)
    ]  # fmt: skip
    assert len(online) == len(by_id) == 2 * PHASE
    assert not differing, f"{len(differing)} of {2 * PHASE} differ, e.g. {differing[:3]}"
    later = [online[r["transaction_id"]] for r in second]
    assert all(d["model_version"].endswith(f"@{PHASE}") for d in later), (
        "phase two: the model learnt phase one"
    )
    assert len({d["model_score"] for d in later}) > PHASE // 10, "the model scores phase two, not a constant"
    assert sum(d["decision"] != "allow" for d in online.values()) >= 20, "rules and model must fire"

    # Phase two is scored by the trained model: its alerts say why, as the alert v2's factors.
    flagged = {d["transaction_id"] for d in later if d["decision"] != "allow"}
    assert flagged
    got = consume_until(settings, settings.topic_alerts, lambda m: flagged <= {a["alert_id"] for a in m})
    alerts = [a for a in got if a["alert_id"] in flagged]
    for alert in alerts:
        validator("alert")(alert)
    assert all(a["schema_version"] == 2 and "explanation" in a for a in alerts)
    explained = [a for a in alerts if a["explanation"]["factors"]]
    assert len(explained) >= 0.9 * len(alerts), f"{len(explained)} of {len(alerts)} alerts have factors"
    assert all(f["name"] and f["contribution"] > 0 for a in explained for f in a["explanation"]["factors"])
