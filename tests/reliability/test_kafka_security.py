"""Kafka security end to end: a broker of this module's own with a SASL_SSL (SCRAM-SHA-512)
listener and an SSL listener that requires client certificates (mTLS), certificates generated
here. Through each listener: the topics are created, a real worker (Faust) scores simulated
traffic produced by the simulator's producer, and every decision is read back by a confluent
consumer and by the monitor's feed. Clients with a wrong password, no certificate, a certificate
of another CA, or no trust in the broker's CA are refused with a clear error within a bounded
time, by the confluent clients, by aiokafka (Faust's client) and by a worker at start-up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from monitor.consumer import KafkaFeed
from monitor.metrics import MonitorMetrics
from pipeline.config import Settings, load_settings
from pipeline.tools.local_kafka import BrokerTls, LocalKafka, SecureListener
from pipeline.tools.simulator.producer import TrafficProducer
from pipeline.worker.credentials import faust_credentials
from pipeline.worker.topics import BrokerUnavailableError, ensure_topics
from tests.conftest import WorkerProcess, free_port
from tests.support import consume_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

USER = "fraud-pipeline"
PASSWORD = "Sc4m-t3st-pa55word"  # a throwaway credential of this module's own broker
TRANSACTIONS = 120
TIMEOUT = 90.0
REFUSAL_TIMEOUT = 6.0  # kafka_connect_timeout_seconds of the refused clients


# --- certificates ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, the broker's keystore, a client signed by the CA and one by another CA."""

    ca: Path
    broker_keystore: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    usage: ExtendedKeyUsageOID | None = None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    """A CA certificate when ``usage`` is None, else a leaf certificate for that usage."""
    now = dt.datetime.now(dt.UTC)
    is_ca = usage is None
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not is_ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=not is_ca,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if not is_ca:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        ).add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8, unencrypted: the form Kafka's PEM keystore, librdkafka and Python's ssl all read."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def make_pki(folder: Path) -> Pki:
    """Generate the CA, a broker certificate for 127.0.0.1 and localhost, and client certificates."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("fraud-test-ca", ca_key, _name("fraud-test-ca"), ca_key)
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker = _certificate(
        "localhost",
        broker_key,
        ca.subject,
        ca_key,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        names=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate(USER, client_key, ca.subject, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    other_ca_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = _certificate("other-ca", other_ca_key, _name("other-ca"), other_ca_key)
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _certificate(
        "stranger", stranger_key, other_ca.subject, other_ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    pki = Pki(
        ca=folder / "ca.pem",
        broker_keystore=folder / "broker-keystore.pem",
        client_cert=folder / "client.pem",
        client_key=folder / "client-key.pem",
        stranger_cert=folder / "stranger.pem",
        stranger_key=folder / "stranger-key.pem",
    )
    pki.ca.write_bytes(_cert_pem(ca))
    pki.client_cert.write_bytes(_cert_pem(client))
    pki.stranger_cert.write_bytes(_cert_pem(stranger))
    for path, data in (
        (pki.broker_keystore, _key_pem(broker_key) + _cert_pem(broker) + _cert_pem(ca)),
        (pki.client_key, _key_pem(client_key)),
        (pki.stranger_key, _key_pem(stranger_key)),
    ):
        path.touch(mode=0o600)
        path.write_bytes(data)
    return pki


# --- the broker ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SecureBroker:
    broker: LocalKafka
    pki: Pki

    def listener(self, name: str) -> SecureListener:
        return next(item for item in self.broker.listeners if item.name == name)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """This module's broker: PLAINTEXT (inter-broker, controller) plus the SCRAM and MTLS listeners."""
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    defaults = Settings()
    broker = LocalKafka(
        defaults.local_kafka_version,
        free_port(),
        defaults.local_kafka_home,
        controller_port=free_port(),
        listeners=(
            SecureListener("SCRAM", free_port(), "SASL_SSL", sasl_mechanism="SCRAM-SHA-512"),
            SecureListener("MTLS", free_port(), "SSL", client_auth="required"),
        ),
        tls=BrokerTls(keystore=pki.broker_keystore, truststore=pki.ca),
        scram_users=((USER, PASSWORD),),
    )
    try:
        broker.start()
        yield SecureBroker(broker, pki)
    finally:
        broker.stop()
        broker.wipe()


def client_security(secure: SecureBroker, kind: str) -> dict[str, Any]:
    """The FRAUD_KAFKA_* settings of a client of the listener ``kind`` (scram or mtls), good or not."""
    pki = secure.pki
    scram = {
        "kafka_bootstrap_servers": secure.listener("SCRAM").bootstrap_servers,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": USER,
        "kafka_sasl_password": PASSWORD,
        "kafka_ssl_cafile": pki.ca,
    }
    mtls = {
        "kafka_bootstrap_servers": secure.listener("MTLS").bootstrap_servers,
        "kafka_security_protocol": "SSL",
        "kafka_ssl_cafile": pki.ca,
        "kafka_ssl_certfile": pki.client_cert,
        "kafka_ssl_keyfile": pki.client_key,
    }
    cases: dict[str, dict[str, Any]] = {
        "scram": scram,
        "scram-wrong-password": {**scram, "kafka_sasl_password": "not-" + PASSWORD},
        "scram-unknown-user": {**scram, "kafka_sasl_username": "mallory"},
        "mtls": mtls,
        "mtls-no-certificate": {**mtls, "kafka_ssl_certfile": None, "kafka_ssl_keyfile": None},
        "mtls-other-ca": {
            **mtls,
            "kafka_ssl_certfile": pki.stranger_cert,
            "kafka_ssl_keyfile": pki.stranger_key,
        },
        "mtls-untrusted-broker": {**mtls, "kafka_ssl_cafile": None},  # the system CAs: not ours
    }
    return cases[kind]


@pytest.fixture
def secure_settings(secure_broker: SecureBroker, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for one listener with topic names and an app id of their own."""

    def factory(kind: str, **overrides: Any) -> Settings:
        unique = f"sec-{kind}-{time.monotonic_ns() % 10**9}"
        return load_settings(
            **client_security(secure_broker, kind),
            app_id=unique,
            topic_transactions=f"{unique}-transactions",
            topic_decisions=f"{unique}-decisions",
            topic_alerts=f"{unique}-alerts",
            topic_labels=f"{unique}-labels",
            topic_dead_letter=f"{unique}-dead-letter",
            topic_partitions=2,
            data_dir=tmp_path / "var",
            worker_web_port=free_port(),
            kafka_connect_timeout_seconds=REFUSAL_TIMEOUT,
            **overrides,
        )

    return factory


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


# --- traffic through each listener -----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["scram", "mtls"])
def test_traffic_flows_through_the_secure_listener(
    kind: str, secure_settings: Callable[..., Settings], workers: list[WorkerProcess], tmp_path: Path
) -> None:
    settings = secure_settings(kind)
    created = ensure_topics(settings)
    assert {settings.topic_transactions, settings.topic_decisions, settings.topic_labels} <= set(created)

    worker = WorkerProcess(settings, tmp_path / "worker.log")
    workers.append(worker)
    worker.wait_ready()

    report = TrafficProducer(settings).run(count=TRANSACTIONS, realtime=False, label_delay=0)
    assert (report.transactions, report.delivery_errors) == (TRANSACTIONS, 0)

    produced = consume_until(
        settings, settings.topic_transactions, lambda got: len(got) >= TRANSACTIONS, timeout=TIMEOUT
    )
    ids = {message["transaction_id"] for message in produced}
    assert len(ids) == TRANSACTIONS

    decisions = consume_until(
        settings,
        settings.topic_decisions,
        lambda got: ids <= {message["transaction_id"] for message in got},
        timeout=TIMEOUT,
    )
    assert {message["transaction_id"] for message in decisions} == ids

    feed = KafkaFeed(settings, metrics=MonitorMetrics())
    with feed:
        assert feed.wait_until(lambda: feed.state.decisions.transaction_count >= TRANSACTIONS, TIMEOUT), (
            f"the monitor's feed read {feed.state.decisions.transaction_count} of {TRANSACTIONS} decisions"
        )
        assert feed.failure is None
    assert feed.state.decisions.transaction_count == TRANSACTIONS

    assert worker.process.poll() is None, worker.log()
    assert PASSWORD not in worker.log()


# --- refused clients -------------------------------------------------------------------------------
REFUSALS = {
    "scram-wrong-password": "Authentication failed",
    "scram-unknown-user": "Authentication failed",
    "mtls-no-certificate": "certificate",
    "mtls-other-ca": "certificate",
    "mtls-untrusted-broker": "certificate verify failed",
}


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_confluent_clients_are_refused_with_a_clear_error(
    kind: str, secure_settings: Callable[..., Settings]
) -> None:
    """Reported as soon as the broker refuses, not after the connect timeout: retrying with the
    same credentials cannot succeed."""
    settings = secure_settings(kind)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match=REFUSALS[kind]) as refused:
        ensure_topics(settings)
    elapsed = time.monotonic() - started
    assert PASSWORD not in str(refused.value)
    assert elapsed < 1.5, f"refusal reported after {elapsed:.1f} s (connect timeout {REFUSAL_TIMEOUT:g} s)"


AIOKAFKA_REASONS = {
    "scram-wrong-password": "SaslAuthenticationFailed",
    "scram-unknown-user": "SaslAuthenticationFailed",
    "mtls-no-certificate": "closed",
    "mtls-other-ca": "closed",
    "mtls-untrusted-broker": "CERTIFICATE_VERIFY_FAILED",
}


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_faust_client_is_refused_with_a_clear_error(
    kind: str, secure_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    """aiokafka, configured by the worker's own faust_credentials(), fails to bootstrap."""
    settings = secure_settings(kind)

    async def start_producer() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            request_timeout_ms=int(REFUSAL_TIMEOUT * 1000),
            **credentials_to_aiokafka_auth(faust_credentials(settings)),
        )
        try:
            await asyncio.wait_for(producer.start(), REFUSAL_TIMEOUT * 2)
        finally:
            await producer.stop()

    caplog.set_level(logging.ERROR, logger="aiokafka")
    with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
        asyncio.run(start_producer())
    # aiokafka logs why; a refused client certificate is only a connection the broker closed.
    assert AIOKAFKA_REASONS[kind] in caplog.text, caplog.text
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize("kind", ["scram-wrong-password", "mtls-no-certificate"])
def test_refused_worker_exits_with_the_reason(
    kind: str, secure_settings: Callable[..., Settings], workers: list[WorkerProcess], tmp_path: Path
) -> None:
    settings = secure_settings(kind)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    workers.append(worker)
    deadline = time.monotonic() + REFUSAL_TIMEOUT + 60
    while worker.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.process.poll() is not None, f"the refused worker is still running:\n{worker.log()}"
    log = worker.log()
    assert worker.process.returncode == 2, log
    assert "fraud: cannot reach Kafka" in log and REFUSALS[kind] in log, log
    assert "Traceback" not in log, log
    assert PASSWORD not in log
