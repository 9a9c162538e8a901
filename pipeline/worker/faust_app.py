"""The Faust application: stages joined by repartition topics, plus the label learner.

    transactions (key: card) --validate--> <app>-by-merchant (key: merchant)
        --terminal and merchant features--> <app>-by-device (key: device)
        --device features--> <app>-by-customer (key: customer)
        --customer features--> <app>-by-card (key: card)
        --card features, rules, model--> decisions (every transaction) + alerts (review/block)
    labels (key: card) --join with the features kept at scoring time--> model.learn
        --> <app>-by-merchant (terminals' and merchants' confirmed-fraud rates, from labels known so far)

The entities are ENTITY_STAGES in pipeline/detection/features.py; the stages that keep them are
STAGES in pipeline/worker/topics.py (a terminal belongs to one merchant, so both live in one stage).

Each stage takes its events in batches and passes transactions on in frames: one Kafka message
holding the envelopes of a batch that belong to one partition of the next topic, sent to that
partition (the partition Kafka's murmur2 partitioner gives the entity's key, so the state of an
entity always lives on one partition). A frame's entities are read from their table once and
written back once. This keeps the number of Kafka messages per transaction low: the cost of a
Python Kafka client is per message, not per byte (docs/performance.md).

Every topic has the same partition count, so Faust co-partitions them: a card's scoring state,
its pending features and its labels live on the same partition of the same worker. Invalid
input goes to the dead-letter topic with the reason; the stream goes on. Processing is
at-least-once: before Faust commits offsets, everything produced (through librdkafka,
pipeline/worker/producer.py) has been acknowledged, and duplicates are
recognised by transaction id (the stored decision is re-emitted unchanged).
"""

from __future__ import annotations

import functools
import gc
import logging
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import faust
import orjson
from aiokafka.partitioner import murmur2
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.streams import _current_event
from faust.types import TP, StoreT
from faust.types.agents import AgentFun
from prometheus_client import CollectorRegistry

from pipeline.config import Settings
from pipeline.contracts.messages import alert_message, dead_letter_message, decision_message, utc_now_iso
from pipeline.contracts.validation import EventTimeWindow, Invalid, mask_card_numbers, parse_message
from pipeline.detection.engine import DetectionEngine
from pipeline.detection.expiry import ExpiryIndex
from pipeline.detection.features import (
    ENTITY_STAGES,
    FEATURE_NAMES,
    CardState,
    Entity,
    LabelledActivityState,
    event_seconds,
    last_active,
    observe,
    parse_timestamp,
    transaction_features,
)
from pipeline.detection.model import OnlineFraudModel
from pipeline.detection.rules import RuleError, load_rules
from pipeline.detection.snapshots import SnapshotStore
from pipeline.kafka.list_topic import install_lists
from pipeline.worker.producer import NativeProducer
from pipeline.worker.record_cache import CachedRocksDBStore, encode_value
from pipeline.worker.telemetry import PipelineMetrics
from pipeline.worker.topics import STAGES, internal_topic_names, table_names

log = logging.getLogger(__name__)


class FraudPipeline:
    """Builds the Faust app for ``settings`` and holds the detection engine it drives."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.metrics = PipelineMetrics(registry or CollectorRegistry())
        self.worker_dir = settings.data_dir / settings.app_id / f"worker-{settings.worker_web_port}"
        self.snapshots = SnapshotStore(
            settings.data_dir / settings.app_id / "models",
            settings.model_snapshot_key.get_secret_value().encode(),
        )
        model = self.snapshots.load_latest() or OnlineFraudModel()
        self.engine = DetectionEngine(
            rules=load_rules(settings.rules_file, FEATURE_NAMES),
            model=model,
            review_threshold=settings.review_threshold,
            block_threshold=settings.block_threshold,
            model_min_labels=settings.model_min_labels,
            alert_budget=settings.alert_budget,
            anomaly_budget=settings.anomaly_budget,
        )
        self._snapshot_labels = model.labels_learnt
        self._rules_mtime = _mtime(settings.rules_file)
        self._event_time_window = EventTimeWindow(
            settings.max_event_time_skew_hours * 3600, settings.max_event_age_days * 86400
        )
        self.metrics.model_labels_learnt.set(model.labels_learnt)
        # Everything the worker produces goes through librdkafka (pipeline/worker/producer.py).
        # Without Nagle's algorithm: a frame's few hundred bytes would otherwise wait for the
        # broker's delayed ACK (tens of milliseconds per stage at moderate load).
        self.native = NativeProducer(
            settings.producer_config(
                **{"linger.ms": settings.worker_producer_linger_ms, "socket.nagle.disable": True}
            )
        )
        self.metrics.watch_producer(self.native)
        self.app = self._build_app()

    # --- wiring ---------------------------------------------------------------------------------
    def _build_app(self) -> faust.App:
        s = self.settings
        app = faust.App(
            s.app_id,
            broker=";".join(f"kafka://{server}" for server in s.bootstrap_servers.split(",")),
            broker_credentials=faust_credentials(s),
            store=f"{s.table_store}://",
            autodiscover=False,
            # One folder per worker (its web port is unique on a host): RocksDB locks its files.
            datadir=str(self.worker_dir),
            topic_partitions=s.topic_partitions,
            topic_replication_factor=s.topic_replication_factor,
            producer_acks=-1,
            producer_linger=s.worker_producer_linger_ms / 1000,
            # A record batch holds many frames (aiokafka's default of 16 KB holds less than one, and
            # a send then waits for the previous batch of its partition to be acknowledged); it
            # stays below the topics' max.message.bytes (1 MiB), which applies to a whole batch.
            producer_max_batch_size=900_000,
            processing_guarantee="at_least_once",
            # Commits come from Faust's timer, every second, and not also from its fetcher after
            # every thousand events: a commit first waits until the broker has acknowledged all
            # that was sent (the tables' changes are sent at that flush), and the fetcher, which
            # feeds every stage, would stand still meanwhile.
            broker_commit_every=1_000_000,
            broker_commit_interval=1.0,
            web_enabled=True,
            web_port=s.worker_web_port,
            web_bind=s.metrics_bind,
            web_host=s.metrics_bind,
            table_standby_replicas=s.worker_standby_replicas,
            broker_session_timeout=s.worker_session_timeout_seconds,
            broker_heartbeat_interval=min(3.0, s.worker_session_timeout_seconds / 3),
            consumer_auto_offset_reset="earliest",
        )
        # Table writes wait in the producer's buffer; above max_messages Faust pauses every stream
        # and drains it one message per loop turn. Its default of 100 is less than one frame's
        # writes, so the worker spent half its time idle there; a few batches' worth is bounded.
        app.producer.buffer.max_messages = 4 * s.worker_batch_size
        # Faust flushes its producer before it commits offsets; the output sent through librdkafka
        # must be acknowledged by then too (at-least-once).
        faust_flush = app.producer.flush

        async def flush_all() -> None:
            for table in self.tables:
                table.send_changes()
            await faust_flush()
            await self.native.flush()

        app.producer.flush = flush_all  # type: ignore[method-assign]
        setup_prometheus_sensors(app, pattern="/metrics", registry=self.metrics.registry, name_prefix="faust")

        def topic(name: str) -> faust.TopicT:
            return app.topic(
                name, key_serializer="raw", value_serializer="raw", partitions=s.topic_partitions
            )

        *stage_names, by_card_name = internal_topic_names(s)
        self.transactions = topic(s.topic_transactions)
        self.stage_topics = [topic(name) for name in stage_names]
        self.by_card = topic(by_card_name)
        self.labels = topic(s.topic_labels)

        self.tables: list[NativeChangelogTable] = []

        def table(name: str, help_text: str, cache_entries: int) -> faust.Table:
            schema = faust.Schema(key_serializer="json", value_serializer="json")
            created = NativeChangelogTable(
                app,
                name=name,
                default=None,
                beacon=app.tables.beacon,
                schema=schema,
                partitions=s.topic_partitions,
                help=help_text,
            )
            created.native = self.native
            created.cache_entries = cache_entries
            self.tables.append(created)
            self.native.track_offsets(created.changelog_topic.get_topic_name(), created.persist_offset)
            return app.tables.add(created)

        *entity_tables, card_table, pending_table = table_names()
        self.entity_tables = {
            entity.name: table(name, f"State per {entity.name}", s.worker_table_cache_entries)
            for name, entity in zip(entity_tables, ENTITY_STAGES, strict=True)
        }
        self._entity_of_table = {self.entity_tables[e.name].name: e for e in ENTITY_STAGES}
        self.card_state = table(card_table, "History per card", s.worker_table_cache_entries)
        # A pending entry is read once, by its label, long after: caching it would only cost memory.
        self.pending = table(pending_table, "Features kept at scoring time, by transaction id", 0)
        entity_ttl = s.entity_ttl_days * 86400
        self._expiry = {
            t.name: ExpiryIndex(entity_ttl) for t in (*self.entity_tables.values(), self.card_state)
        }
        self._expiry[self.pending.name] = ExpiryIndex(s.pending_label_ttl_hours * 3600)

        # A batch of frames takes fewer events: a frame holds up to FRAUD_WORKER_FRAME_ITEMS
        # transactions, and FRAUD_WORKER_BATCH_SIZE frames (up to a quarter of a million
        # transactions on a backlog) would hold the event loop, and with it every other stage and
        # the web server, for tens of seconds. Up to four input batches' worth keeps them large
        # (one batch's worth measured half the throughput).
        frames_per_batch = max(1, 4 * s.worker_batch_size // s.worker_frame_items)

        def stage(topic: faust.TopicT, component: str, handler: BatchHandler, size: int) -> None:
            app.agent(topic, name=component)(self._batch_agent(handler, component, size))

        stage(self.transactions, "validate", self._each_event(self.validate, "validate"), s.worker_batch_size)
        for index, entity_stage in enumerate(STAGES):
            component = f"{entity_stage.name}-features"
            features = self._by_partition(self._entity_stage(index), component)
            stage(self.stage_topics[index], component, features, frames_per_batch)
        stage(self.by_card, "score", self._by_partition(self.score, "score"), frames_per_batch)
        stage(self.labels, "learn", self._each_event(self.learn, "learn"), s.worker_batch_size)
        # Block/allow lists: every worker reads the whole list-updates topic (pipeline/kafka/list_topic.py).
        install_lists(self, app, topic(s.topic_lists))
        app.timer(s.model_snapshot_interval_seconds)(self.save_model_snapshot)
        app.timer(s.rules_reload_seconds)(self.reload_rules_if_changed)

        @app.page("/healthz")
        async def healthz(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
            return view.json({"status": "ok"})

        @app.page("/readyz")
        async def readyz(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
            ready = self.is_ready()
            return view.json(
                {"ready": ready, "model": self.engine.model.version}, status=200 if ready else 503
            )

        app.on_before_shutdown.connect(self._on_shutdown)
        return app

    # --- stages ---------------------------------------------------------------------------------
    def _agent(self, handler: Callable[[faust.EventT], Awaitable[None]], component: str) -> AgentFun:
        """An agent that runs ``handler`` on each event; an unexpected error dead-letters that event
        (reason processing_error) and the stream goes on, so nothing is dropped silently."""

        async def agent(stream: faust.StreamT) -> None:
            async for event in stream.events():
                try:
                    await handler(event)
                except Exception as exc:
                    self._processing_error(exc, event, component)

        agent.__name__ = agent.__qualname__ = component.replace("-", "_")
        return agent

    def _batch_agent(self, handler: BatchHandler, component: str, size: int) -> AgentFun:
        """An agent that takes events in batches (up to ``size``, or what arrived within
        FRAUD_WORKER_BATCH_SECONDS), runs ``handler`` on the batch and then sends what the
        batch produced for the next stage as frames (one per partition, up to
        FRAUD_WORKER_FRAME_ITEMS envelopes each). Events are acknowledged only after the batch,
        frames included, was handed to the producer (at-least-once).

        Faust's ``take_events`` does the batching: it handles rebalances (a batch of our own that
        decided to wait for more events could be left holding events whose buffer Faust cleared)."""
        within = self.settings.worker_batch_seconds

        async def agent(stream: faust.StreamT) -> None:
            async for events in stream.take_events(size, within=within):
                outbox = Outbox(self.settings.worker_frame_items)
                await handler(list(events), outbox)
                outbox.send(self.native)
                self.native.poll()

        agent.__name__ = agent.__qualname__ = component.replace("-", "_")
        return agent

    def _each_event(self, handler: EventHandler, component: str) -> BatchHandler:
        """A batch handler that runs ``handler`` on each event of the batch. An unexpected error
        dead-letters that event (reason processing_error); the batch goes on."""

        async def handle(events: list[faust.EventT], outbox: Outbox) -> None:
            for event in events:
                # Table writes go to the changelog partition (and RocksDB) of the current event;
                # the stream has moved on to later events since, so it is set here.
                _current_event.set(weakref.ref(event))
                try:
                    await handler(event, outbox)
                except Exception as exc:
                    self._processing_error(exc, event, component)

        return handle

    def _by_partition(self, handler: PartitionHandler, component: str) -> BatchHandler:
        """A batch handler for frames: ``handler`` gets the frames of the batch one partition at a
        time, so that it reads and writes each entity's state once per batch and partition, however
        many frames carried it. (At moderate load a frame holds a few envelopes; when a stage falls
        behind, its batches grow and this keeps the cost per transaction down.) An unexpected error
        dead-letters the events of that partition (reason processing_error); the batch goes on."""

        async def handle(events: list[faust.EventT], outbox: Outbox) -> None:
            by_partition: dict[int, list[faust.EventT]] = {}
            for event in events:
                by_partition.setdefault(event.message.partition, []).append(event)
            for partition, frames in by_partition.items():
                # Table writes go to the changelog partition of the current event: this partition.
                _current_event.set(weakref.ref(frames[-1]))
                try:
                    await handler(partition, frames, outbox)
                except Exception as exc:
                    for event in frames:
                        self._processing_error(exc, event, component)

        return handle

    def _processing_error(self, exc: Exception, event: faust.EventT, component: str) -> None:
        log.error("%s failed on %s", component, _where(event), exc_info=exc)
        self._dead_letter(Invalid("processing_error", f"{type(exc).__name__}: {exc}"), event, component)

    def _envelopes(self, frames: list[faust.EventT], component: str) -> Iterator[tuple[faust.EventT, Any]]:
        """(frame, envelope) for every envelope of ``frames``; a frame that is not a JSON array is
        dead-lettered whole (reason processing_error)."""
        for event in frames:
            try:
                envelopes = orjson.loads(event.value)
                if not isinstance(envelopes, list):
                    raise ValueError("a frame is a JSON array of envelopes")
            except Exception as exc:
                self._processing_error(exc, event, component)
                continue
            for envelope in envelopes:
                yield event, envelope

    async def validate(self, event: faust.EventT, outbox: Outbox) -> None:
        """First stage: check every transaction; send the valid ones on to the entity stages."""
        self.metrics.transactions_consumed.inc()
        received = time.time()
        result = parse_message(
            event.value,
            "transaction",
            self.settings.max_message_bytes,
            event_time_window=self._event_time_window,
        )
        if isinstance(result, Invalid):
            self._dead_letter(result, event, "validate")
            return
        envelope = orjson.dumps({"txn": result, "received": received, "features": {}})
        first = _routing_key(result, STAGES[0].routing_field)
        outbox.add(self.stage_topics[0], self._partition(first), envelope)

    def _entity_stage(self, index: int) -> PartitionHandler:
        """Stage ``index`` of STAGES: its entities' features from their tables, then on to the
        next stage (re-keyed by its routing field) or, after the last one, to scoring (by card).

        Its input is frames: the envelopes of one partition. Each entity's state is read once per
        batch and partition and written back once, after them (one changelog message per entity)."""
        stage = STAGES[index]
        last = index == len(STAGES) - 1
        next_topic = self.by_card if last else self.stage_topics[index + 1]
        next_field = "card_token" if last else STAGES[index + 1].routing_field
        component = f"{stage.name}-features"
        entities = [(entity, self.entity_tables[entity.name]) for entity in stage.entities]
        by_name = {entity.name: (entity, table) for entity, table in entities}

        async def handle(partition: int, frames: list[faust.EventT], outbox: Outbox) -> None:
            states: dict[tuple[str, str], Any] = {}
            touched: dict[tuple[str, str], float] = {}

            def state_of(entity: Entity, table: faust.Table, key: str) -> Any:
                state = states.get((entity.name, key))
                if state is None:
                    state = states[entity.name, key] = _as_state(entity.state_type, table.get(key))
                return state

            for frame, envelope in self._envelopes(frames, component):
                try:
                    if envelope.get("kind") == "label":  # a known label, for the confirmed-fraud rate
                        # (an envelope without "entity" is from before terminals moved here)
                        entity, table = by_name[envelope.get("entity", stage.name)]
                        key = envelope["key"]
                        state_of(entity, table, key).record_label(envelope["is_fraud"], envelope["at"])
                        touched[entity.name, key] = max(touched.get((entity.name, key), 0.0), envelope["at"])
                        continue
                    txn = envelope["txn"]
                    at = event_seconds(txn)
                    features = envelope["features"]
                    for entity, table in entities:
                        key = entity.key(txn)
                        if key:
                            features.update(observe(state_of(entity, table, key), txn, at))
                            touched[entity.name, key] = max(touched.get((entity.name, key), 0.0), at)
                        else:  # e.g. no device for a card-present payment: neutral features
                            features.update(entity.state_type().features(txn, at))
                    target = _routing_key(txn, next_field)
                    outbox.add(next_topic, self._partition(target), orjson.dumps(envelope))
                except Exception as exc:
                    self._dead_letter_item(exc, envelope, frame, component)
            for (name, key), state in states.items():
                table = by_name[name][1]
                table[key] = state
                self._touch(table, partition, key, touched.get((name, key), 0.0))

        handle.__name__ = f"{stage.name}_features"
        return handle

    async def score(self, partition: int, frames: list[faust.EventT], outbox: Outbox) -> None:
        """Last stage: card features, rules and model; emit the decision and, if due, the alert.
        Its input is frames of envelopes of one partition; each card is read and written once per
        batch and partition."""
        cards: dict[str, CardState] = {}
        touched: dict[str, float] = {}
        for frame, envelope in self._envelopes(frames, "score"):
            try:
                txn = envelope["txn"]
                token = txn["card_token"]
                card = cards.get(token)
                if card is None:
                    card = cards[token] = _as_state(CardState, self.card_state.get(token))
                self._score_one(envelope, txn, card, partition)
                touched[token] = max(touched.get(token, 0.0), event_seconds(txn))
            except Exception as exc:
                self._dead_letter_item(exc, envelope, frame, "score")
        for token, card in cards.items():
            if token in touched:
                self.card_state[token] = card
                self._touch(self.card_state, partition, token, touched[token])
        self.metrics.pending_labels.set(len(self._expiry[self.pending.name]))

    def _score_one(
        self, envelope: dict[str, Any], txn: dict[str, Any], card: CardState, partition: int
    ) -> None:
        transaction_id = txn["transaction_id"]
        key = txn["card_token"].encode()
        stored = self.pending.get(transaction_id)
        if stored is not None or card.has_seen(transaction_id):
            self.metrics.duplicates.inc()
            if stored is not None:  # re-emit the same decision: downstream deduplicates by id
                self.native.send(self.settings.topic_decisions, orjson.dumps(stored["decision"]), key)
            return
        started = time.perf_counter()
        at = event_seconds(txn)
        features = transaction_features(txn, at)
        features.update(envelope["features"])
        features.update(card.features(txn, at))
        decided = self.engine.decide(txn, features)
        card.update(txn, at)
        self.metrics.scoring_latency.observe(time.perf_counter() - started)
        now = time.time()
        decision = decision_message(txn, decided, utc_now_iso(), (now - envelope["received"]) * 1000)
        self.native.send(self.settings.topic_decisions, orjson.dumps(decision), key)
        if decided.action != "allow":
            alert = alert_message(decision, txn, features)
            self.native.send(self.settings.topic_alerts, orjson.dumps(alert), key)
            self.metrics.alerts.labels(decided.fraud_type).inc()
        self.pending[transaction_id] = {
            "features": features,
            "decision": decision,
            "at": at,
            "partition": partition,
        }
        self._touch(self.pending, partition, transaction_id, at)
        self.metrics.decisions.labels(decided.action).inc()
        self.metrics.processing_latency.observe(now - envelope["received"])
        self.metrics.end_to_end_latency.observe(max(now - at, 0.0))

    async def learn(self, event: faust.EventT, outbox: Outbox) -> None:
        """Join a label with the features kept at scoring time and let the model learn."""
        label = parse_message(event.value, "label", self.settings.max_message_bytes)
        if isinstance(label, Invalid):
            self._dead_letter(label, event, "learn")
            return
        entry = self.pending.get(label["transaction_id"])
        if entry is None:
            self.metrics.labels.labels("unknown").inc()
            return
        drifts = self.engine.model.drifts
        learnt = self.engine.learn(
            label["transaction_id"], entry["features"], label["is_fraud"], label["fraud_type"]
        )
        if self.engine.model.drifts > drifts:
            self.metrics.model_drifts.inc()
        self.metrics.labels.labels("learnt" if learnt else "skipped").inc()
        self.metrics.model_labels_learnt.set(self.engine.model.labels_learnt)
        known_at = parse_timestamp(label["labelled_at"])
        decision = entry["decision"]
        for index, stage in enumerate(STAGES):  # terminals' and merchants' confirmed-fraud rates
            for entity in stage.entities:
                key, routing_key = entity.key(decision), entity.routing_key(decision)
                if key and routing_key and issubclass(entity.state_type, LabelledActivityState):
                    known = {
                        "kind": "label",
                        "entity": entity.name,
                        "key": key,
                        "is_fraud": label["is_fraud"],
                        "at": known_at,
                    }
                    outbox.add(self.stage_topics[index], self._partition(routing_key), orjson.dumps(known))
        del self.pending[label["transaction_id"]]
        self._expiry[self.pending.name].forget(event.message.partition, label["transaction_id"])

    # --- helpers --------------------------------------------------------------------------------
    def _partition(self, key: str) -> int:
        return _partition_of(key, self.settings.topic_partitions)

    def _dead_letter_item(self, exc: Exception, envelope: Any, event: faust.EventT, component: str) -> None:
        """One envelope of a frame failed: dead-letter it alone (its transaction as the payload);
        the rest of the frame goes on."""
        log.exception("%s failed on an envelope of %s", component, _where(event))
        txn = envelope.get("txn") if isinstance(envelope, dict) else None
        payload = orjson.dumps(txn if txn is not None else envelope)
        key = str(txn.get("card_token", "")).encode() if isinstance(txn, dict) else None
        message = dead_letter_message(
            Invalid("processing_error", f"{type(exc).__name__}: {exc}"),
            topic=event.message.topic,
            partition=event.message.partition,
            offset=event.message.offset,
            key=key,
            payload=payload,
            component=component,
        )
        self.native.send(self.settings.topic_dead_letter, orjson.dumps(message), key)
        self.metrics.dead_letters.labels("processing_error").inc()

    def _dead_letter(self, invalid: Invalid, event: faust.EventT, component: str) -> None:
        message = event.message
        envelope = dead_letter_message(
            invalid,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            payload=event.value,
            component=component,
        )
        key = mask_card_numbers(message.key) if message.key else message.key  # upstream may key by PAN
        self.native.send(self.settings.topic_dead_letter, orjson.dumps(envelope), key)
        self.metrics.dead_letters.labels(invalid.code).inc()
        log.warning(
            "dead-lettered %s[%d]@%d: %s: %s",
            message.topic,
            message.partition,
            message.offset,
            invalid.code,
            invalid.reason,
        )

    def _touch(self, table: faust.Table, partition: int, key: str, at: float) -> None:
        """Record that ``key`` of ``table`` was written at event time ``at``, and delete the keys of
        the same partition idle for longer than the table's TTL (bounded state)."""
        index = self._expiry[table.name]
        if not index.knows(partition):  # first write since start: index what was restored
            for owner, entries in self._restored_entries(table).items():
                if not index.knows(owner):
                    index.load(owner, entries)
            if not index.knows(partition):
                index.load(partition, [])
        index.touch(partition, key, at)
        for stale in index.expired(partition, at):
            if table.get(stale) is not None:
                del table[stale]
                self.metrics.expired_entries.labels(table.name).inc()

    def _restored_entries(self, table: faust.Table) -> dict[int, list[tuple[str, float]]]:
        """(key, last activity) of every entry in the table, by partition: one scan for all of them."""
        entries: dict[int, list[tuple[str, float]]] = {}
        for key, value in table.items():
            if not value:
                continue
            if table is self.pending:
                owner, at = value.get("partition"), value.get("at")
            else:
                entity = self._entity_of_table.get(table.name)
                routing_key = entity.owner(key) if entity is not None else key
                owner, at = _partition_of(routing_key, self.settings.topic_partitions), last_active(value)
            if owner is not None and at is not None:
                entries.setdefault(int(owner), []).append((key, float(at)))
        return entries

    async def reload_rules_if_changed(self) -> None:
        """Load the rule file again when it changed; a malformed file is refused and the rules in
        force stay. Tables and the model are untouched."""
        mtime = _mtime(self.settings.rules_file)
        if mtime == self._rules_mtime:
            return
        self._rules_mtime = mtime
        try:
            rules = load_rules(self.settings.rules_file, FEATURE_NAMES)
        except RuleError as exc:
            self.metrics.rule_reloads.labels("refused").inc()
            log.error("rule file refused, the previous rules stay in force: %s", exc)
            return
        self.engine.rules = rules
        self.metrics.rule_reloads.labels("loaded").inc()
        log.info("rules reloaded from %s: %d rules", self.settings.rules_file, len(rules.rules))

    async def save_model_snapshot(self) -> None:
        model = self.engine.model
        if model.labels_learnt == self._snapshot_labels:
            return
        path = self.snapshots.save(model, model.labels_learnt)
        self._snapshot_labels = model.labels_learnt
        self.metrics.model_snapshots.inc()
        log.info("model snapshot %s (%s)", path.name, model.version)

    async def _on_shutdown(self, app: faust.App, **_: Any) -> None:
        await self.save_model_snapshot()
        undelivered = self.native.close()
        if undelivered:
            log.error("%d messages still undelivered at shutdown (they will be produced again)", undelivered)

    def is_ready(self) -> bool:
        """Recovered (the web server starts only after recovery), not rebalancing, holding partitions."""
        return not self.app.rebalancing and bool(self.app.consumer.assignment())


@functools.lru_cache(maxsize=200_000)
def _partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as Faust's and our confluent
    producers) gives ``key``; cached, as murmur2 is pure Python in aiokafka."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def _as_state(state_type: Any, stored: Any) -> Any:
    """The entity state a table returned: the object itself while it is cached, else rebuilt from
    its JSON (read from RocksDB, restored from the changelog). Tables hold state objects; they are
    written as their ``to_state()``."""
    return stored if isinstance(stored, state_type) else state_type.from_state(stored)


def _routing_key(txn: dict[str, Any], field: str) -> str:
    """The key that sends ``txn`` to the partition of a stage routed by ``field`` (the card when the
    transaction has no such field, so that such transactions spread evenly)."""
    return str(txn.get(field) or txn["card_token"])


def _where(event: faust.EventT) -> str:
    return f"{event.message.topic}[{event.message.partition}]@{event.message.offset}"


EventHandler = Callable[[faust.EventT, "Outbox"], Awaitable[None]]
BatchHandler = Callable[[list[faust.EventT], "Outbox"], Awaitable[None]]
PartitionHandler = Callable[[int, list[faust.EventT], "Outbox"], Awaitable[None]]


class Outbox:
    """What a batch sends to the next stage, as frames: a JSON array of envelopes that all belong
    to one partition of one topic, sent to that partition. One Kafka message then carries many
    transactions between stages; a frame holds at most ``frame_items`` envelopes."""

    def __init__(self, frame_items: int) -> None:
        self.frame_items = frame_items
        self._frames: dict[tuple[faust.TopicT, int], list[bytes]] = {}

    def add(self, topic: faust.TopicT, partition: int, envelope: bytes) -> None:
        self._frames.setdefault((topic, partition), []).append(envelope)

    def send(self, producer: NativeProducer) -> None:
        for (topic, partition), envelopes in self._frames.items():
            for start in range(0, len(envelopes), self.frame_items):
                frame = b"[" + b",".join(envelopes[start : start + self.frame_items]) + b"]"
                producer.send(topic.get_topic_name(), frame, partition=partition)
        self._frames.clear()


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


_DELETED = object()  # a table entry deleted since the last flush


class NativeChangelogTable(faust.Table):
    """A Faust table whose changelog is produced through librdkafka (NativeProducer), in Faust's
    own format (JSON; entity states as their ``to_state()``), and whose RocksDB store has a
    record cache (CachedRocksDBStore); reading, recovery and standbys are Faust's.

    A write changes the cache at once; the changelog gets each changed entry once per flush, with
    its latest value (``send_changes``; pipeline/worker/record_cache.py says why that is as durable). A
    value is encoded once per flush, for both the changelog and RocksDB."""

    native: NativeProducer
    cache_entries: int = 10_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._unsent: dict[Any, tuple[int, Any]] = {}  # key -> (partition, value or _DELETED)
        super().__init__(*args, **kwargs)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._unsent[key] = (self.partition_for_key(key), value)
        self._sensor_on_set(self, key, value)
        if isinstance(self.data, CachedRocksDBStore):
            self.data.remember(key, value)
        else:
            self.data[key] = value

    def __delitem__(self, key: Any) -> None:
        self._unsent[key] = (self.partition_for_key(key), _DELETED)
        self._sensor_on_del(self, key)
        if isinstance(self.data, CachedRocksDBStore):
            self.data.forget(key)
        else:
            del self.data[key]

    def send_changes(self) -> int:
        """Send every entry changed since the last call to the changelog, once, with its latest
        value (a deletion as a tombstone); return how many."""
        store = self.data if isinstance(self.data, CachedRocksDBStore) else None
        for key, (partition, value) in self._unsent.items():
            encoded = None if value is _DELETED else encode_value(value)
            self.native.send(self._changelog_name, encoded, encode_value(key), partition)
            if store is not None:
                store.stage(key, encoded, partition)
        sent = len(self._unsent)
        self._unsent.clear()
        return sent

    def persist_offset(self, tp: TP, offset: int) -> None:
        """The changelog of ``tp`` is acknowledged up to ``offset`` (after a flush)."""
        if isinstance(self.data, CachedRocksDBStore):
            self.data.persist(tp, offset)
        else:
            self.data.set_persisted_offset(tp, offset)

    def _new_store_by_url(self, url: Any) -> StoreT:
        """RocksDB behind a record cache (pipeline/worker/record_cache.py); other stores as Faust has them."""
        if str(url).partition(":")[0] != "rocksdb":
            return super()._new_store_by_url(url)
        store = CachedRocksDBStore(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )
        store.cache_entries = self.cache_entries
        store.pinned = self._unsent
        store.send_changes = self.send_changes
        return store

    @functools.cached_property
    def _changelog_name(self) -> str:
        return self.changelog_topic.get_topic_name()


def faust_credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """The Kafka security settings, in Faust's terms (the same settings the confluent clients use)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        if settings.kafka_ssl_certfile:
            keyfile = str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None
            context.load_cert_chain(str(settings.kafka_ssl_certfile), keyfile)
    if protocol.startswith("SASL"):
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password,
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
        )
    return faust.SSLCredentials(context)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one worker until SIGINT/SIGTERM."""
    from pipeline.worker.topics import ensure_topics

    ensure_topics(settings)
    pipeline = FraudPipeline(settings)
    pipeline.worker_dir.mkdir(parents=True, exist_ok=True)
    worker = faust.Worker(pipeline.app, loglevel=loglevel, quiet=True)
    # The cyclic garbage collector walks every live object each time a generation fills; the
    # worker keeps many long-lived ones (models, indexes, buffers), so collect less often and
    # leave what exists at start-up out of it.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    # Faust's terminal spinner (on at warning level) sets the root logger to DEBUG so that it spins
    # on every record: each debug call of aiokafka and Faust then builds a log record (~5% CPU).
    worker.spinner = None
    worker.execute_from_commandline()
