"""The detector's batch shortcuts against the per-item steps they replace: entity keys a column at a
time, the replay's state rows walked in place, the list candidates of a batch, and ``process``
against the worker's path (its entity features, then ``score``) on the same transactions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from river import stats

from pipeline.config import Settings
from pipeline.detection.candidates import Attribution, LogisticCandidate
from pipeline.detection.columns import TransactionColumns
from pipeline.detection.detector import InMemoryStates
from pipeline.detection.engine import DetectionEngine, round_9
from pipeline.detection.entity_lists import EntityLists, ListUpdate
from pipeline.detection.explanations import explain, explain_many
from pipeline.detection.features import ENTITY_STAGES, FEATURE_NAMES, event_seconds
from pipeline.detection.in_order import observe_block_in_order
from pipeline.detection.model import OnlineFraudModel, _type_classifier, softmax_types
from pipeline.detection.rules import parse_rules
from pipeline.detection.states import CARD
from pipeline.detection.vocabulary import FRAUD_TYPES, FeatureRows
from pipeline.tools.simulator.generator import TrafficGenerator
from pipeline.wiring import build_detector
from tests.pipeline.factories import PROPERTY, make_txn
from tests.pipeline.test_state_columns import EVENTS, _stream

VALUES = st.one_of(st.none(), st.just(""), st.sampled_from(["a", "b", "c|d"]), st.integers(0, 3))


@PROPERTY
@given(st.lists(st.tuples(VALUES, VALUES, VALUES, VALUES, VALUES), max_size=30))
def test_the_keys_of_a_batch_are_each_transactions_key(fields: list[tuple[Any, ...]]) -> None:
    txns = [
        {"terminal_id": t, "merchant_id": m, "device_id": d, "customer_id": c, "card_token": k}
        for t, m, d, c, k in fields
    ]
    for entity in ENTITY_STAGES:
        assert entity.keys(txns) == [entity.key(txn) for txn in txns]


class DictRows:
    """A store that is not a matrix: the generic path (rows gathered, walked, written back)."""

    def __init__(self, empty: np.ndarray) -> None:
        self.empty, self.stored = empty, {}

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        return np.array([self.stored.get(key, self.empty) for key in keys], dtype=np.float64)

    def keep(self, keys: Sequence[str], rows: np.ndarray) -> None:
        self.stored.update((key, row.copy()) for key, row in zip(keys, rows, strict=True))


@PROPERTY
@given(events=EVENTS, cuts=st.lists(st.integers(1, 80), min_size=1, max_size=8))
def test_walking_the_replays_rows_in_place_equals_gathering_them(
    events: list[tuple[Any, ...]], cuts: list[int]
) -> None:
    stream = _stream(events)
    in_place, gathered = InMemoryStates(), {e.name: DictRows(e.columns.empty()) for e in ENTITY_STAGES}
    gathered_cards = DictRows(CARD.empty())
    start = 0
    for size in cuts * len(stream):
        batch = stream[start : start + size]
        if not batch:
            break
        start += size
        txns = TransactionColumns.of([txn for txn, _, _ in batch], [at for _, at, _ in batch])
        for entity in ENTITY_STAGES:
            keys = entity.keys([txn for txn, _, _ in batch])
            one = observe_block_in_order(entity.columns, keys, txns, in_place.store_of(entity))
            two = observe_block_in_order(entity.columns, keys, txns, gathered[entity.name])
            assert one.tolist() == two.tolist()
        tokens = [txn["card_token"] for txn, _, _ in batch]
        one = observe_block_in_order(CARD, tokens, txns, in_place.cards)
        assert one.tolist() == observe_block_in_order(CARD, tokens, txns, gathered_cards).tolist()
    for entity in ENTITY_STAGES:
        store = in_place.store_of(entity)
        for key, row in gathered[entity.name].stored.items():
            assert store.row(key).tolist() == row.tolist()  # type: ignore[union-attr]
        assert len(store) == len(gathered[entity.name].stored)


TOKENS = st.sampled_from(["tok_a", "tok_b", "tok_c", "dev-1", "m-1", None])
RULE_FILE = parse_rules(
    "rules: []\nlists:\n  blocked_cards: [tok_a]\n  blocked_devices: [dev-1]\n  allowed_cards: [tok_b]\n",
    FEATURE_NAMES,
)


def _update(list_name: str, kind: str, value: str) -> ListUpdate:
    message = {"reason": "r", "who": "w", "at": "2026-11-29T10:00:00.000+00:00"}
    return ListUpdate(f"{list_name}:{kind}:{value}", list_name, kind, value, "add", message)  # type: ignore[arg-type]


@PROPERTY
@given(
    txns=st.lists(st.tuples(TOKENS, TOKENS, TOKENS), max_size=20),
    entries=st.lists(
        st.tuples(
            st.sampled_from(["block", "allow"]), st.sampled_from(["card", "device", "merchant"]), TOKENS
        ),
        max_size=6,
    ),
    rule_file=st.booleans(),
)
def test_the_list_candidates_of_a_batch_hold_every_listed_transaction(
    txns: list[tuple[Any, ...]], entries: list[tuple[str, str, str | None]], rule_file: bool
) -> None:
    lists = EntityLists()
    for list_name, kind, value in entries:
        if value is not None:
            lists.apply(_update(list_name, kind, value))
    rules = RULE_FILE if rule_file else None
    batch = [make_txn(card_token=c, device_id=d, merchant_id=m) for c, d, m in txns]
    candidates = lists.candidates(batch, rules)
    assert candidates is not None
    for index, txn in enumerate(batch):
        if index not in candidates:
            assert lists.match(txn, rules) is None


def test_an_unhashable_field_leaves_each_transaction_to_be_matched_alone() -> None:
    assert EntityLists().candidates([make_txn(card_token=["x"])], RULE_FILE) is None


@pytest.mark.parametrize("size", [1, 7, 500])
def test_process_decides_as_the_workers_entity_and_score_steps(size: int) -> None:
    """``process`` (the replay's matrix states, in place, columns shared) against the worker's
    path: ``observe_entities`` on stores that are not matrices, then ``score`` of dicts."""
    settings = Settings()
    generator = TrafficGenerator.from_settings(settings, rate=50.0, start=1.79e9, rhythm=False, seed=5)
    txns = [item.transaction for item in generator.events(count=1_500)]
    items = [(txn, event_seconds(txn)) for txn in txns]
    one, two = build_detector(settings, "combined"), build_detector(settings, "combined")
    states = InMemoryStates()
    stores = {entity.name: DictRows(entity.columns.empty()) for entity in ENTITY_STAGES}
    cards = DictRows(CARD.empty())
    for start in range(0, len(items), size):
        batch = items[start : start + size]
        processed = one.process(batch, states)
        entity = two.observe_entities(two.entities, batch, lambda e: stores[e.name])
        scored = two.score([(txn, at, f) for (txn, at), f in zip(batch, entity, strict=True)], cards)
        assert [item.decision for item in processed] == [item.decision for item in scored]  # type: ignore[union-attr]
        assert [dict(item.features) for item in processed] == [dict(item.features) for item in scored]  # type: ignore[union-attr]


@PROPERTY
@given(
    st.lists(st.lists(st.floats(-50, 50), min_size=4, max_size=4), min_size=2, max_size=30),
    st.lists(st.booleans(), min_size=5, max_size=40),
)
def test_the_logistic_split_of_a_matrix_is_each_rows_split(
    rows: list[list[float]], labels: list[bool]
) -> None:
    names = ("a", "b", "c", "d")
    candidate = LogisticCandidate()
    for index, label in enumerate(labels):  # "d" is never learnt: it counts for nothing
        candidate.learn({"a": index % 3, "b": -index, "c": 0.5 * index, "zz": 1.0}, label)
    matrix = FeatureRows.of_matrix(names, np.array(rows))
    one_by_one = [candidate.attributions_many([dict(zip(names, row, strict=True))])[0] for row in rows]
    assert candidate.attributions_many(matrix) == one_by_one


VALUES_ = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 2.5, 1e6]), st.floats(-1e3, 1e3))


@PROPERTY
@given(
    learnt=st.lists(
        st.tuples(st.lists(VALUES_, min_size=5, max_size=5), st.sampled_from(FRAUD_TYPES)),
        min_size=1,
        max_size=40,
    ),
    asked=st.lists(st.lists(VALUES_, min_size=5, max_size=5), min_size=1, max_size=30),
)
def test_the_type_classifier_on_a_matrix_answers_as_row_by_row(
    learnt: list[tuple[list[float], str]], asked: list[list[float]]
) -> None:
    names = ("f1", "f2", "f3", "f4", "f5")
    pipeline = _type_classifier()
    for values, kind in learnt:
        pipeline.learn_one(dict(zip(names, values, strict=True)), kind)
    rows = FeatureRows.of_matrix(names, np.array(asked))
    expected = [pipeline.predict_one(dict(zip(names, values, strict=True))) for values in asked]
    assert softmax_types(pipeline, rows) == expected


def test_the_type_classifier_on_a_matrix_leaves_unseen_features_to_each_row() -> None:
    pipeline = _type_classifier()
    pipeline.learn_one({"a": 1.0}, "identity_theft")
    assert softmax_types(pipeline, FeatureRows.of_matrix(("a", "b"), np.ones((3, 2)))) is None
    assert "b" not in pipeline["StandardScaler"].means, "nothing was added to the scaler"


@PROPERTY
@given(st.lists(st.lists(st.floats(0, 1), max_size=30), max_size=6), st.booleans())
def test_the_budget_of_a_batch_is_each_scores_in_order(batches: list[list[float]], trained: bool) -> None:
    engine = DetectionEngine(parse_rules("rules: []\n", FEATURE_NAMES), OnlineFraudModel(boosting=False))
    reference = stats.RollingQuantile(q=1 - 0.05, window_size=10_000)
    for batch in batches:
        expected = []
        for score in batch:
            if trained:
                reference.update(score)
                line = reference.get()
            expected.append(trained and (line is None or score >= line))
        assert engine._counted(batch, trained) == expected
    if trained and any(batches):
        assert engine._recent_scores is not None and engine._recent_scores.get() == reference.get()


CONTRIBUTION = st.one_of(st.sampled_from([0.0, 1e-7, 0.5, 0.5, 2.0, math.inf, math.nan]), st.floats(-3, 3))


@PROPERTY
@given(st.lists(st.lists(CONTRIBUTION, min_size=12, max_size=12), min_size=2, max_size=12), st.integers(1, 6))
def test_the_explanations_of_a_batch_are_each_alerts(values: list[list[float]], top: int) -> None:
    names = (
        "amount", "log_amount", "hour_sin", "hour_cos", "is_digital", "channel_atm", "card_count_1h",
        "is_foreign", "amount_zscore", "terminal_frauds_7d", "log_seconds_since_prev", "is_new_device",
    )  # fmt: skip
    attributions = [Attribution(0.5, dict(zip(names, row, strict=True))) for row in values]
    rows = [dict.fromkeys(names, 1.0) for _ in values]
    pairs = zip(attributions, rows, strict=True)
    expected = [explain("linear", a.base, a.contributions, f, top) for a, f in pairs]
    assert repr(explain_many("linear", attributions, rows, top)) == repr(expected)


ROUNDED = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 1),
    st.integers(0, 10**9).map(lambda n: n / 1e9 + 5e-10),  # halves of the last digit kept
    st.integers(0, 10**9).map(lambda n: (2 * n + 1) / 2e9),
    st.sampled_from([0.0, -0.0, 1.0, 5e-10, 1.5e-9, 0.1234567895, 1e6, 123456.7890123455]),
)


@PROPERTY
@given(st.lists(ROUNDED, max_size=50))
def test_rounding_a_batch_to_9_digits_is_pythons_round(values: list[float]) -> None:
    got = round_9(values)
    expected = [round(value, 9) for value in values]
    assert [repr(v) for v in got] == [repr(v) for v in expected]


@PROPERTY
@given(st.lists(st.lists(VALUES, max_size=12), max_size=6), st.integers(1, 8))
def test_the_hashes_remembered_across_batches_are_the_hashes_of_each_batch(
    batches: list[list[Any]], limit: int
) -> None:
    from pipeline.detection import columns

    before = columns.REMEMBERED_MAX
    columns.REMEMBERED_MAX = limit  # small: the memory starts again empty now and then
    largest = 0
    try:
        for values in batches:
            largest = max(largest, len(values))
            remembered = columns._remembered_hashes(values)
            assert remembered.tolist() == columns._hashes(values).tolist()
            assert len(columns._REMEMBERED) <= limit + largest  # bounded
    finally:
        columns.REMEMBERED_MAX = before
        columns._REMEMBERED.clear()
