"""The detector: the one place that knows the order of the scoring steps.

    transaction features -> every entity's features (ENTITY_STAGES, in order) -> the card's features
        -> the decision (lists, rules, model, anomaly) ; each state then remembers the transaction
    a label -> the model learns it -> the labelled entities (terminal, merchant) count it

The worker runs the entity step in its entity stages (each entity's state lives on its own
partition, so a stage passes its share of ``entities``) and the rest in its score stage; ``fraud
backtest``, ``fraud bench`` and the benchmarks run all of it in one process (``process``). The API
is batch-first, a list in and a list out, so a batch can be computed as columns without changing
the callers. States are reached through a lookup the caller provides (its tables, or dicts), so
the detector holds no storage and no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.detection.engine import Decision, DetectionEngine
from pipeline.detection.features import ENTITY_STAGES, Entity, Features, observe, transaction_features
from pipeline.detection.states import CardState, EntityState, LabelledActivityState

Transaction = Mapping[str, Any]
StateOf = Callable[[Entity, str], EntityState]
"""The state of an entity's key, created empty when the key is new; changes to it are kept."""
CardOf = Callable[[str], CardState]
"""The state of a card token, created empty when the card is new; changes to it are kept."""
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
        self._labelled = tuple(e for e in entities if issubclass(e.state_type, LabelledActivityState))
        self._by_name = {entity.name: entity for entity in entities}

    # --- scoring --------------------------------------------------------------------------------
    def observe_entities(
        self,
        entities: Sequence[Entity],
        batch: Sequence[tuple[Transaction, float]],
        state_of: StateOf,
        on_error: OnError | None = None,
    ) -> list[Features | None]:
        """The features of each (transaction, event time) from ``entities``' states, each state then
        observing the transaction; None for an item that failed (told to ``on_error``)."""
        out: list[Features | None] = []
        for index, (txn, at) in enumerate(batch):
            try:
                features: Features = {}
                for entity in entities:
                    key = entity.key(txn)
                    if key:
                        features.update(observe(state_of(entity, key), txn, at))
                    else:  # e.g. no device for a card-present payment: neutral features
                        features.update(entity.state_type().features(txn, at))
                out.append(features)
            except Exception as exc:
                out.append(None)
                _report(on_error, index, exc)
        return out

    def score(
        self,
        batch: Sequence[tuple[Transaction, float, Features]],
        card_of: CardOf,
        on_error: OnError | None = None,
    ) -> list[Scored | None]:
        """Decide each (transaction, event time, its entity features), in order: the transaction's
        own features, the entities', the card's (the card then remembers the transaction), then the
        decisions of the whole batch at once (``DetectionEngine.decide_many``). None for an item
        that failed (told to ``on_error``)."""
        out: list[Scored | None] = [None] * len(batch)
        ready: list[tuple[int, Transaction, float, Features]] = []
        for index, (txn, at, entity_features) in enumerate(batch):
            try:
                features = transaction_features(txn, at)
                features.update(entity_features)
                features.update(observe(card_of(txn["card_token"]), txn, at))
                ready.append((index, txn, at, features))
            except Exception as exc:
                _report(on_error, index, exc)
        decisions = self.engine.decide_many([(txn, features) for _, txn, _, features in ready])
        for (index, txn, at, features), decision in zip(ready, decisions, strict=True):
            if isinstance(decision, Exception):
                _report(on_error, index, decision)
            else:
                out[index] = Scored(txn, at, features, decision)
        return out

    def process(
        self, batch: Sequence[tuple[Transaction, float]], state_of: StateOf, card_of: CardOf
    ) -> list[Scored]:
        """Every step for a batch in one process (backtest, bench): the worker's stages in a row."""
        entity_features = self.observe_entities(self.entities, batch, state_of)
        items = [
            (txn, at, features or {}) for (txn, at), features in zip(batch, entity_features, strict=True)
        ]
        return [scored for scored in self.score(items, card_of) if scored is not None]

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

    def count_entity_labels(self, labels: Sequence[EntityLabel], state_of: StateOf) -> None:
        """The labelled entities count ``labels`` in their confirmed-fraud rates."""
        for label in labels:
            state = state_of(self._by_name[label.entity], label.key)
            assert isinstance(state, LabelledActivityState)
            state.record_label(label.is_fraud, label.at)

    def entity(self, name: str) -> Entity:
        return self._by_name[name]


def _report(on_error: OnError | None, index: int, exc: Exception) -> None:
    if on_error is None:
        raise exc
    on_error(index, exc)


class InMemoryStates:
    """Entity and card states in dicts, for offline replays (the worker keeps them in tables)."""

    def __init__(self) -> None:
        self.entities: dict[str, dict[str, EntityState]] = {}
        self.cards: dict[str, CardState] = {}

    def state_of(self, entity: Entity, key: str) -> EntityState:
        known = self.entities.setdefault(entity.name, {})
        state = known.get(key)
        if state is None:
            state = known[key] = entity.state_type()
        return state

    def card_of(self, token: str) -> CardState:
        card = self.cards.get(token)
        if card is None:
            card = self.cards[token] = CardState()
        return card
