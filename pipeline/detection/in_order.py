"""A batch's entity rows, gathered from their store, walked in batch order and given back: pure,
no Kafka.

Each transaction is described by its entity's row as it was just before it, as if the batch were
taken one transaction at a time, however often an entity comes back in it (the walks of
pipeline/detection/kernels.py go through the batch in order, in place).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.detection.columns import TransactionColumns
from pipeline.detection.rows import MatrixRows, RowStore
from pipeline.detection.states import EntityColumns, LabelledActivityColumns


def _distinct(keys: Sequence[str | None]) -> tuple[list[str], np.ndarray]:
    """The distinct keys, in order of first appearance, and each item's position among them (the
    position after the last for an item without a key)."""
    index: dict[str, int] = {}
    positions = [index.setdefault(key, len(index)) if key else -1 for key in keys]
    array = np.array(positions, dtype=np.intp)
    array[array < 0] = len(index)
    return list(index), array


def observe_block_in_order(
    columns: EntityColumns, keys: Sequence[str | None], txns: TransactionColumns, store: RowStore
) -> np.ndarray:
    """Features of each transaction from its entity's row as it was before it, each row then
    counting its transaction (once per id: a redelivery is not counted twice), in batch order, as
    one (transactions, ``columns.names``) matrix. Items without a key (no device for a card-present
    payment) get the neutral features of an empty row."""
    if isinstance(store, MatrixRows):
        return _observe_in_matrix(columns, keys, txns, store)
    distinct, positions = _distinct(keys)
    matrix = np.empty((len(distinct) + 1, columns.width))
    if distinct:
        matrix[: len(distinct)] = store.rows(distinct)
    matrix[len(distinct)] = columns.empty()
    out = columns.observe(matrix, positions, len(distinct), txns)
    if distinct:
        store.keep(distinct, matrix[: len(distinct)])
    return out


def _observe_in_matrix(
    columns: EntityColumns, keys: Sequence[str | None], txns: TransactionColumns, store: MatrixRows
) -> np.ndarray:
    """``observe_block_in_order`` over a replay's matrix store: the walk goes over the store's own
    rows, in place (nothing gathered, nothing written back), the items without a key on its empty
    row, which is never counted in (the walk counts no row from ``known_rows`` on)."""
    matrix, positions, empty = store.walked(keys)
    return columns.observe(matrix, positions, empty, txns)


def record_labels_in_order(
    columns: LabelledActivityColumns,
    keys: Sequence[str],
    is_fraud: Sequence[bool],
    at: Sequence[float],
    store: RowStore,
) -> None:
    """The entities of ``keys`` count their labels, in order."""
    distinct, positions = _distinct(keys)
    if not distinct:
        return
    matrix = store.rows(distinct)
    columns.record_labels_at(
        matrix, positions, np.array(is_fraud, dtype=bool), np.array(at, dtype=np.float64)
    )
    store.keep(distinct, matrix)
