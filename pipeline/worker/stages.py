"""The worker's stages, each a few lines around the detector (pipeline/detection/detector.py):

    transactions --Validate--> <app>-by-merchant --EntityStage(merchant)--> <app>-by-device
        --EntityStage(device)--> <app>-by-customer --EntityStage(customer)--> <app>-by-card
        --Score--> decisions (every transaction) + alerts (review/block)
    labels --Learn--> the model; the labelled entities' counts --> <app>-by-merchant

A stage reads the state rows of a batch's entities once per partition and writes each back once;
what it passes on goes into the batch's outbox as envelopes ``{"txn", "received", "features"}``
(or ``{"kind": "label", ...}`` for an entity's label), sent as frames after the batch.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import faust
import numpy as np
import orjson

from pipeline.config import Settings
from pipeline.contracts.messages import alert_message, decision_message, utc_now_iso
from pipeline.contracts.validation import EventTimeWindow, Invalid, parse_message
from pipeline.contracts.wire_format import is_framed
from pipeline.detection.detector import Detector, EntityLabel, Example, Scored
from pipeline.detection.features import event_seconds
from pipeline.detection.states import CARD
from pipeline.detection.vocabulary import parse_timestamp
from pipeline.worker.batch_rows import BatchStates, TableRows
from pipeline.worker.batching import Outbox, envelopes, partition_of
from pipeline.worker.dead_letters import DeadLetters
from pipeline.worker.faults import crash_point
from pipeline.worker.model_health import ModelHealthReporter
from pipeline.worker.producer import NativeProducer
from pipeline.worker.table_expiry import TableExpiry
from pipeline.worker.tables import WorkerTables
from pipeline.worker.telemetry import PipelineMetrics, observe_many
from pipeline.worker.topics import STAGES, owner_key, routing_key
from pipeline.worker.wire import frame_outputs, wire_reader


@dataclass
class StageContext:
    """What every stage shares: the detector, the tables, the topics and the worker's edges."""

    settings: Settings
    detector: Detector
    tables: WorkerTables
    expiry: TableExpiry
    producer: NativeProducer
    dead_letters: DeadLetters
    metrics: PipelineMetrics
    stage_topics: list[faust.TopicT]
    """The input topic of each of STAGES, in order."""
    by_card: faust.TopicT

    def partition(self, key: str) -> int:
        return partition_of(key, self.settings.topic_partitions)

    @cached_property
    def health(self) -> ModelHealthReporter:
        """The model's health reports (pipeline/worker/model_health.py), shared by Score and Learn."""
        return ModelHealthReporter(self.settings, self.detector, self.producer, self.metrics)


class Validate:
    """First stage: check every transaction; send the valid ones on to the entity stages."""

    def __init__(self, context: StageContext) -> None:
        self.context = context
        self.window = EventTimeWindow(
            context.settings.max_event_time_skew_hours * 3600, context.settings.max_event_age_days * 86400
        )
        self.wire = wire_reader(context.settings)
        frame_outputs(context.producer, context.settings)  # once per worker, before anything is sent

    async def __call__(self, event: faust.EventT, outbox: Outbox) -> None:
        received = time.time()
        raw = event.value
        if is_framed(raw):  # Confluent wire format: the payload after the schema id
            raw = await self.wire.payload(raw, event.message.topic)
        refused = self.pass_on(raw, received, outbox)
        if refused is not None:
            self.context.dead_letters.invalid(refused, event, "validate")

    def pass_on(self, raw: bytes | Invalid, received: float, outbox: Outbox) -> Invalid | None:
        """Check one input message (its payload, for the wire format) received at ``received`` and
        put the valid transaction in ``outbox`` for the first entity stage; else why it is refused
        (the caller dead-letters it). Also used by the native input reader (input_reader.py)."""
        c = self.context
        c.metrics.transactions_consumed.inc()
        txn = raw if isinstance(raw, Invalid) else parse_message(
            raw, "transaction", c.settings.max_message_bytes, event_time_window=self.window
        )  # fmt: skip
        if isinstance(txn, Invalid):
            return txn
        envelope = orjson.dumps({"txn": txn, "received": received, "features": {}})
        outbox.add(c.stage_topics[0], c.partition(routing_key(txn, STAGES[0].routing_field)), envelope)
        return None


class EntityStage:
    """Stage ``index`` of STAGES: its entities' features from their states, then on to the next
    stage (re-keyed by its routing field) or, after the last one, to scoring (by card). Labels
    known to its entities (from Learn) are counted in order with the transactions."""

    def __init__(self, context: StageContext, index: int) -> None:
        self.context = context
        self.stage = STAGES[index]
        last = index == len(STAGES) - 1
        self.next_topic = context.by_card if last else context.stage_topics[index + 1]
        self.next_field = "card_token" if last else STAGES[index + 1].routing_field
        self.component = f"{self.stage.name}-features"
        self.tables = {e.name: context.tables.entities[e.name] for e in self.stage.entities}

    async def __call__(self, partition: int, frames: list[faust.EventT], outbox: Outbox) -> None:
        c = self.context
        states = BatchStates(self.tables, self.stage.entities)
        waiting: list[tuple[faust.EventT, dict[str, Any], float]] = []
        for frame, envelope in envelopes(frames, self.component, c.dead_letters.processing_error):
            try:
                if envelope.get("kind") == "label":  # labels count from when they arrived, in order
                    self._observe(waiting, states, outbox)
                    label = _entity_label(envelope, self.stage.name)
                    c.detector.count_entity_labels([label], states.store_of)
                    states.touch(label.entity, label.key, label.at)
                    continue
                waiting.append((frame, envelope, event_seconds(envelope["txn"])))
            except Exception as exc:
                c.dead_letters.envelope(exc, envelope, frame, self.component)
        self._observe(waiting, states, outbox)
        states.write_back(partition, c.expiry)

    def _observe(
        self, waiting: list[tuple[faust.EventT, dict[str, Any], float]], states: BatchStates, outbox: Outbox
    ) -> None:
        c = self.context
        batch = [(envelope["txn"], at) for _, envelope, at in waiting]

        def failed(index: int, exc: Exception) -> None:
            c.dead_letters.envelope(exc, waiting[index][1], waiting[index][0], self.component)

        observed = c.detector.observe_entities(self.stage.entities, batch, states.store_of, failed)
        for (frame, envelope, at), features in zip(waiting, observed, strict=True):
            if features is None:
                continue
            try:
                txn = envelope["txn"]
                for entity in self.stage.entities:
                    if key := entity.key(txn):
                        states.touch(entity.name, key, at)
                envelope["features"].update(features)
                target = routing_key(txn, self.next_field)
                outbox.add(self.next_topic, c.partition(target), orjson.dumps(envelope))
            except Exception as exc:
                c.dead_letters.envelope(exc, envelope, frame, self.component)
        waiting.clear()


def _entity_label(envelope: dict[str, Any], stage_name: str) -> EntityLabel:
    # an envelope without "entity" is from before terminals moved to the merchant stage
    return EntityLabel(
        envelope.get("entity", stage_name), envelope["key"], envelope["is_fraud"], envelope["at"]
    )


_UNREAD = object()
"""A pending entry not read yet (``Score._already_decided``)."""


class Score:
    """Last stage: card features, rules and model; the decision for every transaction and, if due,
    the alert. A transaction whose decision is stored (kept with its features until its label)
    re-emits it unchanged; any other is decided, even when its card has seen it (downstream
    deduplicates by id). The stored decision, not the card's history, is the record of truth."""

    def __init__(self, context: StageContext) -> None:
        self.context = context

    async def __call__(self, partition: int, frames: list[faust.EventT], outbox: Outbox) -> None:
        c = self.context
        cards = TableRows(c.tables.cards, CARD)
        fresh, repeated = self._to_decide(frames, cards, partition)
        started = time.perf_counter()
        batch = [(envelope["txn"], at, envelope["features"]) for _, envelope, at in fresh]
        scored = c.detector.score(
            batch, cards, lambda i, exc: c.dead_letters.envelope(exc, fresh[i][1], fresh[i][0], "score")
        )
        per_item = (time.perf_counter() - started) / max(len(batch), 1)
        decided = [
            (frame, envelope, item)
            for (frame, envelope, _), item in zip(fresh, scored, strict=True)
            if item is not None
        ]
        touched: dict[str, float] = {}
        for _, _, item in decided:
            token = item.txn["card_token"]
            touched[token] = max(touched.get(token, 0.0), item.at)
        for token, at in touched.items():
            c.tables.cards.write(token, cards.read[token], partition)
            c.expiry.touch(c.tables.cards, partition, token, at)
        crash_point("after_card_state")  # the cards have seen the batch; none of its decisions is out
        emitted = _Emitted(time.time(), utc_now_iso())  # the batch's decisions are made at once
        for frame, envelope, item in decided:
            try:
                self._emit(item, envelope["received"], partition, emitted)
            except Exception as exc:
                c.dead_letters.envelope(exc, envelope, frame, "score")
        emitted.record(c.metrics, per_item)
        for transaction_id in repeated:
            self._already_decided(transaction_id, None)
        crash_point("after_decisions")  # the batch's decisions produced, its offsets not committed
        c.metrics.pending_labels.set(c.expiry.pending_entries())
        c.health.maybe_report()

    def _to_decide(
        self, frames: list[faust.EventT], cards: TableRows, partition: int
    ) -> tuple[list[tuple[faust.EventT, dict[str, Any], float]], list[str]]:
        """The envelopes of ``frames`` to decide, and the ids twice in them (decided once, their
        decision sent twice); those with a stored decision re-emit it."""
        c = self.context
        fresh: list[tuple[faust.EventT, dict[str, Any], float]] = []
        fresh_ids: set[str] = set()
        repeated: list[str] = []
        read: list[tuple[faust.EventT, dict[str, Any], dict[str, Any], str]] = []
        for frame, envelope in envelopes(frames, "score", c.dead_letters.processing_error):
            try:
                txn = envelope["txn"]
                read.append((frame, envelope, txn, txn["transaction_id"]))
            except Exception as exc:
                c.dead_letters.envelope(exc, envelope, frame, "score")
        # The stored decisions of the whole batch in one lookup (nothing here stores one).
        stored = c.tables.pending.read_many([transaction_id for *_, transaction_id in read], partition)
        for (frame, envelope, txn, transaction_id), entry in zip(read, stored, strict=True):
            try:
                if transaction_id in fresh_ids:
                    repeated.append(transaction_id)
                elif not self._already_decided(transaction_id, cards.row(txn["card_token"]), entry):
                    fresh.append((frame, envelope, event_seconds(txn)))
                    fresh_ids.add(transaction_id)
            except Exception as exc:
                c.dead_letters.envelope(exc, envelope, frame, "score")
        return fresh, repeated

    def _already_decided(self, transaction_id: str, card: np.ndarray | None, stored: Any = _UNREAD) -> bool:
        """Whether the transaction's decision is stored (then it is sent again, unchanged): its
        pending entry ``stored``, read here when not given. A card that has seen the id without a
        stored decision does not make it decided: a crash may have left the card's state in its
        changelog and neither the decision nor the stored copy, and the label may have been
        learnt (and the copy dropped) already. It is decided again, and the card does not count it
        twice (``observe``)."""
        c = self.context
        if stored is _UNREAD:
            stored = c.tables.pending.read(transaction_id)
        if stored is None:
            if card is not None and CARD.has_seen_id(card, transaction_id):
                c.metrics.duplicates.inc()
            return False
        c.metrics.duplicates.inc()
        decision = stored["decision"]
        c.producer.send(c.settings.topic_decisions, orjson.dumps(decision), decision["card_token"].encode())
        return True

    def _emit(self, item: Scored, received: float, partition: int, emitted: _Emitted) -> None:
        c = self.context
        txn, decided = item.txn, item.decision
        key = txn["card_token"].encode()
        now = emitted.now
        decision = decision_message(txn, decided, emitted.now_iso, (now - received) * 1000)
        c.producer.send(c.settings.topic_decisions, orjson.dumps(decision), key)
        if decided.action != "allow":
            c.producer.send(
                c.settings.topic_alerts, orjson.dumps(alert_message(decision, txn, item.features)), key
            )
            c.metrics.alerts.labels(decided.fraud_type).inc()
        transaction_id = txn["transaction_id"]
        entry = {"features": item.features, "decision": decision, "at": item.at, "partition": partition}
        c.tables.pending.write(transaction_id, entry, partition)
        c.expiry.touch(c.tables.pending, partition, transaction_id, item.at)
        emitted.actions.append(decided.action)
        emitted.processing.append(now - received)
        emitted.end_to_end.append(max(now - item.at, 0.0))


@dataclass
class _Emitted:
    """What a batch's decisions add to the metrics, recorded once per batch (``observe_many``): a
    Prometheus call costs about 1 µs (a labelled counter's 2.4), four of them per transaction."""

    now: float
    now_iso: str
    actions: list[str] = field(default_factory=list)
    processing: list[float] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)

    def record(self, metrics: PipelineMetrics, scoring_seconds_each: float) -> None:
        for action, count in Counter(self.actions).items():
            metrics.decisions.labels(action).inc(count)
        observe_many(metrics.scoring_latency, [scoring_seconds_each] * len(self.actions))
        observe_many(metrics.processing_latency, self.processing)
        observe_many(metrics.end_to_end_latency, self.end_to_end)


class Learn:
    """Join a partition's batch of labels with the features kept at scoring time; the model learns
    them in one call (a batch of predictions per candidate, then each label in order) and the
    labelled entities (terminal, merchant) are told, on their stage's partition."""

    def __init__(self, context: StageContext) -> None:
        self.context = context
        self.stage_of = {e.name: i for i, stage in enumerate(STAGES) for e in stage.entities}
        self.wire = wire_reader(context.settings)

    async def __call__(self, partition: int, events: list[faust.EventT], outbox: Outbox) -> None:
        c = self.context
        examples = await self._examples(events)
        if not examples:
            return
        model = c.detector.engine.model
        drifts = model.drifts
        learnt = c.detector.learn(examples)
        c.metrics.model_drifts.inc(model.drifts - drifts)
        c.metrics.labels.labels("learnt").inc(learnt.learnt)
        c.metrics.labels.labels("skipped").inc(learnt.skipped)
        c.metrics.model_labels_learnt.set(model.labels_learnt)
        for known in learnt.entity_labels:
            entity = c.detector.entity(known.entity)
            envelope = {"kind": "label", "entity": known.entity, "key": known.key, "is_fraud": known.is_fraud,
                        "at": known.at}  # fmt: skip
            target = c.partition(owner_key(entity, known.key))
            outbox.add(c.stage_topics[self.stage_of[known.entity]], target, orjson.dumps(envelope))
        for example in examples:
            del c.tables.pending[example.transaction_id]
            c.expiry.forget(c.tables.pending, partition, example.transaction_id)
        c.health.maybe_report()

    async def _examples(self, events: list[faust.EventT]) -> list[Example]:
        """The labels of ``events`` joined with their pending entries, in order; an invalid label is
        dead-lettered, one without a pending entry (or a second in the batch) is counted as unknown."""
        c = self.context
        examples: list[Example] = []
        taken: set[str] = set()
        for event in events:
            try:
                raw = event.value
                if is_framed(raw):
                    raw = await self.wire.payload(raw, event.message.topic)
                label = raw if isinstance(raw, Invalid) else parse_message(
                    raw, "label", c.settings.max_message_bytes
                )  # fmt: skip
                if isinstance(label, Invalid):
                    c.dead_letters.invalid(label, event, "learn")
                    continue
                transaction_id = label["transaction_id"]
                entry = None if transaction_id in taken else c.tables.pending.read(transaction_id)
                if entry is None:
                    c.metrics.labels.labels("unknown").inc()
                    continue
                examples.append(
                    Example(transaction_id, entry["features"], label["is_fraud"], label["fraud_type"],
                            c.detector.entity_keys(entry["decision"]), parse_timestamp(label["labelled_at"]))
                )  # fmt: skip
                taken.add(transaction_id)
                c.health.learnt(label["is_fraud"], entry["at"], examples[-1].known_at)
            except Exception as exc:
                c.dead_letters.processing_error(exc, event, "learn")
        return examples
