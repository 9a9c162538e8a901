"""The detector alone, without Kafka or Faust: a model trained offline on simulated labels, the
samples per second of each model, and the worker's own work per transaction on one core."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import orjson

from pipeline.config import Settings
from pipeline.tools.bench.workers import bench_clock
from pipeline.tools.simulator.generator import TrafficGenerator


def trained_model(
    settings: Settings, count: int
) -> tuple[Any, list[dict[str, float]], list[tuple[str, bool, str | None]]]:
    """A model trained by replaying ``count`` labelled simulated transactions, plus the features
    and labels of that replay (for the per-model rates)."""
    from pipeline.tools.backtest import replay
    from pipeline.wiring import build_detector

    rate = 200.0
    start = bench_clock() - 3 * 86400  # the same time of week as the bench's traffic
    generator = TrafficGenerator.from_settings(
        settings, rate=rate, start=start, rhythm=False, run_id="warm", seed=11
    )
    rows = [
        {**item.transaction, "is_fraud": item.is_fraud, "fraud_type": item.fraud_type or ""}
        for item in generator.events(count=count)
    ]
    detector = build_detector(settings, "combined")
    # Labels 10 s late (event time), so that the model learns nearly all of them during the replay
    # (at 200/s the stream lasts count / 200 s; a delay longer than that left the model untrained).
    result = replay(rows, detector, label_delay_days=10 / 86400, keep_features=True)
    labels = [(s.transaction_id, s.is_fraud, s.true_fraud_type) for s in result.scored]
    return detector.engine.model, result.features, labels


def model_rates(
    settings: Settings, features: list[dict[str, float]], labels: list[tuple[str, bool, str | None]]
) -> dict[str, float]:
    """Samples per second of each model alone, and of the whole decision, on replayed features:
    learning one label at a time (as the model learns a batch of labels, in order), predicting and
    deciding in batches of 500 (as the detector does)."""
    from pipeline.detection.anomaly import AnomalyDetector, rows_of
    from pipeline.detection.candidates import BoostingCandidate, LogisticCandidate
    from pipeline.detection.features import FEATURE_NAMES
    from pipeline.detection.model import OnlineFraudModel
    from pipeline.detection.vocabulary import FeatureRows
    from pipeline.wiring import build_detector

    def timed(step: Callable[[int], object]) -> float:
        started = time.perf_counter()
        for index in range(len(features)):
            step(index)
        return len(features) / (time.perf_counter() - started)

    def batched(step: Callable[[FeatureRows], object], size: int = 500) -> float:
        batches = [FeatureRows(features[start : start + size]) for start in range(0, len(features), size)]
        started = time.perf_counter()
        for batch in batches:
            step(batch)
        return len(features) / (time.perf_counter() - started)

    model = OnlineFraudModel()
    logistic = LogisticCandidate()
    boosting = BoostingCandidate(FEATURE_NAMES)
    rates = {
        "logistic candidate learn (scaler|clip|logistic)": timed(
            lambda i: logistic.learn(features[i], labels[i][1])
        ),
        "logistic candidate predict (batches of 500)": batched(logistic.predict_many),
        "boosting candidate learn (window; retrain every 5,000)": timed(
            lambda i: boosting.learn(features[i], labels[i][1], labels[i][0])
        ),
    }
    if boosting.ready:
        rates["boosting candidate predict (batches of 500)"] = batched(boosting.predict_many)
    rates["type model learn (scaler|clip|softmax)"] = timed(
        lambda i: model.fraud_type.learn_one(features[i], labels[i][2] or "unauthorized_transactions")
    )
    rates["type model predict"] = timed(lambda i: model.fraud_type.predict_one(features[i]))
    detector = AnomalyDetector()
    rates["anomaly score+learn (half-space trees, batches of 500)"] = batched(
        lambda rows: detector.score_and_learn_many(rows_of(rows))
    )
    engine = build_detector(settings, "combined").engine
    engine.learn_many([(labels[i][0], features[i], labels[i][1], labels[i][2]) for i in range(len(features))])
    txn = {"card_token": "tok", "merchant_id": "m", "device_id": "d", "terminal_id": "t", "customer_id": "c"}
    rates["whole decision (rules, models, anomaly, explanation; batches of 500)"] = batched(
        lambda rows: engine.decide_many([(txn, row) for row in rows])
    )
    return rates


def logic_alone(settings: Settings, model: Any, values: list[bytes]) -> dict[str, Any]:
    """Transactions per second of the worker's own work on one core, without Kafka or Faust: each
    transaction validated (JSON, PAN check, schema), its features from every entity's state, the
    decision (rules, the trained model, the anomaly detector), the decision and alert messages and
    the features kept for its label, encoded. What the stages' hops, tables and Faust's delivery add
    is the gap between this and the one-worker rate."""
    from pipeline.contracts.messages import alert_message, decision_message, utc_now_iso
    from pipeline.contracts.validation import Invalid, parse_message
    from pipeline.detection.detector import InMemoryStates
    from pipeline.detection.features import event_seconds
    from pipeline.wiring import build_detector

    detector = build_detector(settings, "combined", copy.deepcopy(model))
    states = InMemoryStates()
    started = time.perf_counter()
    for start in range(0, len(values), settings.worker_batch_size):
        batch = []
        for value in values[start : start + settings.worker_batch_size]:
            txn = parse_message(value, "transaction", settings.max_message_bytes)
            if isinstance(txn, Invalid):
                raise ValueError(f"a simulated transaction was refused: {txn.reason}")
            batch.append((txn, event_seconds(txn)))
        for item in detector.process(batch, states):
            decision = decision_message(item.txn, item.decision, utc_now_iso(), 0.0)
            orjson.dumps(decision)
            if item.decision.action != "allow":
                orjson.dumps(alert_message(decision, item.txn, item.features))
            orjson.dumps({"features": item.features, "decision": decision, "at": item.at})
    seconds = time.perf_counter() - started
    return {"transactions": len(values), "seconds": seconds, "rate": len(values) / seconds}


def detector_alone(settings: Settings, model: Any, values: list[bytes], batch: int = 500) -> dict[str, Any]:
    """Transactions per second of the detector alone on one core (every entity's features, rules,
    the trained model, the anomaly trees: ``Detector.process``) in batches of ``batch``; the
    transactions are parsed beforehand and no message is built."""
    from pipeline.contracts.validation import parse_message
    from pipeline.detection.detector import InMemoryStates
    from pipeline.detection.features import event_seconds
    from pipeline.wiring import build_detector

    parsed = [parse_message(value, "transaction", settings.max_message_bytes) for value in values]
    items = [(txn, event_seconds(txn)) for txn in parsed if isinstance(txn, dict)]
    detector = build_detector(settings, "combined", copy.deepcopy(model))
    states = InMemoryStates()
    started = time.perf_counter()
    for start in range(0, len(items), batch):
        detector.process(items[start : start + batch], states)
    seconds = time.perf_counter() - started
    return {
        "transactions": len(items),
        "batch": batch,
        "seconds": seconds,
        "rate": len(items) / seconds,
        "us_per_transaction": seconds / len(items) * 1e6,
    }


def install_model(settings: Settings, model: Any) -> None:
    from pipeline.wiring import snapshot_store

    store = snapshot_store(settings)
    store.save(model, model.labels_learnt)
