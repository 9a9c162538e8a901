"""The unsupervised anomaly detector and how the engine counts its scores."""

from __future__ import annotations

import random

from pipeline.detection.anomaly import AnomalyDetector, likely_fraud_type
from pipeline.detection.engine import ANOMALY_SCORE, DetectionEngine
from pipeline.detection.model import OnlineFraudModel
from pipeline.detection.rules import RuleSet


def _typical(rng: random.Random) -> dict[str, float]:
    return {
        "log_amount": rng.gauss(3.3, 0.4),
        "amount_zscore": rng.gauss(0, 1),
        "card_count_1h": 0.0,
        "log_seconds_since_prev": rng.gauss(10, 1),
        "is_new_merchant": float(rng.random() < 0.1),
    }


def test_warms_up_then_scores_an_outlier_above_typical_traffic() -> None:
    detector = AnomalyDetector(warmup=300, seed=1)
    rng = random.Random(0)
    assert all(detector.score_and_learn(_typical(rng)) is None for _ in range(300))
    typical = [detector.score_and_learn(_typical(rng)) for _ in range(300)]
    outlier = {
        "log_amount": 9.0,
        "amount_zscore": 10.0,
        "card_count_1h": 8.0,
        "log_seconds_since_prev": 2.0,
        "is_new_merchant": 1.0,
        "is_foreign": 1.0,
        "is_new_device": 1.0,
    }
    score = detector.score_and_learn(outlier)
    assert score is not None and score > sorted(typical)[int(0.95 * len(typical))]


def test_likely_fraud_type_from_the_strongest_signs() -> None:
    assert likely_fraud_type({"terminal_small_amount_cards_10m": 4}) == "malicious_behavior"
    assert likely_fraud_type({"device_distinct_cards_10m": 5}) == "malicious_behavior"
    assert likely_fraud_type({"contact_changed_7d": 1, "customer_is_new_device": 1}) == "identity_theft"
    assert likely_fraud_type({"is_foreign": 1}) == "unauthorized_transactions"


class _Scripted(OnlineFraudModel):
    """A model whose anomaly detector returns prepared scores."""

    def __init__(self, scores: list[float | None]) -> None:
        super().__init__()
        outer = iter(scores)

        class Detector:
            def score_and_learn(self, features: dict) -> float | None:
                return next(outer)

        self.anomaly = Detector()  # type: ignore[assignment]


def test_engine_counts_only_unusual_scores_within_the_budget() -> None:
    scores: list[float | None] = [None] * 10 + [0.5] * 600 + [0.95, 0.7]
    engine = DetectionEngine(RuleSet(()), _Scripted(scores), model_min_labels=10**9, anomaly_budget=0.01)
    txn = {"card_token": "tok_anomaly001", "merchant_id": "m", "device_id": None}
    decisions = [engine.decide(txn, {"contact_changed_7d": 1.0, "is_new_device": 1.0}) for _ in scores]
    assert all(d.action == "allow" for d in decisions[:610]), "warm-up and ordinary scores never flag"
    flagged = decisions[610]
    assert flagged.action == "review" and flagged.score == ANOMALY_SCORE
    assert flagged.fraud_type == "identity_theft"
    assert flagged.reasons and flagged.reasons[0].startswith("Unusual transaction: anomaly score 0.95")
    assert decisions[611].action == "allow", "below the floor of 0.8"
    off = DetectionEngine(RuleSet(()), _Scripted([0.99] * 700), model_min_labels=10**9, anomaly_budget=None)
    assert all(off.decide(txn, {}).action == "allow" for _ in range(700))
