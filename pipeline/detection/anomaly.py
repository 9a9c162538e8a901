"""Unsupervised anomaly scores (Half-Space Trees) for the cold start and for patterns that no label
has shown yet. It needs no labels: it scores each transaction against the recent traffic, then adds
it to what it knows.

The trees are held as numpy arrays so that a whole batch is scored and learnt at once, with the
same results as river's ``MinMaxScaler() | HalfSpaceTrees(...)`` fed the rows one by one (Tan, Ting
& Liu 2011): the same trees for the same seed, the same running min-max scaling, the same scores.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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


def _scaled(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """river's MinMaxScaler.transform_one row by row: (x - lo) / (hi - lo), 0 where hi == lo."""
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (x - lo) / span
    return np.where(span != 0, out, 0.0)


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
        ``score_and_learn`` row by row. ``matrix`` is (n, len(ANOMALY_FEATURES)) in ANOMALY_FEATURES order."""
        x = np.asarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(ANOMALY_FEATURES):
            raise ValueError(f"expected shape (n, {len(ANOMALY_FEATURES)}), got {x.shape}")
        n = len(x)
        scores = np.full(n, np.nan)
        if n == 0:
            return scores
        # river's Pipeline scores a row with the scaler as it was before the row, and learns it by updating
        # the scaler first and then passing the row scaled by it to the trees. fmin/fmax skip NaN as river's
        # Min/Max do.
        lo_after = np.fmin(np.fmin.accumulate(x, axis=0), self._lo)
        hi_after = np.fmax(np.fmax.accumulate(x, axis=0), self._hi)
        learn_leaf = self._leaves(_scaled(x, lo_after, hi_after))
        first = min(n, max(0, self.warmup - self.seen))
        if first < n:
            lo_before = np.vstack([self._lo, lo_after[:-1]])[first:]
            hi_before = np.vstack([self._hi, hi_after[:-1]])[first:]
            # A row is walked the same way for its score as for its learning unless it moved the scaler.
            moved = first + np.flatnonzero(
                ((lo_before != lo_after[first:]) | (hi_before != hi_after[first:])).any(axis=1)
            )
            score_leaf = learn_leaf.copy()
            if len(moved):
                score_leaf[:, moved] = self._leaves(
                    _scaled(x[moved], lo_before[moved - first], hi_before[moved - first])
                )

        # The reference mass only changes when a window fills up: score and learn a window's share at once.
        start = 0
        while start < n:
            stop = min(n, start + self.window_size - self._counter)
            begin = max(start, first)
            if begin < stop:
                # river scores 0 until its first window has filled (reachable only if warmup < window_size).
                scores[begin:stop] = 0.0 if self._first_window else self._scores(score_leaf[:, begin:stop])
            self._learn(learn_leaf[:, start:stop])
            self._counter += stop - start
            if self._counter == self.window_size:
                self._r_mass, self._l_mass = self._l_mass, np.zeros_like(self._l_mass)
                self._leaf_score = self._path_scores()
                self._counter, self._first_window = 0, False
            start = stop
        self._lo, self._hi = lo_after[-1], hi_after[-1]
        self.seen += n
        return scores

    def _leaves(self, scaled: np.ndarray) -> np.ndarray:
        """The leaf (0 .. 2**height - 1) each scaled row reaches in each tree: (n_trees, n)."""
        n_internal = 2**self.height - 1
        n, width = scaled.shape
        values = scaled.ravel()
        row_base = np.arange(n) * width
        features, thresholds = self._feature.ravel(), self._threshold.ravel()
        # ``at`` is the node's index in the flattened (n_trees, n_internal) split arrays: tree * n_internal
        # + node, so the child 2 * node + 2 - left is 2 * at + step - left with a per-tree step.
        tree_base = (np.arange(self.n_trees) * n_internal)[:, None]
        at = np.repeat(tree_base, n, axis=1)
        step = 2 - tree_base
        for _ in range(self.height):
            # ``<`` and not ``>=``: a NaN goes right, as in river's ``left if x < t else right``.
            left = values.take(features.take(at) + row_base) < thresholds.take(at)
            at = 2 * at + step - left
        return at - tree_base - n_internal

    def _learn(self, leaves: np.ndarray) -> None:
        """Add the rows that reached ``leaves`` to the latest-window mass of every node on their paths."""
        n_leaves = 2**self.height
        base = (np.arange(self.n_trees) * n_leaves)[:, None]
        counts = np.bincount((leaves + base).ravel(), minlength=self.n_trees * n_leaves)
        level = counts.reshape(self.n_trees, n_leaves)
        # Heap order: level d holds nodes 2**d - 1 .. 2**(d + 1) - 2; a node's mass is its children's sum.
        for depth in range(self.height, -1, -1):
            self._l_mass[:, 2**depth - 1 : 2 ** (depth + 1) - 1] += level
            level = level[:, 0::2] + level[:, 1::2]

    def _path_scores(self) -> np.ndarray:
        """river's per-tree score of the path to each leaf: the sum of r_mass * 2**depth along it, stopping
        after the first node whose r_mass is under 0.1 * window_size. (n_trees, 2**height)."""
        leaf_nodes = np.arange(2**self.height) + 2**self.height - 1
        depths = np.arange(self.height + 1)
        ancestors = ((leaf_nodes[None, :] + 1) >> (self.height - depths)[:, None]) - 1
        mass = self._r_mass[:, ancestors]  # (n_trees, height + 1, n_leaves)
        reached = np.ones_like(mass, dtype=bool)
        reached[:, 1:] = np.logical_and.accumulate(mass[:, :-1] >= 0.1 * self.window_size, axis=1)
        weights = (1 << depths.astype(np.int64))[None, :, None]
        return np.where(reached, mass * weights, 0).sum(axis=1)

    def _scores(self, leaves: np.ndarray) -> np.ndarray:
        """The normalised score of rows that reached ``leaves``: 1 - mass score / its maximum (high:
        anomalous)."""
        n_leaves = 2**self.height
        base = (np.arange(self.n_trees) * n_leaves)[:, None]
        total = self._leaf_score.ravel().take(leaves + base).sum(axis=0)
        max_score = self.n_trees * self.window_size * (2 ** (self.height + 1) - 1)
        return 1.0 - total / max_score


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
