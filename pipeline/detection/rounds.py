"""The order in which a batch's entity rows see its transactions and labels: pure, no Kafka.

A batch is computed as matrices (pipeline/detection/states.py), one row per entity; an entity that
comes back within the batch waits for the next round, so that every transaction is described by its
entity's row as it was just before it, as if the batch were taken one transaction at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.detection.columns import TransactionColumns
from pipeline.detection.rows import RowStore
from pipeline.detection.states import Columns, EntityColumns, LabelledActivityColumns


def _rounds(keys: Sequence[str | None]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The distinct keys, each item's position among them (-1 for no key) and its round: the
    number of items with its key before it."""
    rounds = np.zeros(len(keys), dtype=np.intp)
    if all(keys) and len(set(keys)) == len(keys):  # every item its own key: one round, no sorting
        order = sorted(range(len(keys)), key=keys.__getitem__)
        positions = np.empty(len(keys), dtype=np.intp)
        positions[order] = np.arange(len(keys))
        return [str(keys[i]) for i in order], positions, rounds
    present = np.array([bool(key) for key in keys], dtype=bool)
    positions = np.full(len(keys), -1, dtype=np.intp)
    given = np.flatnonzero(present)
    if not len(given):
        return [], positions, rounds
    named = np.array([keys[i] for i in given.tolist()]) if len(given) < len(keys) else np.array(keys)
    distinct, inverse = np.unique(named, return_inverse=True)
    order = np.argsort(inverse, kind="stable")  # by key, in batch order within a key
    grouped = inverse[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(grouped)]))
    occurrence = np.empty(len(given), dtype=np.intp)
    occurrence[order] = np.arange(len(given)) - first
    positions[given], rounds[given] = inverse, occurrence
    return distinct.tolist(), positions, rounds


def observe_in_rounds(
    columns: EntityColumns, keys: Sequence[str | None], txns: TransactionColumns, store: RowStore
) -> Columns:
    """Features of each transaction from its entity's row as it was before it, each row then
    counting its transaction (once per id: a redelivery is not counted twice), in batch order.

    An entity that comes back in the batch waits for the next round: round r takes every entity's
    r-th transaction, so each round is a matrix with every entity at most once. Items without a
    key (no device for a card-present payment) get the neutral features of an empty row."""
    distinct, positions, rounds = _rounds(keys)
    matrix = np.empty((len(distinct) + 1, columns.width))
    matrix[: len(distinct)] = store.rows(distinct)
    matrix[len(distinct)] = columns.empty()
    positions[positions < 0] = len(distinct)  # the empty row, never written
    out = columns.label_features(matrix[positions], txns) if columns.labelled else {}
    out.update((name, np.empty(len(keys))) for name in columns.names if name not in out)
    whole = not rounds.any()  # one round of every item
    for round_ in range(int(rounds.max(initial=-1)) + 1):
        items = np.arange(len(keys)) if whole else np.flatnonzero(rounds == round_)
        rows, taken = matrix[positions[items]], txns if whole else txns.take(items)
        for name, values in columns.features(rows, taken).items():
            out[name][items] = values
        counts = np.flatnonzero((positions[items] < len(distinct)) & ~columns.has_seen(rows, taken))
        if len(counts):
            changed = rows[counts]
            columns.update(changed, taken.take(counts))
            matrix[positions[items[counts]]] = changed
    if distinct:
        store.keep(distinct, matrix[: len(distinct)])
    return out


def record_labels_in_rounds(
    columns: LabelledActivityColumns,
    keys: Sequence[str],
    is_fraud: Sequence[bool],
    at: Sequence[float],
    store: RowStore,
) -> None:
    """The entities of ``keys`` count their labels, in order (an entity that comes back waits for
    the next round, as in ``observe_in_rounds``)."""
    distinct, positions, rounds = _rounds(keys)
    if not distinct:
        return
    matrix = store.rows(distinct)
    frauds, times = np.array(is_fraud, dtype=bool), np.array(at, dtype=np.float64)
    for round_ in range(int(rounds.max()) + 1):
        items = np.flatnonzero(rounds == round_)
        rows = matrix[positions[items]]
        columns.record_labels(rows, frauds[items], times[items])
        matrix[positions[items]] = rows
    store.keep(distinct, matrix)
