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
from typing import Any

from pipeline.detection.columns import TransactionColumns
from pipeline.detection.engine import Decision, DetectionEngine
from pipeline.detection.explanations import explain_alerts
from pipeline.detection.features import ENTITY_STAGES, Entity, Features, transaction_features
from pipeline.detection.in_order import observe_in_order, record_labels_in_order
from pipeline.detection.rows import MatrixRows, RowStore
from pipeline.detection.states import (
    CARD,
    Columns,
    LabelledActivityColumns,
)

Transaction = Mapping[str, Any]
StoreOf = Callable[[Entity], RowStore]
"""The state rows of an entity (pipeline/detection/rows.py)."""
OnError = Callable[[int, Exception], None]
"""Told the index of an item whose step failed, and why; the batch goes on without it."""


@dataclass(frozen=True, slots=True)
class Scored:
    """A scored transaction: the features it was decided on and the decision."""

    txn: Transaction
    at: float
    features: Features
    decision: Decision


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
        keys: list[tuple[str | None, ...]] = []
        good: list[int] = []
        for index, (txn, _) in enumerate(batch):
            try:
                item_keys = tuple(entity.key(txn) for entity in entities)
                _check_fields(txn)
            except Exception as exc:
                _report(on_error, index, exc)
                continue
            keys.append(item_keys)
            good.append(index)
        if not good:
            return out
        txns = TransactionColumns.of([batch[i][0] for i in good], [batch[i][1] for i in good])
        columns: Columns = {}
        for position, entity in enumerate(entities):
            entity_keys = [item_keys[position] for item_keys in keys]
            columns.update(observe_in_order(entity.columns, entity_keys, txns, store_of(entity)))
        for index, features in zip(good, _feature_dicts(columns, len(good)), strict=True):
            out[index] = features
        return out

    def score(
        self,
        batch: Sequence[tuple[Transaction, float, Features]],
        cards: RowStore,
        on_error: OnError | None = None,
    ) -> list[Scored | None]:
        """Decide each (transaction, event time, its entity features), in order: the transaction's
        own features, the entities', the card's (the card then counts the transaction), then the
        decisions of the whole batch at once (``DetectionEngine.decide_many``). None for an item
        that failed (told to ``on_error``)."""
        out: list[Scored | None] = [None] * len(batch)
        ready: list[tuple[int, Transaction, float, Features]] = []
        for index, (txn, at, entity_features) in enumerate(batch):
            try:
                _check_fields(txn)
                features = transaction_features(txn, at)
                features.update(entity_features)
                ready.append((index, txn, at, features))
            except Exception as exc:
                _report(on_error, index, exc)
        if not ready:
            return out
        txns = TransactionColumns.of([txn for _, txn, _, _ in ready], [at for _, _, at, _ in ready])
        tokens = [txn["card_token"] for _, txn, _, _ in ready]
        card = _feature_dicts(observe_in_order(CARD, tokens, txns, cards), len(ready))
        for (_, _, _, features), card_features in zip(ready, card, strict=True):
            features.update(card_features)
        decisions = self.engine.decide_many([(txn, features) for _, txn, _, features in ready])
        # The alerts' features carry the explanation of their scores (the allowed rows' none).
        explained = explain_alerts(self.engine, [features for *_, features in ready], decisions)
        for (index, txn, at, _), features, decision in zip(ready, explained, decisions, strict=True):
            if isinstance(decision, Exception):
                _report(on_error, index, decision)
            else:
                out[index] = Scored(txn, at, features, decision)
        return out

    def process(self, batch: Sequence[tuple[Transaction, float]], states: InMemoryStates) -> list[Scored]:
        """Every step for a batch in one process (backtest, bench): the worker's stages in a row."""
        entity_features = self.observe_entities(self.entities, batch, states.store_of)
        items = [
            (txn, at, features or {}) for (txn, at), features in zip(batch, entity_features, strict=True)
        ]
        return [scored for scored in self.score(items, states.cards) if scored is not None]

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


def _feature_dicts(columns: Columns, count: int) -> list[Features]:
    """One dict of features per item from a batch's feature columns."""
    names = list(columns)
    if not names:
        return [{} for _ in range(count)]
    values = zip(*(columns[name].tolist() for name in names), strict=True)
    return [dict(zip(names, row, strict=True)) for row in values]


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
