"""Quality metrics of pipeline/detection/evaluation.py against scikit-learn and hand-made cases."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline.detection.evaluation import average_precision, card_precision_at_k, roc_auc
from tests.pipeline.factories import PROPERTY

# A few score values only, so that most examples contain ties (within and across classes).
TIED_SCORES = st.sampled_from([0.0, 0.1, 0.5, 0.5000001, 0.9, 1.0])
ANY_SCORES = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def labelled(
    draw: st.DrawFn, scores: st.SearchStrategy[float] = TIED_SCORES
) -> tuple[list[bool], list[float]]:
    pairs = draw(st.lists(st.tuples(st.booleans(), scores), min_size=1, max_size=60))
    return [label for label, _ in pairs], [score for _, score in pairs]


@st.composite
def both_classes(
    draw: st.DrawFn, scores: st.SearchStrategy[float] = TIED_SCORES
) -> tuple[list[bool], list[float]]:
    labels, values = draw(labelled(scores))
    # Force one positive and one negative somewhere, keeping the rest random.
    labels = [*labels, True, False]
    values = [*values, draw(scores), draw(scores)]
    order = draw(st.permutations(range(len(labels))))
    return [labels[i] for i in order], [values[i] for i in order]


@PROPERTY
@given(both_classes())
def test_roc_auc_equals_sklearn_with_ties(data: tuple[list[bool], list[float]]) -> None:
    labels, scores = data
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)


@PROPERTY
@given(both_classes(ANY_SCORES))
def test_roc_auc_equals_sklearn_on_continuous_scores(data: tuple[list[bool], list[float]]) -> None:
    labels, scores = data
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)


@PROPERTY
@given(both_classes())
def test_average_precision_equals_sklearn_with_ties(data: tuple[list[bool], list[float]]) -> None:
    labels, scores = data
    expected = average_precision_score(labels, scores)
    assert average_precision(labels, scores) == pytest.approx(expected, abs=1e-9)


@PROPERTY
@given(both_classes(ANY_SCORES))
def test_average_precision_equals_sklearn_on_continuous_scores(data: tuple[list[bool], list[float]]) -> None:
    labels, scores = data
    expected = average_precision_score(labels, scores)
    assert average_precision(labels, scores) == pytest.approx(expected, abs=1e-9)


@PROPERTY
@given(st.lists(TIED_SCORES, min_size=0, max_size=30), st.booleans())
def test_roc_auc_is_none_with_one_class(scores: list[float], label: bool) -> None:
    assert roc_auc([label] * len(scores), scores) is None


@PROPERTY
@given(st.lists(TIED_SCORES, min_size=0, max_size=30))
def test_average_precision_is_none_without_positives(scores: list[float]) -> None:
    assert average_precision([False] * len(scores), scores) is None


@PROPERTY
@given(st.lists(TIED_SCORES, min_size=1, max_size=30))
def test_average_precision_of_only_positives_is_one_as_sklearn(scores: list[float]) -> None:
    # Documented: None only *without positives*; with no negatives every threshold has precision 1.
    labels = [True] * len(scores)
    assert average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores))
    assert average_precision(labels, scores) == pytest.approx(1.0)


def test_roc_auc_hand_made() -> None:
    assert roc_auc([True, False], [0.9, 0.1]) == 1.0
    assert roc_auc([True, False], [0.1, 0.9]) == 0.0
    assert roc_auc([True, False], [0.5, 0.5]) == 0.5  # a tie counts half
    # Positives 0.8, 0.4; negatives 0.6, 0.2: pairs won 1+1+0+1 of 4.
    assert roc_auc([True, True, False, False], [0.8, 0.4, 0.6, 0.2]) == 0.75


def test_average_precision_hand_made() -> None:
    # Ranking: P(0.9) N(0.8) P(0.7): precision 1 at recall 0.5, 2/3 at recall 1.
    assert average_precision([True, False, True], [0.9, 0.8, 0.7]) == pytest.approx(0.5 + 0.5 * 2 / 3)


# --- card precision@k ---------------------------------------------------------------------------
def test_card_with_several_transactions_counts_once() -> None:
    cards = [
        ("card-a", 0.9, False),
        ("card-a", 0.8, True),  # card-a was compromised that day
        ("card-a", 0.7, False),
        ("card-b", 0.6, False),
        ("card-c", 0.5, True),
    ]
    # Per transaction the top 2 would both be card-a (1.0); per card it is card-a and card-b.
    assert card_precision_at_k(cards, 2) == 0.5
    assert card_precision_at_k(cards, 3) == pytest.approx(2 / 3)


@pytest.mark.parametrize("first_low", [True, False])
def test_card_is_ranked_by_its_max_score(first_low: bool) -> None:
    scores = [0.1, 0.95] if first_low else [0.95, 0.1]
    cards = [
        ("card-a", scores[0], True),
        ("card-a", scores[1], False),
        ("card-b", 0.5, False),
    ]
    assert card_precision_at_k(cards, 1) == 1.0  # card-a (max 0.95) comes first, and is compromised


def test_card_precision_k_larger_than_cards_uses_all_cards() -> None:
    cards = [("card-a", 0.9, True), ("card-b", 0.2, False), ("card-c", 0.1, False), ("card-c", 0.3, False)]
    assert card_precision_at_k(cards, 100) == pytest.approx(1 / 3)
    assert card_precision_at_k([("card-a", 0.1, True)], 100) == 1.0


def test_card_precision_of_nothing_is_none() -> None:
    assert card_precision_at_k([], 10) is None
    assert card_precision_at_k(iter(()), 1) is None


@PROPERTY
@given(
    st.dictionaries(
        st.text("abcdef", min_size=1, max_size=3),
        st.lists(st.tuples(st.integers(0, 10**6), st.booleans()), min_size=1, max_size=4),
        min_size=1,
        max_size=15,
    ),
    st.integers(1, 20),
)
def test_card_precision_matches_a_reference(per_card: dict[str, list[tuple[int, bool]]], k: int) -> None:
    # Distinct maxima per card, so the ranking is unambiguous.
    maxima = [max(score for score, _ in items) for items in per_card.values()]
    if len(set(maxima)) != len(maxima):
        return
    cards = [(card, score / 10**6, fraud) for card, items in per_card.items() for score, fraud in items]
    ranked = sorted(per_card, key=lambda card: -max(score for score, _ in per_card[card]))[:k]
    expected = sum(any(fraud for _, fraud in per_card[card]) for card in ranked) / len(ranked)
    result = card_precision_at_k(cards, k)
    assert result is not None and math.isclose(result, expected)
