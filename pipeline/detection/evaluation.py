"""Quality metrics for fraud detection, computed from scores and ground truth: pure functions.

* ``roc_auc``: probability that a random fraud scores above a random legitimate transaction.
* ``average_precision``: area under the precision-recall curve (step-wise, as scikit-learn).
* ``card_precision_at_k``: of the k cards with the highest score on a day, the share that had a
  fraud that day (the measure of "Reproducible Machine Learning for Credit Card Fraud Detection").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np


def _tie_groups(
    labels: Sequence[bool], scores: Sequence[float], descending: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(transactions, positives) in each group of equal scores, groups in score order."""
    values = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-values if descending else values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(ordered)])
    positives = (
        np.add.reduceat(np.asarray(labels, dtype=np.float64)[order], starts) if len(starts) else starts
    )
    return sizes.astype(np.float64), positives


def roc_auc(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """ROC AUC with ties counted as half; None when only one class is present."""
    positives = int(np.count_nonzero(np.asarray(labels, dtype=bool)))
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    sizes, group_positives = _tie_groups(labels, scores, descending=False)
    ends = np.cumsum(sizes)  # a group of ranks i+1 .. j+1 (1-based) has the average rank (i + j) / 2 + 1
    average_ranks = (ends - sizes + ends - 1) / 2 + 1
    rank_sum = float(np.cumsum(average_ranks * group_positives)[-1])  # cumsum: Python's order of additions
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def average_precision(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Sum over thresholds of (recall step) x precision; None without positives."""
    positives = int(np.count_nonzero(np.asarray(labels, dtype=bool)))
    if positives == 0:
        return None
    sizes, group_positives = _tie_groups(labels, scores, descending=True)
    precision = np.cumsum(group_positives) / np.cumsum(sizes)
    return float(np.cumsum(group_positives / positives * precision)[-1])


def card_precision_at_k(cards: Iterable[tuple[str, float, bool]], k: int) -> float | None:
    """(card, score, is_fraud) of one day -> share of compromised cards among the k riskiest."""
    best: dict[str, float] = defaultdict(float)
    compromised: set[str] = set()
    for card, score, is_fraud in cards:
        best[card] = max(best[card], score)
        if is_fraud:
            compromised.add(card)
    if not best:
        return None
    top = sorted(best, key=lambda card: -best[card])[:k]
    return sum(1 for card in top if card in compromised) / len(top)
