"""The input read natively (``FRAUD_WORKER_INPUT=native``, pipeline/worker/input_reader.py) against
the real broker: a deployment that switches to it from Faust's input neither skips nor decides
again what the Faust worker read, what it refuses is dead-lettered, and it commits what it handled
in its own group."""

from __future__ import annotations

import base64
from collections import Counter

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from pipeline.worker.input_reader import input_group
from tests.e2e.test_pipeline import simulated
from tests.support import consume_until, produce

pytestmark = pytest.mark.kafka

PAN = "4111111111111111"
"""A card number in clear (a test number that passes the Luhn check)."""


def _committed(settings, group: str) -> dict[int, int]:
    reader = Consumer(settings.confluent_config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        asked = [TopicPartition(settings.topic_transactions, p) for p in range(settings.topic_partitions)]
        return {tp.partition: tp.offset for tp in reader.committed(asked, timeout=10)}
    finally:
        reader.close()


def test_switching_to_the_native_input_continues_where_faust_stopped(make_settings, start_worker) -> None:
    settings = make_settings()
    first, second = simulated(240, seed=11), simulated(240, seed=12)
    first_ids = {t["transaction_id"] for t in first}
    worker = start_worker(settings)
    produce(settings, settings.topic_transactions, ((t["card_token"], t) for t in first))
    consume_until(
        settings, settings.topic_decisions, lambda got: first_ids <= {d["transaction_id"] for d in got}
    )
    worker.stop()  # a clean stop: Faust commits what it read
    assert sum(max(o, 0) for o in _committed(settings, settings.app_id).values()) == len(first)

    native = settings.model_copy(update={"worker_input": "native"})
    start_worker(native)
    refused = [b"{not json", orjson.dumps({**second[0], "amount": "a lot"}), orjson.dumps({"card": PAN})]
    records = [(t["card_token"], orjson.dumps(t)) for t in second]
    produce(
        settings, settings.topic_transactions, [*records[:100], *((None, r) for r in refused), *records[100:]]
    )
    every = first_ids | {t["transaction_id"] for t in second}
    decisions = consume_until(
        settings, settings.topic_decisions, lambda got: every <= {d["transaction_id"] for d in got}
    )
    counts = Counter(d["transaction_id"] for d in decisions)
    assert set(counts) == every
    assert max(counts.values()) == 1, "the native reader started where Faust's group had stopped"
    # What it refuses is dead-lettered with the reason, the card number masked.
    dead = consume_until(settings, settings.topic_dead_letter, lambda got: len(got) >= len(refused))
    assert len(dead) == len(refused)
    assert {d["component"] for d in dead} == {"validate"}
    assert {d["source_topic"] for d in dead} == {settings.topic_transactions}
    payloads = b"".join(base64.b64decode(d["payload_base64"]) for d in dead)
    assert b"a lot" in payloads and PAN.encode() not in payloads and PAN not in str(dead)
    # Its own group commits what it handled (at most a second after each batch).
    handled = len(first) + len(second) + len(refused)
    consume_until(
        settings,
        settings.topic_decisions,
        lambda _: (
            sum(max(o, 0) for o in _committed(settings, input_group(settings.app_id)).values()) == handled
        ),
        timeout=30,
    )
