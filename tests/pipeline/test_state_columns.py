"""The state rows, a batch at a time, give every transaction the features the reference objects
(tests/pipeline/reference/object_states.py) give it one at a time: on random streams of few
entities (so entities come back within a batch), redelivered transactions, transactions without
a device, labels between batches, and batches of any size."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.detection.columns import TransactionColumns
from pipeline.detection.detector import InMemoryStates
from pipeline.detection.features import ENTITY_STAGES
from pipeline.detection.in_order import observe_block_in_order, record_labels_in_order
from pipeline.detection.rows import MatrixRows
from pipeline.detection.states import (
    CARD,
    DAY,
    HOUR,
    MINUTE,
    LabelledActivityColumns,
)
from tests.pipeline.factories import PROPERTY, T0, make_digital_txn
from tests.pipeline.reference import object_states as reference

REFERENCE = {
    "terminal": reference.TerminalState,
    "merchant": reference.MerchantState,
    "device": reference.DeviceState,
    "customer": reference.CustomerState,
}
SUMS = {"amount", "mean", "to_card_mean", "zscore", "to_mean"}
"""Features that add amounts: the rows add a window's buckets in another order (a few units in the
last place); every other feature is equal exactly."""

BOUNDARIES = [0, 1, 59, 61, 299, 301, 599, 601, 3599, 3601, 6 * HOUR, 23 * HOUR, 25 * HOUR,
              2.5 * DAY, 6.9 * DAY, 7.1 * DAY, 29.5 * DAY, 31 * DAY]  # fmt: skip
"""Gaps around every window's length and bucket width, so windows slide and buckets expire."""
GAPS = st.one_of(st.sampled_from(BOUNDARIES), st.floats(0, 120), st.floats(0, 2 * DAY))
EVENTS = st.lists(
    st.tuples(
        GAPS,
        st.integers(0, 3),  # card (its customer: card // 2)
        st.integers(0, 2),  # merchant
        st.integers(0, 1),  # terminal within the merchant
        st.one_of(st.none(), st.integers(0, 2)),  # device
        st.one_of(st.floats(0.5, 2.99), st.floats(3, 5000)),  # amount: small ones for card testing
        st.booleans(),  # a redelivery of the previous transaction
        st.one_of(st.none(), st.booleans()),  # a label for this transaction, known after its batch
    ),
    min_size=1,
    max_size=60,
)


def _stream(events: list[tuple[Any, ...]]) -> list[tuple[dict[str, Any], float, bool | None]]:
    at, stream = T0, []
    for index, (gap, card, merchant, terminal, device, amount, again, label) in enumerate(events):
        if again and stream:
            stream.append(stream[-1])
            continue
        at += gap
        txn = make_digital_txn(
            at,
            transaction_id=f"tx-{index:04d}",
            card_token=f"tok_card{card:07d}",
            customer_id=f"cust-{card // 2}",
            merchant_id=f"m-{merchant}",
            terminal_id=f"t-{terminal}",
            device_id=None if device is None else f"dev-{device}",
            amount=amount,
            country=("DE", "FR", "RO")[int(at) % 3],
        )
        stream.append((txn, at, label))
    return stream


def _expected(stream, batches) -> list[dict[str, float]]:  # type: ignore[no-untyped-def]
    """The reference: one transaction at a time; labels counted after each batch."""
    states: dict[tuple[str, str], Any] = {}
    out: list[dict[str, float]] = []
    for batch in batches:
        for txn, at, _ in batch:
            features: dict[str, float] = {}
            for entity in ENTITY_STAGES:
                key = entity.key(txn)
                state = states.setdefault((entity.name, key), REFERENCE[entity.name]()) if key else None
                features.update((state or REFERENCE[entity.name]()).features(txn, at))
                if state is not None and not state.has_seen(txn["transaction_id"]):
                    state.update(txn, at)
            card = states.setdefault(("card", txn["card_token"]), reference.CardState())
            features.update(card.features(txn, at))
            if not card.has_seen(txn["transaction_id"]):
                card.update(txn, at)
            out.append(features)
        for txn, at, label in batch:
            for entity in ENTITY_STAGES:
                if label is not None and isinstance(entity.columns, LabelledActivityColumns):
                    states[entity.name, entity.key(txn)].record_label(label, at + MINUTE)
    return out


def _columns(stream, batches) -> list[dict[str, float]]:  # type: ignore[no-untyped-def]
    """The pipeline's rows, a batch at a time."""
    states = InMemoryStates()
    out: list[dict[str, float]] = []
    for batch in batches:
        txns = TransactionColumns.of([txn for txn, _, _ in batch], [at for _, at, _ in batch])
        columns: dict[str, np.ndarray] = {}
        for entity in ENTITY_STAGES:
            keys = [entity.key(txn) for txn, _, _ in batch]
            block = observe_block_in_order(entity.columns, keys, txns, states.store_of(entity))
            columns.update(zip(entity.columns.names, block.T, strict=True))
        tokens = [txn["card_token"] for txn, _, _ in batch]
        block = observe_block_in_order(CARD, tokens, txns, states.cards)
        columns.update(zip(CARD.names, block.T, strict=True))
        out.extend({name: float(values[i]) for name, values in columns.items()} for i in range(len(batch)))
        labelled = [(txn, at, label) for txn, at, label in batch if label is not None]
        for entity in ENTITY_STAGES:
            if isinstance(entity.columns, LabelledActivityColumns) and labelled:
                keys = [entity.key(txn) or "" for txn, _, _ in labelled]
                frauds = [bool(label) for _, _, label in labelled]
                times = [at + MINUTE for _, at, _ in labelled]
                record_labels_in_order(entity.columns, keys, frauds, times, states.store_of(entity))
    return out


def _assert_same(got: list[dict[str, float]], expected: list[dict[str, float]]) -> None:
    assert len(got) == len(expected)
    for index, (row, wanted) in enumerate(zip(got, expected, strict=True)):
        assert set(row) == set(wanted)
        for name, value in wanted.items():
            if any(part in name for part in SUMS):
                assert row[name] == pytest.approx(value, rel=1e-12, abs=1e-9), (index, name)
            else:
                assert row[name] == value, (index, name)


@PROPERTY
@given(events=EVENTS, cuts=st.lists(st.integers(1, 60), min_size=1, max_size=8))
def test_rows_in_batches_give_the_reference_features(events: list[tuple[Any, ...]], cuts: list[int]) -> None:
    stream = _stream(events)
    batches, start = [], 0
    for size in cuts * len(stream):
        if start >= len(stream):
            break
        batches.append(stream[start : start + size])
        start += size
    _assert_same(_columns(stream, batches), _expected(stream, batches))


def test_a_busy_terminal_in_one_batch_gives_the_reference_features() -> None:
    """Hundreds of cards at one terminal in one batch (card testing): hundreds of rounds."""
    events = [(1.0, i % 4, 0, 0, i % 3, 1.0 + i % 3, False, None) for i in range(300)]
    stream = _stream(events)
    _assert_same(_columns(stream, [stream]), _expected(stream, [stream]))


def test_matrix_rows_grow_and_keep_every_key() -> None:
    store = MatrixRows(np.zeros(3))
    for start in range(0, 3000, 700):
        keys = [f"k{i}" for i in range(start, start + 700)]
        rows = store.rows(keys)
        rows[:, 0] = np.arange(start, start + 700)
        store.keep(keys, rows)
    assert len(store) == 3500
    assert store.rows(["k0", "k2999", "k3499"])[:, 0].tolist() == [0.0, 2999.0, 3499.0]
    assert store.row("missing") is None
