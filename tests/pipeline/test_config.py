"""Settings from the environment: unknown and invalid settings are named, round trips hold."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.config import ConfigurationError, Settings, load_settings, unknown_environment_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No FRAUD_* or KAFKA_BOOTSTRAP_SERVERS from the caller, and no .env file in the cwd."""
    for name in list(os.environ):
        if name.upper().startswith("FRAUD_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_load() -> None:
    settings = load_settings()
    assert settings.kafka_bootstrap_servers is None
    assert settings.bootstrap_servers == f"127.0.0.1:{settings.local_kafka_port}"
    assert settings.topic_partitions == 4


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_TOPIC_PARTITIONS", "8")
    monkeypatch.setenv("FRAUD_SIMULATOR_RHYTHM", "false")
    settings = load_settings()
    assert settings.topic_partitions == 8
    assert settings.simulator_rhythm is False


def test_unknown_fraud_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_TOPIC_PARTITONS", "8")
    monkeypatch.setenv("FRAUD_NO_SUCH_THING", "1")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    message = str(info.value)
    assert "FRAUD_TOPIC_PARTITONS" in message
    assert "FRAUD_NO_SUCH_THING" in message
    assert message.startswith("unknown setting(s): ")
    assert unknown_environment_settings({"FRAUD_APP_ID": "x", "FRAUD_X": "1", "OTHER": "2"}) == ["FRAUD_X"]


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("FRAUD_TOPIC_PARTITIONS", "0", "topic_partitions"),
        ("FRAUD_TOPIC_PARTITIONS", "many", "topic_partitions"),
        ("FRAUD_REVIEW_THRESHOLD", "1.5", "review_threshold"),
        ("FRAUD_KAFKA_SECURITY_PROTOCOL", "TLS", "kafka_security_protocol"),
        ("FRAUD_SIMULATOR_RHYTHM", "sometimes", "simulator_rhythm"),
        ("FRAUD_MAX_MESSAGE_BYTES", "10", "max_message_bytes"),
        ("FRAUD_FAULT_CRASH_AT", "after_decisions", "fault_crash_at"),
        ("FRAUD_FAULT_CRASH_AT", "after_decisions:0", "fault_crash_at"),
        ("FRAUD_FAULT_CRASH_AT", "after_decision:2", "fault_crash_at"),
    ],
)
def test_invalid_value_names_the_field(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=rf"^invalid settings: .*\b{field}: "):
        load_settings()


def test_a_crash_point_is_off_by_default_and_read_as_point_and_count(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().fault_crash_at is None
    monkeypatch.setenv("FRAUD_FAULT_CRASH_AT", "after_state_flush:12")
    assert load_settings().fault_crash_at == "after_state_flush:12"
    with pytest.raises(
        ConfigurationError, match="one of after_card_state, after_decisions, after_state_flush"
    ):
        load_settings(fault_crash_at="before_everything:1")


def test_invalid_override_names_the_field() -> None:
    with pytest.raises(ConfigurationError, match=r"block_threshold: "):
        load_settings(block_threshold=0)
    with pytest.raises(ConfigurationError, match=r"no_such_setting"):
        load_settings(no_such_setting=1)


def test_kafka_bootstrap_servers_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-1:9092,broker-2:9092")
    settings = load_settings()
    assert settings.kafka_bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert settings.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert settings.confluent_config()["bootstrap.servers"] == "broker-1:9092,broker-2:9092"


def test_fraud_prefixed_bootstrap_servers_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_KAFKA_BOOTSTRAP_SERVERS", "other:9093")
    assert load_settings().bootstrap_servers == "other:9093"


def test_to_environment_round_trips_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    original = load_settings()
    environment = original.to_environment()
    assert all(name.startswith("FRAUD_") for name in environment)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert load_settings() == original


def test_to_environment_round_trips_non_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = load_settings(
        kafka_bootstrap_servers="b1:9092,b2:9092",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="fraud",
        kafka_sasl_password="p@ss word=1",
        kafka_ssl_cafile=tmp_path / "ca.pem",
        topic_partitions=12,
        data_dir=tmp_path / "data dir",
        model_snapshot_key="s3cret",
        review_threshold=0.35,
        block_threshold=0.8,
        model_min_labels=0,
        simulator_rate=12.5,
        simulator_rhythm=False,
        simulator_unauthorized_rate=0.0,
        pending_label_ttl_hours=1 / 3,
        fault_crash_at="after_card_state:3",
    )
    environment = original.to_environment()
    assert environment["FRAUD_KAFKA_SASL_PASSWORD"] == "p@ss word=1"
    assert environment["FRAUD_SIMULATOR_RHYTHM"] == "false"
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    restored = load_settings()
    for name in Settings.model_fields:
        assert getattr(restored, name) == getattr(original, name), name
    assert restored == original
    assert restored.confluent_config() == original.confluent_config()


SCRAM_SSL = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "fraud",
    "kafka_sasl_password": "s3cret-pw",
}


@pytest.mark.parametrize(
    ("security", "named"),
    [
        ({**SCRAM_SSL, "kafka_sasl_password": None}, "kafka_sasl_password"),
        ({**SCRAM_SSL, "kafka_sasl_mechanism": None, "kafka_sasl_username": None}, "kafka_sasl_mechanism"),
        ({**SCRAM_SSL, "kafka_security_protocol": "SSL"}, "kafka_sasl_* settings need"),
        ({"kafka_ssl_cafile": "ca.pem"}, "kafka_ssl_* settings need"),
        (
            {**SCRAM_SSL, "kafka_security_protocol": "SASL_PLAINTEXT", "kafka_ssl_cafile": "ca.pem"},
            "SSL or SASL_SSL",
        ),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "client.pem"}, "kafka_ssl_keyfile"),
    ],
)
def test_incomplete_or_mismatched_kafka_security_is_refused(
    security: dict[str, str | None], named: str
) -> None:
    """A security setting one client would ignore or complete differently is a start-up error."""
    with pytest.raises(ConfigurationError) as info:
        load_settings(**security)
    assert named in str(info.value)
    assert "s3cret-pw" not in str(info.value)


def test_faust_and_confluent_clients_read_the_same_security_settings() -> None:
    import ssl

    import faust

    from pipeline.worker.credentials import faust_credentials

    settings = load_settings(**SCRAM_SSL)
    conf = settings.confluent_config()
    assert conf["security.protocol"] == "SASL_SSL"
    assert (conf["sasl.mechanism"], conf["sasl.username"], conf["sasl.password"]) == (
        "SCRAM-SHA-512",
        "fraud",
        "s3cret-pw",
    )
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("fraud", "s3cret-pw")
    assert "s3cret-pw" not in repr(credentials)
    assert credentials.ssl_context is not None
    assert credentials.ssl_context.check_hostname
    assert credentials.ssl_context.verify_mode == ssl.CERT_REQUIRED

    tls = faust_credentials(load_settings(kafka_security_protocol="SSL"))
    assert isinstance(tls, faust.SSLCredentials)
    assert tls.protocol.value == "SSL" and tls.context.check_hostname
    assert load_settings(kafka_security_protocol="SSL").confluent_config()["security.protocol"] == "SSL"
    assert faust_credentials(load_settings()) is None
    assert "ssl.endpoint.identification.algorithm" not in load_settings().confluent_config()
