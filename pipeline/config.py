"""Typed settings: the one source of truth for configuration.

Every setting is read from an environment variable with the prefix ``FRAUD_`` (for example
``FRAUD_TOPIC_PARTITIONS=8``) or from a ``.env`` file in the working directory. The Kafka
address is also read from the conventional ``KAFKA_BOOTSTRAP_SERVERS``.

The module is longer than 400 lines because every setting of every process lives in one class, each
with its type, bounds and description: one place to read, document (``fraud settings``) and validate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.contracts.json_schemas import SCHEMAS_DIR
from pipeline.detection.vocabulary import FRAUD_TYPE_NAMES, FRAUD_TYPES, FraudType

__all__ = ["FRAUD_TYPES", "FRAUD_TYPE_NAMES", "ConfigurationError", "FraudType", "Settings", "load_settings"]

REPO_ROOT = Path(__file__).resolve().parent.parent

CRASH_POINTS = ("after_card_state", "after_decisions", "after_state_flush", "after_input_frames")
"""The worker's crash points for fault injection (pipeline/worker/faults.py, docs/reliability.md)."""


class Settings(BaseSettings):
    """All settings of every process (worker, simulator, monitor, local broker)."""

    model_config = SettingsConfigDict(
        env_prefix="FRAUD_", env_file=".env", extra="forbid", frozen=True, populate_by_name=True
    )

    # --- Kafka connection -------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FRAUD_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
        description="host:port[,host:port] of an existing cluster; unset: the local broker.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How every Kafka client connects (docs/reliability.md, Kafka security).",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL login mechanism (with a SASL protocol)."
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password (never printed).")
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="PEM CA that signed the broker's certificate; unset: the system CAs."
    )
    kafka_ssl_certfile: Path | None = Field(default=None, description="PEM client certificate, for mTLS.")
    kafka_ssl_keyfile: Path | None = Field(
        default=None, description="Unencrypted PEM key of the client certificate."
    )
    kafka_connect_timeout_seconds: float = Field(
        default=15.0, gt=0, description="At start-up, how long to wait for the cluster before giving up."
    )

    # --- Local single-node KRaft broker (used when kafka_bootstrap_servers is unset) --------
    local_kafka_version: str = Field(
        default="4.1.1", description="Kafka version of the local development broker (fetched with Maven)."
    )
    local_kafka_port: int = Field(default=19092, description="Port of the local development broker.")
    local_kafka_home: Path = Field(
        default=Path.home() / ".cache" / "fraud-detection",
        description="Cache of broker jars and the broker's data directory.",
    )

    # --- Topics ------------------------------------------------------------------------------
    topic_transactions: str = Field(
        default="transactions", description="Input: transactions from upstream systems."
    )
    topic_decisions: str = Field(default="decisions", description="Output: one decision per transaction.")
    topic_alerts: str = Field(
        default="alerts", description="Output: an alert per transaction to review or block."
    )
    topic_labels: str = Field(
        default="labels", description="Input: fraud labels (ground truth, analysts' verdicts)."
    )
    topic_dead_letter: str = Field(
        default="dead-letter", description="Output: invalid messages with the reason."
    )
    topic_lists: str = Field(
        default="list-updates",
        description="Compacted topic of block/allow list updates (key: list:entity_kind:value).",
    )
    topic_partitions: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Partitions of every topic the project creates (the most workers that share work).",
    )
    topic_replication_factor: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Replication factor of the topics the project creates (3 on a cluster).",
    )
    topic_retention_hours: int = Field(
        default=168, ge=1, description="Retention of the non-compacted topics."
    )

    # --- Schema registry (Confluent wire format; docs/operations.md, "Upstream producers") -------
    schema_registry_url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="Base URL of a registry's Confluent-compatible API (Apicurio: http://host:port/apis/"
        "ccompat/v7); unset: wire-format input is dead-lettered and outputs stay plain JSON.",
    )
    schema_registry_timeout_seconds: float = Field(
        default=5.0, gt=0, le=120, description="Timeout of one request to the schema registry."
    )
    schema_registry_compatibility: Literal["BACKWARD", "BACKWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"] = (
        Field(
            default="BACKWARD",
            description="Compatibility level `fraud schemas register` sets on the subjects it creates.",
        )
    )
    output_wire_format: bool = Field(
        default=False,
        description="Produce decisions, alerts and dead letters in the Confluent wire format (magic byte, "
        "schema id of <topic>-value, JSON); needs schema_registry_url and `fraud schemas register`.",
    )
    local_registry_port: int = Field(
        default=18081, description="Port of the local Apicurio Registry (`fraud registry start`)."
    )

    # --- Pipeline worker -----------------------------------------------------------------------
    app_id: str = Field(default="fraud-pipeline", description="Faust app id = consumer group.")
    data_dir: Path = Field(default=REPO_ROOT / "var", description="Worker state and model snapshots.")
    worker_session_timeout_seconds: float = Field(
        default=20.0, ge=6, description="A worker silent this long is dropped and its partitions move."
    )
    worker_standby_replicas: int = Field(
        default=0,
        ge=0,
        le=8,
        description="Warm copies of each table partition kept by other workers (at most one per other "
        "worker: a worker alone keeps none); docs/reliability.md, 'Standby replicas'.",
    )
    worker_input: Literal["faust", "native"] = Field(
        default="faust",
        description="Who reads the input topic: Faust's consumer, one message at a time (faust), or "
        "librdkafka in batches, in a thread of the worker's own, as consumer group <app id>-input "
        "(native; pipeline/worker/input_reader.py, docs/performance.md).",
    )
    worker_batch_size: int = Field(
        default=1000,
        ge=1,
        description="Most transactions a worker stage takes at once (one batch); "
        "stages fed by frames take up to four times as many.",
    )
    worker_batch_seconds: float = Field(
        default=0.005,
        gt=0,
        le=1,
        description="Longest a stage waits to fill a batch (adds to latency per stage).",
    )
    worker_frame_items: int = Field(
        default=250, ge=1, le=2000, description="Most transactions in one message between two stages."
    )
    worker_fetch_min_bytes: int = Field(
        default=1024 * 1024,
        ge=1,
        le=64 * 1024 * 1024,
        description="Bytes a fetch of the worker's consumer asks the broker for before it answers; "
        "under load they are there at once, at a low rate the fetch waits worker_fetch_max_wait_ms "
        "(pipeline/worker/fetching.py).",
    )
    worker_fetch_max_wait_ms: int = Field(
        default=10,
        ge=0,
        le=10_000,
        description="How long the broker may hold a fetch for those bytes: at most this much latency "
        "per stage, for far fewer fetches at low rates; 0 answers every fetch at once (Faust's own "
        "behaviour: a fetch per frame).",
    )
    worker_producer_linger_ms: float = Field(
        default=1.0, ge=0, le=1000, description="How long the worker's producer waits to fill a batch."
    )
    worker_record_cache_mb: int = Field(
        default=64,
        ge=0,
        le=65536,
        description="Memory of the worker's record caches: the most recently used entity states kept over "
        "RocksDB, all tables together (each entity table and the cards' an equal share).",
    )
    worker_rocksdb_write_buffer_mb: int = Field(
        default=4,
        ge=1,
        le=256,
        description="RocksDB memtable per table partition (two at most); Faust's default: three of 64 MiB.",
    )
    worker_rocksdb_block_cache_mb: int = Field(
        default=32,
        ge=1,
        le=4096,
        description="RocksDB block cache of the whole worker, shared by every table partition (Faust's "
        "default: 2 GiB per partition). The record cache (worker_record_cache_mb) keeps the hot "
        "entries in memory already.",
    )
    worker_rocksdb_memtables_mb: int = Field(
        default=64,
        ge=4,
        le=4096,
        description="RocksDB memtables of the whole worker, all table partitions together; beyond it "
        "RocksDB flushes them early.",
    )
    table_store: Literal["rocksdb", "memory"] = Field(
        default="rocksdb",
        description="Faust table store: RocksDB on disk (state larger than memory) or memory.",
    )
    fault_crash_at: str | None = Field(
        default=None,
        pattern=r"^[a-z_]+:[1-9][0-9]*$",
        description="Fault injection, for tests: point:N stops the worker dead (os._exit) the Nth time "
        f"it reaches that crash point ({', '.join(CRASH_POINTS)}; docs/reliability.md); unset: never.",
    )
    worker_web_port: int = Field(default=9101, description="Worker's HTTP port: /metrics, /healthz, /readyz.")
    worker_bulk_restore_min_records: int = Field(
        default=1000,
        ge=1,
        description="A changelog partition with at least this many records to restore is read in bulk "
        "by librdkafka before Faust's own recovery reads the rest (docs/reliability.md, 'Table recovery').",
    )
    worker_recovery_log_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often a worker restoring its tables from their changelogs logs its progress.",
    )
    metrics_bind: str = Field(
        default="127.0.0.1", description="Address the HTTP endpoints of every process bind to."
    )
    model_snapshot_key: SecretStr = Field(
        default=SecretStr("local-development-only"), description="HMAC key that signs model snapshots."
    )
    model_snapshot_interval_seconds: float = Field(
        default=30.0, gt=0, description="How often the model is saved when it learnt something."
    )
    rules_file: Path = Field(
        default=REPO_ROOT / "pipeline" / "detection" / "rules.yaml",
        description="The YAML rule file (reloaded while the worker runs).",
    )
    rules_file_seed: bool = Field(
        default=False,
        description="When the rule file does not exist, start it from the shipped rules (a volume "
        "that the workers and the monitor share, docker-compose.yml); otherwise a missing file is an error.",
    )
    rules_reload_seconds: float = Field(default=5.0, gt=0, description="How often the rule file is checked.")
    review_threshold: float = Field(
        default=0.5, gt=0, lt=1, description="Score from which a transaction is sent to review."
    )
    block_threshold: float = Field(
        default=0.9, gt=0, le=1, description="Score from which a transaction is blocked."
    )
    model_review_threshold: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="Fraud probability from which the model alone sends a transaction to review "
        "(a calibrated probability: 0.2 is forty times the usual fraud rate of 0.5 %).",
    )
    model_block_threshold: float = Field(
        default=0.9, gt=0, le=1, description="Fraud probability from which the model alone blocks."
    )
    model_health_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often each worker publishes its model's health to '<app id>-model-health' "
        "(labels learnt, label delays, champion and challengers' recent precision).",
    )
    model_health_min_precision: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="The champion's recent precision at the model review threshold below which the "
        "FraudModelPrecisionLow alert fires (exported as fraud_model_precision_floor).",
    )
    alert_budget: float = Field(
        default=0.05, gt=0, lt=1, description="Largest share of transactions the model alone may flag."
    )
    anomaly_budget: float = Field(
        default=0.01, gt=0, lt=1, description="Largest share of transactions anomalies alone may flag."
    )
    model_min_labels: int = Field(
        default=200, ge=0, description="Labels learnt before the model may raise alerts alone."
    )
    entity_ttl_days: float = Field(
        default=35, gt=0, description="Card, terminal, device and customer state idle this long is deleted."
    )
    pending_label_ttl_hours: float = Field(
        default=24 * 45, gt=0, description="How long scored features wait for a label."
    )
    max_event_time_skew_hours: float = Field(
        default=24, gt=0, description="Refuse event times further ahead."
    )
    max_event_age_days: float = Field(default=400, gt=0, description="Refuse event times older than this.")
    max_message_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest input message accepted; larger ones are dead-lettered.",
    )

    # --- Traffic simulator ---------------------------------------------------------------------
    simulator_rate: float = Field(default=40.0, gt=0, description="Transactions per second.")
    simulator_seed: int = Field(default=7, description="Seed of the simulated population and traffic.")
    simulator_customers: int = Field(default=5000, ge=10, description="Simulated customers.")
    simulator_merchants: int = Field(default=600, ge=5, description="Simulated merchants.")
    simulator_unauthorized_rate: float = Field(
        default=0.004, ge=0, le=0.5, description="Stolen-card episodes per transaction."
    )
    simulator_identity_theft_rate: float = Field(
        default=0.003, ge=0, le=0.5, description="Account takeovers per transaction."
    )
    simulator_malicious_rate: float = Field(
        default=0.002, ge=0, le=0.5, description="Card-testing attacks per transaction."
    )
    simulator_label_delay_seconds: float = Field(
        default=30.0, ge=0, description="Delay before ground truth is published."
    )
    simulator_metrics_port: int = Field(
        default=9102, ge=0, le=65535, description="Simulator's /metrics port (`fraud simulate`); 0: none."
    )
    simulator_rhythm: bool = Field(default=True, description="Follow a daily and weekly rhythm of activity.")

    # --- Demo ----------------------------------------------------------------------------------
    demo_no_progress_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="`fraud demo` gives up when a process it waits for (the worker restoring its tables, "
        "the monitor) shows no progress for this long.",
    )

    # --- Backtest ------------------------------------------------------------------------------
    backtest_token_key: SecretStr | None = Field(
        default=None,
        description="HMAC key that turns card numbers in `fraud backtest` files into tok_ tokens; "
        "unset: a random key per run (tokens then differ between runs).",
    )

    # --- Monitor -------------------------------------------------------------------------------
    monitor_host: str = Field(default="127.0.0.1", description="Address the monitor listens on.")
    monitor_port: int = Field(default=8050, description="Port of the monitor.")
    monitor_history_minutes: int = Field(
        default=24 * 60, ge=1, description="How much history the monitor keeps."
    )
    monitor_dedup_minutes: int = Field(
        default=15,
        ge=1,
        description="Minutes of decision time over which the monitor recognises a repeated decision "
        "(a worker's replay after a crash) by its transaction id; older ids are forgotten.",
    )
    monitor_max_alerts: int = Field(
        default=5000, ge=10, description="Most alerts the monitor keeps in memory (newest first)."
    )
    monitor_users: SecretStr | None = Field(
        default=None,
        description='Monitor logins as JSON {"name": {"password_hash": "...", "role": "viewer|analyst"}} '
        "(hash: python -m monitor hash-password); unset: demo logins analyst/analyst, viewer/viewer.",
    )
    monitor_secret_key: SecretStr | None = Field(
        default=None,
        description="Signs the monitor's session cookie; unset: a random key per start (log in again).",
    )
    monitor_cookie_secure: bool = Field(
        default=False, description="Send the monitor's session cookie over HTTPS only (set it behind TLS)."
    )
    monitor_session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="Login lifetime.")
    monitor_login_max_failures: int = Field(
        default=5, ge=1, le=1000, description="Failed logins of one user from one address before a lockout."
    )
    monitor_login_window_seconds: float = Field(
        default=300.0, gt=0, description="Window in which failed logins are counted."
    )
    monitor_login_lockout_seconds: float = Field(
        default=300.0, gt=0, description="How long logins are refused after too many failures."
    )

    @field_validator("monitor_users")
    @classmethod
    def _check_monitor_users(cls, value: SecretStr | None) -> SecretStr | None:
        """The users JSON must be an object of name -> {password_hash, role}; checked at start-up."""
        if value is None:
            return None
        try:
            users = json.loads(value.get_secret_value())
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at {exc.pos})") from None
        if not isinstance(users, dict) or not users:
            raise ValueError('expected a non-empty JSON object {"name": {"password_hash": ..., "role": ...}}')
        for name, entry in users.items():
            if not name or len(name) > 128 or name != name.strip():
                raise ValueError(f"user name {name[:40]!r}: 1 to 128 characters, no outer spaces")
            if not isinstance(entry, dict) or set(entry) != {"password_hash", "role"}:
                raise ValueError(f"user {name!r}: expected exactly the keys password_hash and role")
            if not isinstance(entry["password_hash"], str) or "$" not in entry["password_hash"]:
                raise ValueError(f"user {name!r}: password_hash is not a werkzeug password hash")
            if entry["role"] not in ("viewer", "analyst"):
                raise ValueError(f"user {name!r}: role must be viewer or analyst")
        return value

    @field_validator("fault_crash_at")
    @classmethod
    def _check_crash_point(cls, value: str | None) -> str | None:
        """A misspelt crash point would never fire: name the known ones."""
        if value is not None and value.partition(":")[0] not in CRASH_POINTS:
            raise ValueError(
                f"unknown crash point {value.partition(':')[0]!r}: one of {', '.join(CRASH_POINTS)}"
            )
        return value

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Settings:
        """The security settings must be complete and match the protocol: Faust and the confluent
        clients read them alike, and one they ignored would fail later, or differently in each."""
        protocol = self.kafka_security_protocol
        sasl = {
            "kafka_sasl_mechanism": self.kafka_sasl_mechanism,
            "kafka_sasl_username": self.kafka_sasl_username,
            "kafka_sasl_password": self.kafka_sasl_password and self.kafka_sasl_password.get_secret_value(),
        }
        if protocol.startswith("SASL"):
            missing = [name for name, value in sasl.items() if not value]
            if missing:
                raise ValueError(f"kafka_security_protocol={protocol} needs {', '.join(missing)}")
        elif any(sasl.values()):
            raise ValueError("kafka_sasl_* settings need kafka_security_protocol SASL_SSL or SASL_PLAINTEXT")
        tls_files = [self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile]
        if any(tls_files) and not protocol.endswith("SSL"):
            raise ValueError("kafka_ssl_* settings need kafka_security_protocol SSL or SASL_SSL")
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            raise ValueError("a client certificate needs both kafka_ssl_certfile and kafka_ssl_keyfile")
        return self

    @model_validator(mode="after")
    def _check_wire_format(self) -> Settings:
        """Output in wire format needs the registry that holds the outputs' schema ids."""
        if self.output_wire_format and not self.schema_registry_url:
            raise ValueError("output_wire_format needs schema_registry_url")
        return self

    @property
    def bootstrap_servers(self) -> str:
        """The Kafka address every client uses."""
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.local_kafka_port}"

    @property
    def topic_kinds(self) -> dict[str, str]:
        """Each topic of the project's messages with its schema's kind (schemas/<kind>.v1.schema.json)."""
        return {
            self.topic_transactions: "transaction",
            self.topic_labels: "label",
            **self.output_topic_kinds,
            self.topic_lists: "list_update",
        }

    @property
    def output_topic_kinds(self) -> dict[str, str]:
        """The worker's outputs, which output_wire_format frames."""
        return {
            self.topic_decisions: "decision",
            self.topic_alerts: "alert",
            self.topic_dead_letter: "dead_letter",
        }

    @property
    def topic_model_health(self) -> str:
        """Where every worker reports its model's health (``model_health``; pipeline/worker/
        model_health.py) and the monitor reads it: one topic per app id, created with the internal
        topics, retained like the outputs (not compacted: the monitor sums the reports over time)."""
        return f"{self.app_id}-model-health"

    @property
    def topic_audit(self) -> str:
        """The audit trail (``audit_event``; monitor/audit.py): every verdict, list change and rule
        enabled in the monitor, append-only and kept for good (retention.ms -1)."""
        return f"{self.app_id}-audit"

    @property
    def topic_names(self) -> list[str]:
        return [
            self.topic_transactions,
            self.topic_decisions,
            self.topic_alerts,
            self.topic_labels,
            self.topic_dead_letter,
            self.topic_lists,
        ]

    @cached_property
    def schemas_dir(self) -> Path:
        return SCHEMAS_DIR

    def to_environment(self) -> dict[str, str]:
        """These settings as FRAUD_* environment variables, to hand to a child process."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"FRAUD_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        return env

    def child_environment(self) -> dict[str, str]:
        """The environment to start a child process (worker, simulator, monitor) with: this
        process's, with its FRAUD_* and KAFKA_BOOTSTRAP_SERVERS variables replaced by these settings."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("FRAUD_") and k != "KAFKA_BOOTSTRAP_SERVERS"
        }
        env.update(self.to_environment())
        return env

    def confluent_config(self, **extra: Any) -> dict[str, Any]:
        """librdkafka settings for confluent-kafka clients (producer, consumer, admin)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
            conf["sasl.username"] = self.kafka_sasl_username or ""
            conf["sasl.password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
            )
        if self.kafka_security_protocol.endswith("SSL"):
            # Verify the broker's name as Faust's ssl context does (librdkafka's default since 2.0).
            conf["ssl.endpoint.identification.algorithm"] = "https"
        if self.kafka_ssl_cafile:
            conf["ssl.ca.location"] = str(self.kafka_ssl_cafile)
        if self.kafka_ssl_certfile:
            conf["ssl.certificate.location"] = str(self.kafka_ssl_certfile)
        if self.kafka_ssl_keyfile:
            conf["ssl.key.location"] = str(self.kafka_ssl_keyfile)
        conf.update(extra)
        return conf

    def producer_config(self, **extra: Any) -> dict[str, Any]:
        """Idempotent, acks=all producer whose partitioner matches Faust's (murmur2), so a key
        lands on the same partition whichever client produced it."""
        return self.confluent_config(
            **{
                "enable.idempotence": True,
                "acks": "all",
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                "compression.type": "lz4",
                **extra,
            }
        )


class ConfigurationError(ValueError):
    """A setting is unknown or invalid; the message names it."""


def unknown_environment_settings(environ: Mapping[str, str]) -> list[str]:
    """``FRAUD_*`` variables that name no setting (typos would otherwise be ignored)."""
    known = {f"FRAUD_{name.upper()}" for name in Settings.model_fields}
    return sorted(key for key in environ if key.startswith("FRAUD_") and key not in known)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, with explicit overrides (used by tests and the CLI).

    Raises ConfigurationError with one readable message for unknown or invalid settings.
    """
    unknown = unknown_environment_settings(os.environ)
    if unknown:
        raise ConfigurationError(f"unknown setting(s): {', '.join(unknown)} (see `fraud settings`)")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from None
