"""Unsupervised anomaly scores (Half-Space Trees) for the cold start and for patterns that no label
has shown yet. It needs no labels: it scores each transaction against the recent traffic, then adds
it to what it knows.

The trees are held as numpy arrays and a compiled walk scores and learns a batch's rows in order
(pipeline/detection/kernels.py), with the same results as river's ``MinMaxScaler() |
HalfSpaceTrees(...)`` fed the rows one by one (Tan, Ting & Liu 2011): the same trees for the same
seed, the same running min-max scaling, the same scores.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.detection import kernels
from pipeline.detection.features import Features
from pipeline.detection.vocabulary import FeatureRows

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

_PADDING = 0.15  # river's make_padded_tree: no split in the outer 15 % of a node's work range


def rows_of(features_list: Sequence[Features]) -> np.ndarray:
    """The (n, len(ANOMALY_FEATURES)) float64 matrix of ``features_list`` (missing features are 0)."""
    return FeatureRows.of(features_list).matrix(ANOMALY_FEATURES)


def _grow(
    rng: random.Random,
    limits: dict[int, tuple[float, float]],
    depth_left: int,
    node: int,
    feature: np.ndarray,
    threshold: np.ndarray,
) -> None:
    """Fill the split of ``node`` and of its subtree (heap order), drawing from ``rng`` exactly as
    river's make_padded_tree does: the feature weighted by its work-range width, then the threshold
    uniform in the padded range, then the left subtree, then the right one."""
    if depth_left == 0:
        return
    on = rng.choices(population=list(limits), weights=[hi - lo for lo, hi in limits.values()])[0]
    lo, hi = limits[on]
    at = rng.uniform(lo + _PADDING * (hi - lo), hi - _PADDING * (hi - lo))
    feature[node], threshold[node] = on, at
    limits[on] = (lo, at)
    _grow(rng, limits, depth_left - 1, 2 * node + 1, feature, threshold)
    limits[on] = (at, hi)
    _grow(rng, limits, depth_left - 1, 2 * node + 2, feature, threshold)
    limits[on] = (lo, hi)


@dataclass(eq=False)
class AnomalyDetector:
    """How unusual a transaction is (0..1) compared with the traffic seen so far."""

    warmup: int = 1000
    seed: int = 42
    seen: int = 0
    n_trees: int = 10
    height: int = 6
    window_size: int = 250
    _feature: np.ndarray = field(init=False, repr=False)
    """Column of the split at each internal node, (n_trees, 2**height - 1), heap order (children of
    node i are 2i + 1 and 2i + 2)."""
    _threshold: np.ndarray = field(init=False, repr=False)
    _r_mass: np.ndarray = field(init=False, repr=False)
    """Reference-window mass of each node, (n_trees, 2**(height + 1) - 1); the score reads it."""
    _l_mass: np.ndarray = field(init=False, repr=False)
    """Latest-window mass, which learning adds to; it becomes the reference every window_size rows."""
    _leaf_score: np.ndarray = field(init=False, repr=False)
    """Each tree's (unnormalised) score of a path by its leaf, (n_trees, 2**height), from _r_mass."""
    _counter: int = field(init=False, repr=False, default=0)
    _first_window: bool = field(init=False, repr=False, default=True)
    _lo: np.ndarray = field(init=False, repr=False)
    _hi: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n_internal, n_nodes = 2**self.height - 1, 2 ** (self.height + 1) - 1
        self._feature = np.zeros((self.n_trees, max(n_internal, 1)), dtype=np.intp)
        self._threshold = np.zeros((self.n_trees, max(n_internal, 1)), dtype=np.float64)
        rng = random.Random(self.seed)
        # river builds its trees over sorted(feature names); drawing over the same order gives the same trees.
        order = sorted(range(len(ANOMALY_FEATURES)), key=ANOMALY_FEATURES.__getitem__)
        for tree in range(self.n_trees):
            limits = {column: (0.0, 1.0) for column in order}
            _grow(rng, limits, self.height, 0, self._feature[tree], self._threshold[tree])
        self._r_mass = np.zeros((self.n_trees, n_nodes), dtype=np.int64)
        self._l_mass = np.zeros((self.n_trees, n_nodes), dtype=np.int64)
        self._leaf_score = np.zeros((self.n_trees, 2**self.height), dtype=np.int64)
        self._counter = 0
        self._first_window = True
        self._lo = np.full(len(ANOMALY_FEATURES), np.inf)
        self._hi = np.full(len(ANOMALY_FEATURES), -np.inf)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A snapshot of the river-based detector (a ``detector`` Pipeline) becomes fresh trees with its
        warmup and seed. ``seen`` is reset to 0 so the fresh trees warm up again: keeping it would score
        at once against a scaler and a reference window built from only a few hundred rows."""
        if "detector" in state:
            state = AnomalyDetector(warmup=state.get("warmup", 1000), seed=state.get("seed", 42)).__dict__
        self.__dict__.update(state)

    def score_and_learn(self, features: Features) -> float | None:
        """The transaction's anomaly score (None while warming up), then learn it."""
        scored = self.seen >= self.warmup
        score = self.score_and_learn_many(rows_of([features]))[0]
        return float(score) if scored else None

    def score_and_learn_many(self, matrix: np.ndarray) -> np.ndarray:
        """Each row's anomaly score (NaN while warming up), learning the rows in order: the same as
        ``score_and_learn`` row by row. ``matrix`` is (n, len(ANOMALY_FEATURES)) in ANOMALY_FEATURES order.
        A compiled walk (pipeline/detection/kernels.py) takes the rows one at a time: a few
        microseconds each, where numpy's calls cost a fixed hundred or more per batch."""
        x = np.ascontiguousarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(ANOMALY_FEATURES):
            raise ValueError(f"expected shape (n, {len(ANOMALY_FEATURES)}), got {x.shape}")
        scores = np.empty(len(x))
        state = np.array([self.seen, self._counter, int(self._first_window)], dtype=np.int64)
        kernels.walk_half_space_trees(
            x, self._lo, self._hi, self._feature, self._threshold, self._r_mass, self._l_mass,
            self._leaf_score, state, self.warmup, self.window_size, self.height, scores,
        )  # fmt: skip
        self.seen, self._counter, self._first_window = int(state[0]), int(state[1]), bool(state[2])
        return scores


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
