"""Quality metrics for fraud detection, computed from scores and ground truth: pure functions.

* ``roc_auc``: probability that a random fraud scores above a random legitimate transaction.
* ``average_precision``: area under the precision-recall curve (step-wise, as scikit-learn).
* ``card_precision_at_k``: of the k cards with the highest score on a day, the share that had a
  fraud that day (the measure of "Reproducible Machine Learning for Credit Card Fraud Detection").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence


def roc_auc(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """ROC AUC with ties counted as half; None when only one class is present."""
    positives = sum(1 for label in labels if label)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum = 0.0
    i = 0
    while i < len(order):  # average ranks over ties
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        average_rank = (i + j) / 2 + 1
        rank_sum += average_rank * sum(1 for k in range(i, j + 1) if labels[order[k]])
        i = j + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def average_precision(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Sum over thresholds of (recall step) x precision; None without positives."""
    positives = sum(1 for label in labels if label)
    if positives == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    true_positives = seen = 0
    total = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        group_positives = sum(1 for k in range(i, j + 1) if labels[order[k]])
        true_positives += group_positives
        seen += j - i + 1
        total += group_positives / positives * (true_positives / seen)
        i = j + 1
    return total


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
