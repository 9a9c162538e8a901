"""Reaching the cluster with confluent-kafka's AdminClient, for every process's start-up check
(worker, monitor, simulator, topic creation): librdkafka's errors become one readable line.

An unreachable broker is retried until the connect timeout (it may be starting); a broker that
refuses the client (authentication, TLS certificates) is reported as soon as it has refused:
retrying with the same credentials cannot succeed.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from pipeline.config import Settings

ATTEMPT_SECONDS = 0.2
"""How long one metadata request may wait before the errors collected so far are looked at."""

_REFUSALS = {
    KafkaError._AUTHENTICATION,
    KafkaError._SSL,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}
_TLS_WORDS = ("ssl", "certificate", "handshake")


class BrokerUnavailableError(RuntimeError):
    """No broker of the configured cluster answered in time, or it refused the client; the
    message names the address and the reason."""


def admin_client(settings: Settings, errors: list[KafkaError]) -> AdminClient:
    """An admin client whose librdkafka errors are collected in ``errors`` instead of printed."""
    return AdminClient(settings.confluent_config(log_level=0, error_cb=errors.append))


def refusal(errors: list[KafkaError]) -> KafkaError | None:
    """The first error by which a broker refused the client (authentication, authorisation, TLS),
    or None when the errors are only of reaching it."""
    for error in errors:
        text = error.str().lower()
        if error.code() in _REFUSALS or (
            error.code() == KafkaError._TRANSPORT and any(word in text for word in _TLS_WORDS)
        ):
            return error
    return None


def cluster_topic_names(
    admin: AdminClient, errors: list[KafkaError], settings: Settings, timeout: float
) -> set[str]:
    """The cluster's topic names. Raises BrokerUnavailableError when no broker answered within
    ``timeout`` seconds, or at once when a broker refused the client."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            remaining = max(deadline - time.monotonic(), 0.01)
            return set(admin.list_topics(timeout=min(ATTEMPT_SECONDS, remaining)).topics)
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb: the errors say why (refused, unknown host, auth)
            refused = refusal(errors)
            if refused is not None:
                raise BrokerUnavailableError(
                    f"cannot reach Kafka at {settings.bootstrap_servers}: the broker refused the client "
                    f"({refused.str()}); check the FRAUD_KAFKA_SASL_* / FRAUD_KAFKA_SSL_* settings"
                ) from None
            if time.monotonic() < deadline:
                continue
            causes = [e.str() for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN]
            cause = causes[0] if causes else exc.args[0].str()
            raise BrokerUnavailableError(
                f"cannot reach Kafka at {settings.bootstrap_servers} within {timeout:g} s ({cause}); "
                "check FRAUD_KAFKA_BOOTSTRAP_SERVERS / KAFKA_BOOTSTRAP_SERVERS"
            ) from None


def check_broker(settings: Settings, timeout: float | None = None) -> None:
    """Raise BrokerUnavailableError unless the cluster answers within ``timeout`` seconds
    (default ``settings.kafka_connect_timeout_seconds``) or as soon as it refuses the client."""
    errors: list[KafkaError] = []
    cluster_topic_names(
        admin_client(settings, errors), errors, settings, timeout or settings.kafka_connect_timeout_seconds
    )
