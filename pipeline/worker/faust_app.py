"""The Faust application: wiring only. The stages (pipeline/worker/stages.py) call the detector
(pipeline/detection/detector.py); this module connects them to topics, tables and timers.

    transactions (key: card) --validate--> <app>-by-merchant (key: merchant)
        --terminal and merchant features--> <app>-by-device (key: device)
        --device features--> <app>-by-customer (key: customer)
        --customer features--> <app>-by-card (key: card)
        --card features, rules, model--> decisions (every transaction) + alerts (review/block)
    labels (key: card) --join with the features kept at scoring time--> model.learn
        --> <app>-by-merchant (terminals' and merchants' confirmed-fraud rates, from labels known so far)

Every topic has the same partition count, so Faust co-partitions them: a card's scoring state,
its pending features and its labels live on the same partition of the same worker. Invalid
input goes to the dead-letter topic with the reason; the stream goes on. Processing is
at-least-once: before Faust commits offsets, everything produced (through librdkafka,
pipeline/worker/producer.py) has been acknowledged, and duplicates are recognised by transaction
id (the stored decision is re-emitted unchanged).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from pipeline.config import Settings
from pipeline.wiring import build_detector, snapshot_store
from pipeline.worker import fetching
from pipeline.worker.batching import Within, batch_agent, by_partition, each_event
from pipeline.worker.bulk_restore import BulkRecovery
from pipeline.worker.credentials import faust_credentials
from pipeline.worker.dead_letters import DeadLetters
from pipeline.worker.faults import arm, crash_point
from pipeline.worker.input_reader import NativeInput
from pipeline.worker.list_follower import install_lists
from pipeline.worker.process_memory import TRIM_SECONDS, release_free_memory, restore_consumer_config
from pipeline.worker.producer import NativeProducer
from pipeline.worker.recovery_progress import RecoveryWatch
from pipeline.worker.rule_audit import RuleFileAudit
from pipeline.worker.stages import EntityStage, Learn, Score, StageContext, Validate
from pipeline.worker.table_expiry import TableExpiry
from pipeline.worker.tables import create_tables
from pipeline.worker.telemetry import PipelineMetrics, install_faust_sensors
from pipeline.worker.topics import STAGES, internal_topic_names
from pipeline.worker.upkeep import ModelSnapshots, RuleReloader
from pipeline.worker.wire import frame_outputs

log = logging.getLogger(__name__)

BACKLOG_BATCH_SECONDS = 0.05
"""The first stage's wait for a batch while a backlog waits (FraudPipeline._first_stage_wait)."""


class FraudPipeline:
    """Builds the Faust app for ``settings`` around one detector."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.metrics = PipelineMetrics(registry or CollectorRegistry())
        self.worker_dir = settings.data_dir / settings.app_id / f"worker-{settings.worker_web_port}"
        snapshots = snapshot_store(settings)
        self.detector = build_detector(settings, "combined", snapshots.load_latest())
        self.snapshots = ModelSnapshots(snapshots, self.detector, self.metrics)
        self.metrics.model_labels_learnt.set(self.detector.engine.model.labels_learnt)
        # Everything the worker produces goes through librdkafka (pipeline/worker/producer.py).
        self.native = self._new_producer()
        self.metrics.watch_producer(self.native)
        audit = RuleFileAudit(settings.topic_audit, self.native)
        self.rules = RuleReloader(settings.rules_file, self.detector, self.metrics, audit)
        self.dead_letters = DeadLetters(self.native, settings.topic_dead_letter, self.metrics)
        self.app = self._new_app()
        self.tables = create_tables(self.app, settings, self.native)
        self.metrics.watch_memory(self.tables.cache_bytes)
        bulk = self._bulk_recovery()
        names = tuple(table.name for table in self.tables.all)
        self.recovery = RecoveryWatch(
            # Faust creates its recovery service when the tables start; not from this thread.
            lambda: getattr(self.app.tables, "_recovery", None),
            names,
            lambda table: str(table.name),
            settings.worker_recovery_log_seconds,
            on_status=lambda status: self.metrics.show_recovery(names, status),
        )
        bulk.on_change = self.recovery.wake  # the watch samples often only while one runs
        self.metrics.show_recovery(names, self.recovery.status)
        arm(settings.fault_crash_at, self._deliver_everything)
        self._flush_before_commit()
        self._install_stages()
        self._install_upkeep()

    def _new_producer(self) -> NativeProducer:
        """A librdkafka producer with the worker's settings. Without Nagle's algorithm: a frame's few
        hundred bytes would otherwise wait for the broker's delayed ACK (tens of milliseconds per
        stage at moderate load)."""
        s = self.settings
        return NativeProducer(
            s.producer_config(**{"linger.ms": s.worker_producer_linger_ms, "socket.nagle.disable": True})
        )

    def _new_app(self) -> faust.App:
        s = self.settings
        app_class = fetching.app_class(s.worker_fetch_min_bytes, s.worker_fetch_max_wait_ms)
        return app_class(
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
            # A record batch holds many frames (aiokafka's default of 16 KB holds less than one);
            # it stays below the topics' max.message.bytes (1 MiB), which applies to a whole batch.
            producer_max_batch_size=900_000,
            processing_guarantee="at_least_once",
            # Commits come from Faust's timer, every second, and not also from its fetcher after
            # every thousand events: a commit first waits until the broker has acknowledged all
            # that was sent, and the fetcher, which feeds every stage, would stand still meanwhile.
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

    def _bulk_recovery(self) -> BulkRecovery:
        """Faust's table recovery, with the bulk of each changelog read by librdkafka (bulk_restore.py):
        set as the table manager's recovery service before Faust creates its own."""
        tables = self.app.tables
        recovery = BulkRecovery(self.app, tables, beacon=tables.beacon)
        # Its fetches and prefetch queue bounded (process_memory.py): librdkafka's defaults held
        # 200-350 MiB more at the peak of a restore, for no faster restore.
        recovery.consumer_config = restore_consumer_config(self.settings.confluent_config())
        recovery.min_records = self.settings.worker_bulk_restore_min_records
        tables._recovery = recovery  # type: ignore[attr-defined]  # TableManager.recovery creates it lazily
        return recovery

    def _flush_before_commit(self) -> None:
        """Faust flushes its producer before it commits offsets; the tables' changes and the output
        sent through librdkafka must be acknowledged by then too (at-least-once)."""
        app = self.app
        # Table writes wait in the producer's buffer; above max_messages Faust pauses every stream
        # and drains it one message per loop turn. Its default of 100 is less than one frame's
        # writes, so the worker spent half its time idle there; a few batches' worth is bounded.
        app.producer.buffer.max_messages = 4 * self.settings.worker_batch_size
        faust_flush = app.producer.flush

        async def flush_all() -> None:
            if sum(table.send_changes() for table in self.tables.all):
                crash_point("after_state_flush")  # changelogs sent, offsets not yet committed
            await faust_flush()
            await self.native.flush()

        app.producer.flush = flush_all  # type: ignore[method-assign]
        install_faust_sensors(app, self.metrics.registry)

    def _deliver_everything(self) -> None:
        """Send every table's changes and wait until all the worker produced is acknowledged
        (before a crash point stops the worker: pipeline/worker/faults.py)."""
        for table in self.tables.all:
            table.send_changes()
        self.native.close()

    def _topic(self, name: str) -> faust.TopicT:
        return self.app.topic(
            name, key_serializer="raw", value_serializer="raw", partitions=self.settings.topic_partitions
        )

    def _install_stages(self) -> None:
        s, app = self.settings, self.app
        *stage_names, by_card_name = internal_topic_names(s)
        context = StageContext(
            settings=s,
            detector=self.detector,
            tables=self.tables,
            expiry=TableExpiry(s, self.tables, self.metrics),
            producer=self.native,
            dead_letters=self.dead_letters,
            metrics=self.metrics,
            stage_topics=[self._topic(name) for name in stage_names],
            by_card=self._topic(by_card_name),
        )
        on_error = self.dead_letters.processing_error
        # A batch of frames takes fewer events: a frame holds up to FRAUD_WORKER_FRAME_ITEMS
        # transactions, and FRAUD_WORKER_BATCH_SIZE frames would hold the event loop, and with it
        # every other stage and the web server, for tens of seconds. Up to four input batches'
        # worth keeps them large (one batch's worth measured half the throughput).
        frames = max(1, 4 * s.worker_batch_size // s.worker_frame_items)

        def stage(
            topic: faust.TopicT, component: str, handler: Any, size: int, within: Within | None = None
        ) -> None:
            agent = batch_agent(
                handler, component, size, within or s.worker_batch_seconds, s.worker_frame_items, self.native
            )
            app.agent(topic, name=component)(agent)

        events = s.worker_batch_size
        validate = Validate(context)
        if s.worker_input == "native":
            self._install_native_input(validate)
        else:
            stage(
                self._topic(s.topic_transactions),
                "validate",
                each_event(validate, "validate", on_error),
                events,
                self._first_stage_wait,
            )
        for index, entity_stage in enumerate(STAGES):
            component = f"{entity_stage.name}-features"
            handler = by_partition(EntityStage(context, index), component, on_error)
            stage(context.stage_topics[index], component, handler, frames)
        stage(context.by_card, "score", by_partition(Score(context), "score", on_error), frames)
        stage(self._topic(s.topic_labels), "learn", by_partition(Learn(context), "learn", on_error), events)
        # Block/allow lists: every worker reads the whole list-updates topic (list_follower.py).
        install_lists(
            app,
            self._topic(s.topic_lists),
            s,
            self.detector.engine.lists,
            self.metrics.registry,
            self.dead_letters,
        )

    def _install_native_input(self, validate: Validate) -> None:
        """The input read by librdkafka in a thread (input_reader.py), with a producer of its own
        (its flush waits for its own frames only), started with the app and stopped before it."""
        s = self.settings
        producer = self._new_producer()
        frame_outputs(producer, s)
        self.metrics.watch_producer(producer)
        reader = NativeInput(
            s.confluent_config(),
            s.topic_transactions,
            s.app_id,
            validate,
            producer,
            DeadLetters(producer, s.topic_dead_letter, self.metrics),
            s.worker_batch_size,
            s.worker_frame_items,
            on_fatal=self._crash_from_thread,
        )

        @self.app.task
        async def start_native_input() -> None:
            self._loop = asyncio.get_running_loop()
            reader.start()

        async def stop_native_input(app: faust.App, **_: Any) -> None:
            await asyncio.to_thread(reader.stop)
            producer.close()

        self.app.on_before_shutdown.connect(stop_native_input)

    def _crash_from_thread(self, exc: BaseException) -> None:
        """Stop the worker from another thread (its successor reads what was not committed again)."""
        loop = getattr(self, "_loop", None)
        if loop is not None:
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.app.crash(exc)))

    def _first_stage_wait(self, event: faust.EventT) -> float:
        """How long the first stage waits for its batch to fill: FRAUD_WORKER_BATCH_SECONDS, or
        BACKLOG_BATCH_SECONDS while more than a batch of input waits behind ``event`` on its
        partition. Under a backlog, 5 ms ended the first stage's batches at a few dozen
        transactions (the stages share one event loop, and Faust hands the input over one message
        at a time), so it sent frames of 4 to 9 transactions and every later stage worked in small,
        costly batches: a fresh worker facing 20,000 waiting transactions validated all of them
        before its first decision, 60 to 230 s after ready on the loaded machine (issue 22). At a
        steady rate nothing waits behind the event and the wait stays as it was."""
        message = event.message
        try:
            highwater = self.app.consumer.highwater(message.tp)
        except Exception:  # not assigned any more (a rebalance): the usual wait
            return self.settings.worker_batch_seconds
        if highwater is not None and highwater - message.offset > self.settings.worker_batch_size:
            return BACKLOG_BATCH_SECONDS
        return self.settings.worker_batch_seconds

    def _install_upkeep(self) -> None:
        app = self.app
        app.timer(self.settings.model_snapshot_interval_seconds)(self.snapshots.save_if_changed)
        app.timer(self.settings.rules_reload_seconds)(self.rules.reload_if_changed)
        # Free malloc memory back to the system (process_memory.py): what a bulk restore or a
        # takeover freed stays resident otherwise.
        app.timer(TRIM_SECONDS)(self._release_free_memory)

        @app.page("/healthz")
        async def healthz(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
            return view.json({"status": "ok"})

        @app.page("/readyz")
        async def readyz(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
            state = self.readiness()
            return view.json(
                {
                    "ready": state == "ready",
                    "state": state,
                    "model": self.detector.engine.model.version,
                    "recovery": self.recovery.status.as_json(),
                },
                status=200 if state == "ready" else 503,
            )

        app.on_before_shutdown.connect(self._on_shutdown)

    async def _release_free_memory(self) -> None:
        release_free_memory()

    async def _on_shutdown(self, app: faust.App, **_: Any) -> None:
        await self.snapshots.save_if_changed()
        undelivered = self.native.close()
        if undelivered:
            log.error("%d messages still undelivered at shutdown (they will be produced again)", undelivered)

    def readiness(self) -> str:
        """``ready`` once the tables are restored, not rebalancing and holding partitions; else
        what the worker is doing: ``recovering`` (its tables, from their changelogs; the web
        server answers meanwhile), ``rebalancing``, ``starting`` (no partition yet) or ``no
        partitions`` (more workers than partitions)."""
        if self.recovery.status.state == "recovering" or self.app.in_recovery:
            return "recovering"
        if self.app.rebalancing:
            return "rebalancing"
        if not self.app.consumer.assignment():
            return "starting" if self.recovery.status.state == "waiting" else "no partitions"
        return "ready"

    def is_ready(self) -> bool:
        """Recovered, not rebalancing, holding partitions."""
        return self.readiness() == "ready"
