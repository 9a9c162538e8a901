"""The unsupervised anomaly detector and how the engine counts its scores."""

from __future__ import annotations

import itertools
import pickle
import random

import numpy as np

from pipeline.detection.anomaly import ANOMALY_FEATURES, AnomalyDetector, likely_fraud_type, rows_of
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
            def score_and_learn_many(self, matrix: np.ndarray) -> np.ndarray:
                return np.array([next(outer) for _ in matrix], dtype=float)  # None -> NaN: warming up

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


def _river_detector(seed: int):  # type: ignore[no-untyped-def]
    from river import anomaly, preprocessing

    trees = anomaly.HalfSpaceTrees(n_trees=10, height=6, window_size=250, seed=seed)
    return preprocessing.MinMaxScaler() | trees


def test_batch_scores_equal_river_half_space_trees_row_by_row() -> None:
    """The array trees give river's MinMaxScaler | HalfSpaceTrees scores, whatever the batch sizes:
    the same trees for the same seed, the scaler moved by each row, the windows swapped mid-batch."""
    rng = np.random.default_rng(5)
    n = 3_000
    matrix = rng.normal(size=(n, len(ANOMALY_FEATURES))) * rng.uniform(0.1, 50, len(ANOMALY_FEATURES))
    matrix[:, 3] = rng.integers(0, 3, n)  # a few discrete columns, as counts are
    matrix[:, 0] = np.where(rng.random(n) < 0.3, 0.0, matrix[:, 0])
    reference = _river_detector(seed=42)
    expected = []
    for row in matrix:
        x = dict(zip(ANOMALY_FEATURES, (float(v) for v in row), strict=True))
        expected.append(reference.score_one(x))
        reference.learn_one(x)
    detector = AnomalyDetector(warmup=0, seed=42)
    got, start = [], 0
    for size in itertools.cycle((1, 7, 250, 500, 33)):
        if start >= n:
            break
        got.extend(detector.score_and_learn_many(matrix[start : start + size]))
        start += size
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_scores_none_while_warming_up_and_the_batch_and_single_paths_agree() -> None:
    rng = random.Random(2)
    rows = [_typical(rng) for _ in range(1_300)]
    one_by_one = AnomalyDetector(warmup=1000, seed=3)
    singles = [one_by_one.score_and_learn(row) for row in rows]
    assert singles[:1000] == [None] * 1000 and all(s is not None for s in singles[1000:])
    batched = AnomalyDetector(warmup=1000, seed=3)
    chunks = [rows_of(rows[i : i + 128]) for i in range(0, 1300, 128)]
    scores = np.concatenate([batched.score_and_learn_many(chunk) for chunk in chunks])
    assert np.isnan(scores[:1000]).all()
    np.testing.assert_allclose(scores[1000:], singles[1000:], atol=1e-12)


def test_a_snapshot_of_the_river_based_detector_loads_as_fresh_trees_that_warm_up_again() -> None:
    old = AnomalyDetector.__new__(AnomalyDetector)
    old.__setstate__({"warmup": 10, "seed": 9, "seen": 5000, "detector": object()})
    assert old.seen == 0 and old.warmup == 10 and old.seed == 9
    assert old.score_and_learn({"log_amount": 1.0}) is None
    restored = pickle.loads(pickle.dumps(old))
    assert restored.seen == 1
