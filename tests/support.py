"""Helpers for tests that talk to the real broker: produce, and consume until a condition holds."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from pipeline.config import REPO_ROOT, Settings


def abroad_card_present(card_token: str) -> dict[str, Any]:
    """Transaction fields of a card-present payment in Brazil with a German card: one alone is
    ordinary, a second within hours fires the rule UT-burst-abroad (so it shows the card's history)."""
    return {
        "card_token": card_token,
        "country": "BR",
        "card_country": "DE",
        "channel": "card_present",
        "device_id": None,
        "ip_address": None,
        "shipping_matches_billing": None,
    }


def produce(
    settings: Settings, topic: str, records: Iterable[tuple[str | None, bytes | dict[str, Any]]]
) -> int:
    """Produce (key, value) records and wait until every one is acknowledged."""
    producer = Producer(settings.producer_config())
    errors: list[str] = []
    count = 0

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            errors.append(str(error))

    for key, value in records:
        payload = value if isinstance(value, bytes) else orjson.dumps(value)
        while True:
            try:
                producer.produce(topic, payload, key.encode() if key else None, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
    remaining = producer.flush(30)
    assert not errors and not remaining, f"delivery failed: {errors[:3]}, {remaining} undelivered"
    return count


def consume_until(
    settings: Settings,
    topic: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 90.0,
    decode: Callable[[bytes], Any] = orjson.loads,
) -> list[dict[str, Any]]:
    """Read ``topic`` from the start, decoding JSON (or with ``decode``), until ``done(messages)``
    or the timeout."""
    consumer = Consumer(
        settings.confluent_config(
            **{
                "group.id": f"test-reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([topic])
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error():
                    continue
                messages.append(decode(message.value()))
            if done(messages):
                return messages
    finally:
        consumer.close()
    raise AssertionError(f"condition not met on {topic} within {timeout}s; got {len(messages)} messages")


def trace_ids(settings: Settings, topics: Iterable[str], ids: Iterable[str], timeout: float = 20.0) -> str:
    """Where each of ``ids`` appears in ``topics`` (read whole, values searched as bytes), and the
    worker group's committed offsets of those partitions: a lost transaction's trail through the
    stages, for a failing test's message."""
    from confluent_kafka import TopicPartition

    wanted = {i.encode(): i for i in ids}
    found: dict[str, list[str]] = {i: [] for i in wanted.values()}
    topics = list(topics)
    consumer = Consumer(settings.confluent_config(**{
        "group.id": f"test-trace-{uuid.uuid4().hex}", "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }))  # fmt: skip
    partitions: list[TopicPartition] = []
    try:
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            partitions += [TopicPartition(topic, p) for p in meta.partitions]
        ends = {}
        for tp in partitions:
            ends[(tp.topic, tp.partition)] = consumer.get_watermark_offsets(tp, timeout=10)[1]
        consumer.assign([TopicPartition(tp.topic, tp.partition, 0) for tp in partitions])
        left = {key for key, end in ends.items() if end > 0}
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                if message.error():
                    continue
                key = (message.topic(), message.partition())
                value = message.value() or b""
                for needle, name in wanted.items():
                    if needle in value:
                        place = f"{key[0]}[{key[1]}]@{message.offset()}"
                        found[name].append(f"{place} t={message.timestamp()[1]}")
                if message.offset() + 1 >= ends[key]:
                    left.discard(key)
    finally:
        consumer.close()
    group = Consumer(settings.confluent_config(**{"group.id": settings.app_id, "enable.auto.commit": False}))
    try:
        committed = group.committed(partitions, timeout=10)
    finally:
        group.close()
    offsets = ", ".join(f"{tp.topic}[{tp.partition}]={tp.offset}" for tp in committed)
    trail = "\n".join(f"  {name}: {', '.join(places) or 'nowhere'}" for name, places in found.items())
    return f"trail:\n{trail}\ncommitted offsets of {settings.app_id}: {offsets}\nends: {ends}"


def decisions_for_every_id(
    settings: Settings, ids: set[str], logs: dict[str, Any], timeout: float = 180.0
) -> list[dict[str, Any]]:
    """Read the decisions topic until every id of ``ids`` has a decision and return them all
    (duplicates included). Otherwise fail saying which ids were lost, where each went (the input,
    stage and dead-letter topics: ``trace_ids``) and the workers' logs (``logs``: name -> a
    WorkerProcess of tests/conftest.py)."""
    from pipeline.worker.topics import internal_topic_names

    read_so_far: list[dict[str, Any]] = []

    def all_decided(got: list[dict[str, Any]]) -> bool:
        read_so_far[:] = got
        return ids <= {d["transaction_id"] for d in got}

    try:
        return consume_until(settings, settings.topic_decisions, all_decided, timeout=timeout)
    except AssertionError:
        missing = sorted(ids - {d["transaction_id"] for d in read_so_far})
        topics = [settings.topic_transactions, *internal_topic_names(settings), settings.topic_dead_letter]
        said = "\n".join(
            f"{name} (running: {w.process.poll() is None}; {w.log_path}):\n{w.log()}"
            for name, w in logs.items()
        )
        raise AssertionError(
            f"{len(missing)} of {len(ids)} transactions never decided (first: {missing[:5]})\n"
            f"{trace_ids(settings, topics, missing[:5])}\n{said}"
        ) from None


class SteadyLoad:
    """Produce transactions to the input topic at a steady ``rate`` per second, in a thread, keyed
    by card (as upstream does); ``acknowledged`` holds the ids the broker acknowledged."""

    def __init__(self, settings: Settings, transactions: list[dict[str, Any]], rate: float) -> None:
        self.settings, self.transactions, self.rate = settings, transactions, rate
        self.acknowledged: list[str] = []
        self.errors: list[Any] = []
        self.thread = threading.Thread(target=self._produce, daemon=True)

    def start(self) -> SteadyLoad:
        self.thread.start()
        return self

    def running(self) -> bool:
        return self.thread.is_alive()

    def finish(self, timeout: float = 90.0) -> set[str]:
        """Wait for the end of the load; the ids produced (all of them acknowledged)."""
        self.thread.join(timeout)
        assert not self.errors and len(self.acknowledged) == len(self.transactions), (
            f"{len(self.acknowledged)} of {len(self.transactions)} acknowledged; errors: {self.errors[:3]}"
        )
        return set(self.acknowledged)

    def _produce(self) -> None:
        producer = Producer(self.settings.producer_config())

        def on_delivery(error: Any, message: Any) -> None:
            if error:
                self.errors.append(error)
            else:
                self.acknowledged.append(orjson.loads(message.value())["transaction_id"])

        started = time.monotonic()
        for index, txn in enumerate(self.transactions):
            delay = started + index / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            producer.produce(self.settings.topic_transactions, orjson.dumps(txn), txn["card_token"].encode(),
                             on_delivery=on_delivery)  # fmt: skip
            producer.poll(0)
        producer.flush(30)


def wait_for_group_members(settings: Settings, count: int, timeout: float = 90.0) -> None:
    """Wait until the worker group (``settings.app_id``) has ``count`` members in a stable group."""
    from pipeline.kafka.admin import admin_client

    admin = admin_client(settings, [])
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            group = admin.describe_consumer_groups([settings.app_id])[settings.app_id].result(timeout=5)
            seen = (len(group.members), str(group.state))
            if seen[0] == count and "STABLE" in seen[1]:
                return
        except Exception as exc:  # the group may not exist yet
            seen = (None, repr(exc))
        time.sleep(0.2)
    raise AssertionError(f"the group never had {count} stable members within {timeout}s: {seen}")


def start_demo(env: dict[str, str], output: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`fraud demo` started with ``env``, its output in ``output``; returns it with the monitor's URL
    once printed (within 180 s, else it is stopped and the test fails with its output)."""
    with output.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "demo"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert demo.poll() is None, output.read_text()
        match = re.search(r"Fraud monitor: (http://\S+)", output.read_text())
        if match:
            return demo, match.group(1)
        time.sleep(0.5)
    demo.send_signal(signal.SIGINT)
    raise AssertionError(f"the demo never printed the monitor's URL:\n{output.read_text()}")
