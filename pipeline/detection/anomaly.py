"""Unsupervised anomaly scores (river HalfSpaceTrees) for the cold start and for patterns that no
label has shown yet. It needs no labels: it scores each transaction against the recent traffic, then
adds it to what it knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from river import anomaly, compose, preprocessing

from pipeline.detection.features import Features

# Features where fraud tends to be unusual; all bounded or log-scaled so min-max scaling is stable.
ANOMALY_FEATURES: tuple[str, ...] = (
    "log_amount",
    "amount_zscore",
    "card_count_1h",
    "card_count_24h",
    "log_seconds_since_prev",
    "is_new_merchant",
    "is_new_country",
    "is_foreign",
    "is_new_device",
    "customer_is_new_device",
    "contact_changed_7d",
    "shipping_mismatch",
    "is_small_amount",
    "terminal_small_amount_cards_10m",
    "device_distinct_cards_10m",
)


def _detector(seed: int) -> compose.Pipeline:
    return preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
        n_trees=10, height=6, window_size=250, seed=seed
    )


@dataclass
class AnomalyDetector:
    """How unusual a transaction is (0..1) compared with the traffic seen so far."""

    warmup: int = 1000
    seed: int = 42
    detector: compose.Pipeline = field(default=None)  # type: ignore[assignment]
    seen: int = 0

    def __post_init__(self) -> None:
        if self.detector is None:
            self.detector = _detector(self.seed)

    def score_and_learn(self, features: Features) -> float | None:
        """The transaction's anomaly score (None while warming up), then learn it."""
        x = {name: features.get(name, 0.0) for name in ANOMALY_FEATURES}
        score = float(self.detector.score_one(x)) if self.seen >= self.warmup else None
        self.detector.learn_one(x)
        self.seen += 1
        return score


def likely_fraud_type(features: Features) -> str:
    """A fraud type for an anomaly no rule or trained model has named, from its strongest signs:
    many cards at one terminal or device -> Malicious Behavior; a new device on an account whose
    contact details just changed -> Identity Theft; otherwise Unauthorized Transactions."""
    if (
        features.get("terminal_small_amount_cards_10m", 0) >= 2
        or features.get("device_distinct_cards_10m", 0) >= 3
    ):
        return "malicious_behavior"
    if features.get("contact_changed_7d", 0) and (
        features.get("customer_is_new_device", 0) or features.get("is_new_device", 0)
    ):
        return "identity_theft"
    return "unauthorized_transactions"
