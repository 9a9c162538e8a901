"""The detector: the one place that knows the order of the scoring steps.

    transaction features -> every entity's features (ENTITY_STAGES, in order) -> the card's features
        -> the decision (lists, rules, model, anomaly) ; each state then remembers the transaction
    a label -> the model learns it -> the labelled entities (terminal, merchant) count it

The worker runs the entity step in its entity stages (each entity's state lives on its own
partition, so a stage passes its share of ``entities``) and the rest in its score stage; ``fraud
backtest``, ``fraud bench`` and the benchmarks run all of it in one process (``process``). The API
is batch-first, a list in and a list out, so a batch can be computed as columns without changing
the callers. States are reached through a lookup the caller provides (its tables, or dicts), so
the detector holds no storage and no I/O. Each entity's state is a row (pipeline/detection/states.py):
a batch's rows are gathered into a matrix and its features computed on it, column by column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from pipeline.detection.candidates import Attribution
from pipeline.detection.columns import TransactionColumns
from pipeline.detection.engine import Decision, DetectionEngine
from pipeline.detection.explanations import explain_alerts
from pipeline.detection.features import (
    ENTITY_STAGES,
    Entity,
    Features,
    transaction_feature_matrix,
    transaction_features,
)
from pipeline.detection.in_order import observe_block_in_order, record_labels_in_order
from pipeline.detection.rows import MatrixRows, RowStore
from pipeline.detection.states import (
    CARD,
    LabelledActivityColumns,
)
from pipeline.detection.vocabulary import FeatureRows

Transaction = Mapping[str, Any]
StoreOf = Callable[[Entity], RowStore]
"""The state rows of an entity (pipeline/detection/rows.py)."""
OnError = Callable[[int, Exception], None]
"""Told the index of an item whose step failed, and why; the batch goes on without it."""


@dataclass(slots=True)
class Scored:
    """A scored transaction: the features it was decided on and the decision. Read-only by
    convention, not frozen, for the cost of a frozen ``__init__`` (``Decision``)."""

    txn: Transaction
    at: float
    decision: Decision
    rows: FeatureRows
    """The features of its batch (a matrix, whose rows become dicts only when asked for)."""
    row: int

    @property
    def features(self) -> Features:
        return self.rows[self.row]


@dataclass(frozen=True, slots=True)
class Example:
    """A label joined with what was known when its transaction was scored."""

    transaction_id: str
    features: Features
    is_fraud: bool
    fraud_type: str | None
    entity_keys: Mapping[str, str]
    """The keys of the labelled entities of its transaction (``Detector.entity_keys``)."""
    known_at: float
    """When the label became known (event time): the entities count it from then on, never before."""


@dataclass(frozen=True, slots=True)
class EntityLabel:
    """A label that a labelled entity (terminal, merchant) counts in its confirmed-fraud rate."""

    entity: str
    key: str
    is_fraud: bool
    at: float


@dataclass(frozen=True, slots=True)
class Learnt:
    """What learning a batch of labels did: how many the model learnt (none when learning is off,
    as in a rules-only backtest; the rest are skipped) and the labels the entities must count."""

    learnt: int
    skipped: int
    entity_labels: list[EntityLabel]


class Detector:
    """Features, decision and learning for batches of transactions and labels."""

    def __init__(self, engine: DetectionEngine, entities: tuple[Entity, ...] = ENTITY_STAGES) -> None:
        self.engine = engine
        self.entities = entities
        self._labelled = tuple(e for e in entities if isinstance(e.columns, LabelledActivityColumns))
        self._by_name = {entity.name: entity for entity in entities}

    # --- scoring --------------------------------------------------------------------------------
    def observe_entities(
        self,
        entities: Sequence[Entity],
        batch: Sequence[tuple[Transaction, float]],
        store_of: StoreOf,
        on_error: OnError | None = None,
    ) -> list[Features | None]:
        """The features of each (transaction, event time) from ``entities``' states, each state then
        counting the transaction; None for an item that failed (told to ``on_error``)."""
        out: list[Features | None] = [None] * len(batch)
        good, names, matrix = self._observe_block(entities, batch, store_of, on_error)
        for index, values in zip(good, matrix.tolist(), strict=True):
            out[index] = dict(zip(names, values, strict=True))
        return out

    def _observe_block(
        self,
        entities: Sequence[Entity],
        batch: Sequence[tuple[Transaction, float]],
        store_of: StoreOf,
        on_error: OnError | None,
    ) -> tuple[list[int], tuple[str, ...], np.ndarray]:
        """``observe_entities`` as a matrix: the indices of the items that did not fail, the names
        of their features and the (items, names) matrix of them."""
        good, names, matrix, _ = self._observe_columns(entities, batch, store_of, on_error)
        return good, names, matrix

    def _observe_columns(
        self,
        entities: Sequence[Entity],
        batch: Sequence[tuple[Transaction, float]],
        store_of: StoreOf,
        on_error: OnError | None,
    ) -> tuple[list[int], tuple[str, ...], np.ndarray, TransactionColumns | None]:
        """``_observe_block`` and the columns of its good items (None when there are none)."""
        good, keys, txns = _entity_keys(entities, batch, on_error)
        if txns is None:
            return good, (), np.empty((0, 0)), None
        blocks = [
            observe_block_in_order(entity.columns, entity_keys, txns, store_of(entity))
            for entity, entity_keys in zip(entities, keys, strict=True)
        ]
        names = tuple(name for entity in entities for name in entity.columns.names)
        return good, names, np.hstack(blocks) if blocks else np.empty((len(good), 0)), txns

    def score(
        self,
        batch: Sequence[tuple[Transaction, float, Features]],
        cards: RowStore,
        on_error: OnError | None = None,
    ) -> list[Scored | None]:
        """Decide each (transaction, event time, its entity features), in order: the transaction's
        own features, the entities', the card's (the card then counts the transaction), then the
        decisions of the whole batch at once (``DetectionEngine.decide_rows``). None for an item
        that failed (told to ``on_error``)."""
        ready: list[tuple[int, Transaction, float]] = []
        for index, (txn, at, _) in enumerate(batch):
            try:
                _check_fields(txn)
                ready.append((index, txn, at))
            except Exception as exc:
                _report(on_error, index, exc)
        entity = FeatureRows(batch[index][2] for index, _, _ in ready)
        return self._score_ready(ready, entity, cards, len(batch), on_error)

    def process(self, batch: Sequence[tuple[Transaction, float]], states: InMemoryStates) -> list[Scored]:
        """Every step for a batch in one process (backtest, bench): the worker's stages in a row,
        the features kept as columns throughout."""
        good, names, matrix, txns = self._observe_columns(self.entities, batch, states.store_of, None)
        entity = FeatureRows.of_matrix(names, matrix)
        ready = [(index, batch[index][0], batch[index][1]) for index in good]
        scored = self._score_ready(ready, entity, states.cards, len(batch), None, txns)
        return [item for item in scored if item is not None]

    def _score_ready(
        self,
        ready: list[tuple[int, Transaction, float]],
        entity: FeatureRows,
        cards: RowStore,
        size: int,
        on_error: OnError | None,
        txns: TransactionColumns | None = None,
    ) -> list[Scored | None]:
        """``score`` of the ``ready`` items (their index in the batch of ``size``, transaction, event
        time) whose entity features are the rows of ``entity``. The features are the columns of one
        matrix, in the order a transaction's features have always had: its own, the entities', the
        card's (entity rows of different features are merged as dicts instead). ``txns``: the
        columns of the ``ready`` transactions, when the caller has them."""
        out: list[Scored | None] = [None] * size
        (own_names, own), kept, entity = self._own_features(ready, entity, on_error, txns)
        if not kept:
            return out
        txn_list = [txn for _, txn, _ in kept]
        if txns is None or kept is not ready:
            txns = TransactionColumns.of(txn_list, [at for _, _, at in kept])
        ready = kept
        card = observe_block_in_order(CARD, [txn["card_token"] for txn in txn_list], txns, cards)
        entity_names = entity.names
        if entity_names is not None:
            matrix = np.hstack([own, entity.matrix(entity_names), card])
            rows = FeatureRows.of_matrix((*own_names, *entity_names, *CARD.names), matrix)
        else:
            own_rows = (dict(zip(own_names, values, strict=True)) for values in own.tolist())
            card_rows = (dict(zip(CARD.names, values, strict=True)) for values in card.tolist())
            merged = zip(own_rows, entity, card_rows, strict=True)
            rows = FeatureRows({**mine, **theirs, **cards_} for mine, theirs, cards_ in merged)
        attributions: dict[int, Attribution] = {}  # the model's split of the rows it flags
        decisions = self.engine.decide_rows(txn_list, rows, attributions=attributions)
        explain_alerts(self.engine, rows, decisions, attributions)  # the alerts' rows carry their explanation
        for row, ((index, txn, at), decision) in enumerate(zip(ready, decisions, strict=True)):
            if isinstance(decision, Exception):
                _report(on_error, index, decision)
            else:
                out[index] = Scored(txn, at, decision, rows, row)
        return out

    @staticmethod
    def _own_features(
        ready: list[tuple[int, Transaction, float]],
        entity: FeatureRows,
        on_error: OnError | None,
        txns: TransactionColumns | None = None,
    ) -> tuple[tuple[tuple[str, ...], np.ndarray], list[tuple[int, Transaction, float]], FeatureRows]:
        """The transactions' own features as (names, matrix), with the items (and their entity
        rows) whose own features could be computed; one that could not is told to ``on_error``."""
        try:
            return _own_columns(ready, txns), ready, entity
        except Exception:  # which item: one at a time (a validated transaction never gets here)
            kept: list[int] = []
            for position, (index, txn, at) in enumerate(ready):
                try:
                    transaction_features(txn, at)
                    kept.append(position)
                except Exception as exc:
                    _report(on_error, index, exc)
            ready = [ready[position] for position in kept]
            entity = entity.take(kept)
            return _own_columns(ready), ready, entity

    # --- learning -------------------------------------------------------------------------------
    def entity_keys(self, txn: Transaction) -> dict[str, str]:
        """The keys of the labelled entities of ``txn`` (a transaction or its decision), which its
        label will need (``Example.entity_keys``)."""
        return {entity.name: key for entity in self._labelled if (key := entity.key(txn))}

    def learn(self, examples: Sequence[Example]) -> Learnt:
        """The model learns each example, in order; returns the labels the entities must count."""
        learnt = self.engine.learn_many(
            [(e.transaction_id, e.features, e.is_fraud, e.fraud_type) for e in examples]
        )
        entity_labels: list[EntityLabel] = []
        for example in examples:
            for entity in self._labelled:
                key = example.entity_keys.get(entity.name)
                if key:
                    entity_labels.append(EntityLabel(entity.name, key, example.is_fraud, example.known_at))
        return Learnt(learnt, len(examples) - learnt, entity_labels)

    def count_entity_labels(self, labels: Sequence[EntityLabel], store_of: StoreOf) -> None:
        """The labelled entities count ``labels`` in their confirmed-fraud rates, in order."""
        for entity in self._labelled:
            mine = [label for label in labels if label.entity == entity.name]
            if mine:
                assert isinstance(entity.columns, LabelledActivityColumns)
                record_labels_in_order(
                    entity.columns,
                    [label.key for label in mine],
                    [label.is_fraud for label in mine],
                    [label.at for label in mine],
                    store_of(entity),
                )

    def entity(self, name: str) -> Entity:
        return self._by_name[name]


_REQUIRED = ("transaction_id", "card_token", "merchant_id", "country")


def _check_fields(txn: Transaction) -> None:
    """Raise for a transaction the state columns cannot read (a validated one always can)."""
    float(txn["amount"])
    for name in _REQUIRED:
        if not isinstance(txn[name], str):
            raise TypeError(f"{name} is not a string")


def _own_columns(
    ready: Sequence[tuple[int, Transaction, float]], txns: TransactionColumns | None = None
) -> tuple[tuple[str, ...], np.ndarray]:
    return transaction_feature_matrix([txn for _, txn, _ in ready], [at for _, _, at in ready], txns)


def _entity_keys(
    entities: Sequence[Entity], batch: Sequence[tuple[Transaction, float]], on_error: OnError | None
) -> tuple[list[int], list[list[str | None]], TransactionColumns | None]:
    """The items whose keys and fields the states can read, each entity's keys of them (a list per
    entity) and their columns (None when no item is good). A batch is read a column at a time; if
    any item fails, the items are read one at a time and each failure told to ``on_error``."""
    txn_list = [txn for txn, _ in batch]
    try:
        keys = [entity.keys(txn_list) for entity in entities]
        txns = TransactionColumns.of(txn_list, [at for _, at in batch])  # every amount a float
        for name in _REQUIRED:  # exactly strings; anything else is checked item by item below
            if not set(map(type, map(itemgetter(name), txn_list))) <= {str}:
                raise TypeError(name)
        return list(range(len(batch))), keys, (txns if batch else None)
    except Exception:
        pass
    item_keys: list[tuple[str | None, ...]] = []
    good: list[int] = []
    for index, (txn, _) in enumerate(batch):
        try:
            keys_of_item = tuple(entity.key(txn) for entity in entities)
            _check_fields(txn)
        except Exception as exc:
            _report(on_error, index, exc)
            continue
        item_keys.append(keys_of_item)
        good.append(index)
    if not good:
        return good, [[] for _ in entities], None
    txns = TransactionColumns.of([batch[i][0] for i in good], [batch[i][1] for i in good])
    return good, [[keys_of_item[p] for keys_of_item in item_keys] for p in range(len(entities))], txns


def _report(on_error: OnError | None, index: int, exc: Exception) -> None:
    if on_error is None:
        raise exc
    on_error(index, exc)


class InMemoryStates:
    """Entity and card state rows in matrices, for offline replays (the worker keeps them in tables)."""

    def __init__(self) -> None:
        self.entities: dict[str, MatrixRows] = {}
        self.cards = MatrixRows(CARD.empty())

    def store_of(self, entity: Entity) -> MatrixRows:
        store = self.entities.get(entity.name)
        if store is None:
            store = self.entities[entity.name] = MatrixRows(entity.columns.empty())
        return store
