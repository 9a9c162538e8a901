"""Block/allow lists end to end on the real broker with two real workers: an analyst's change
through the monitor's server-side path applies to the next transactions on every worker without a
restart, a viewer is refused, malformed updates are dead-lettered once, and a fresh monitor
rebuilds the lists from the compacted topic."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from monitor.lists_feed import ListFeed, ListPublisher
from monitor.state.shared_lists import SharedLists, entry_id
from monitor.users import User
from monitor.views.lists import change_list
from pipeline.contracts.json_schemas import validator
from pipeline.worker.batching import partition_of
from tests.conftest import free_port
from tests.e2e.test_pipeline import metric_value
from tests.e2e.test_restart import transaction
from tests.support import consume_until, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ALICE = User("alice", "analyst")
VICTOR = User("victor", "viewer")
REASON = "Customer reported the card stolen"


def _cards_on_both_partitions(partitions: int) -> tuple[str, str]:
    """Two card tokens whose transactions are scored on different partitions (so by different workers)."""
    by_partition: dict[int, str] = {}
    for i in range(1000):
        token = f"tok_listcard{i:04d}"
        by_partition.setdefault(partition_of(token, partitions), token)
        if len(by_partition) == partitions:
            break
    return by_partition[0], by_partition[1]


def _decide(settings, txn: dict[str, Any]) -> dict[str, Any]:
    produce(settings, settings.topic_transactions, [(txn["card_token"], txn)])
    got = consume_until(settings, settings.topic_decisions,
                        lambda m: txn["transaction_id"] in {d["transaction_id"] for d in m})  # fmt: skip
    return next(d for d in got if d["transaction_id"] == txn["transaction_id"])


def _wait_metric(workers, name: str, at_least: int, **labels: str) -> None:
    """Every worker's ``name`` reaches ``at_least`` (each worker applies every list update)."""
    deadline = time.monotonic() + 30
    for worker in workers:
        while metric_value(worker.metrics(), name, **labels) < at_least:
            assert time.monotonic() < deadline, f"{name}{labels} below {at_least}:\n{worker.log()}"
            time.sleep(0.2)


def test_list_changes_apply_to_the_next_transactions_on_every_worker(make_settings, start_worker) -> None:
    settings = make_settings()
    admin = AdminClient(settings.confluent_config())
    [config] = admin.describe_configs([ConfigResource("topic", settings.topic_lists)]).values()
    assert config.result()["cleanup.policy"].value == "compact"

    card_x, card_y = _cards_on_both_partitions(settings.topic_partitions)
    # two workers of one app: each needs its own HTTP port (its /metrics, its state folder)
    workers = [
        start_worker(settings),
        start_worker(settings.model_copy(update={"worker_web_port": free_port()})),
    ]
    pids = [w.process.pid for w in workers]
    lists, publisher = SharedLists(), ListPublisher(settings)

    assert _decide(settings, transaction("lists-1", 5, card_token=card_x))["decision"] == "allow"

    # an analyst blocks X and Y through the monitor's server-side path
    for card in (card_x, card_y):
        feedback = change_list(lists, publisher.publish, ALICE, "add", list_name="block", kind="card",
                               value=card, reason=REASON)  # fmt: skip
        assert feedback.text.startswith("Recorded: card tok_list"), feedback.text
    _wait_metric(workers, "fraud_list_updates_total", 2, outcome="applied")
    for tx, card in (("lists-2", card_x), ("lists-3", card_y)):
        blocked = _decide(settings, transaction(tx, 4, card_token=card))
        assert (blocked["decision"], blocked["score"]) == ("block", 1.0), blocked
        assert blocked["reasons"] == [f"On the block list of cards: {REASON} (by alice)"]
        assert blocked["rule_hits"] == ["blocklist-cards"]
        validator("decision")(blocked)
    # each worker scored one of the two cards (one partition each): both applied the lists
    for worker in workers:
        assert metric_value(worker.metrics(), "fraud_decisions_total", decision="block") >= 1, worker.log()
    alerts = consume_until(
        settings, settings.topic_alerts, lambda m: {"lists-2", "lists-3"} <= {a["transaction_id"] for a in m}
    )
    assert all(a["reasons"] == [f"On the block list of cards: {REASON} (by alice)"] for a in alerts)

    # a viewer may not lift it
    remove_x = entry_id(f"block:card:{card_x}")
    refused = change_list(lists, publisher.publish, VICTOR, "remove", remove_id=remove_x)
    assert refused.text == "Not allowed: victor is a viewer: only analysts may change the lists."
    # the analyst removes X: allowed again; Y stays blocked
    removed = change_list(lists, publisher.publish, ALICE, "remove", remove_id=remove_x)
    assert removed.text.startswith("Recorded: card tok_list"), removed.text
    _wait_metric(workers, "fraud_list_updates_total", 3, outcome="applied")
    assert _decide(settings, transaction("lists-4", 3, card_token=card_x))["decision"] == "allow"
    assert _decide(settings, transaction("lists-5", 2, card_token=card_y))["decision"] == "block"
    publisher.close()

    updates = consume_until(settings, settings.topic_lists, lambda m: len(m) >= 3)
    assert sorted((u["value"], u["action"], u["who"]) for u in updates) == sorted(
        [(card_x, "add", "alice"), (card_x, "remove", "alice"), (card_y, "add", "alice")]
    ), "the viewer's attempt published nothing"
    for update in updates:
        validator("list_update")(update)

    # malformed updates: dead-lettered once each (not once per worker), and the lists unchanged
    good = dict(updates[0])
    produce(settings, settings.topic_lists, [
        (f"block:card:{card_x}", b"{not json"),
        (f"block:card:{card_x}", {**good, "value": "tok_someoneelse01"}),
        ("blacklist:card:x", good),
        (f"block:card:{card_x}", {**good, "action": "ban"}),
    ])  # fmt: skip
    _wait_metric(workers, "fraud_list_updates_total", 4, outcome="refused")
    dead = consume_until(
        settings,
        settings.topic_dead_letter,
        lambda m: sum(d["source_topic"] == settings.topic_lists for d in m) >= 4,
    )
    from_lists = [d for d in dead if d["source_topic"] == settings.topic_lists]
    assert sorted((d["reason_code"], d["field"]) for d in from_lists) == [
        ("not_json", None),
        ("schema_violation", "action"),
        ("schema_violation", "key"),
        ("schema_violation", "key"),
    ]
    assert {d["component"] for d in from_lists} == {"check-list-updates"}
    assert len({(d["source_partition"], d["source_offset"]) for d in from_lists}) == 4
    for d in from_lists:
        validator("dead_letter")(d)
    assert _decide(settings, transaction("lists-6", 1, card_token=card_x))["decision"] == "allow"
    assert _decide(settings, transaction("lists-7", 1, card_token=card_y))["decision"] == "block"
    for worker, pid in zip(workers, pids, strict=True):
        assert worker.process.poll() is None and worker.process.pid == pid, worker.log()

    # a monitor started now rebuilds the lists from the compacted topic
    with ListFeed(settings) as feed:
        assert feed.wait_ready(30), feed.failure
        assert [(e.list, e.kind, e.value, e.who) for e in feed.lists.entries()] == [
            ("block", "card", card_y, "alice")
        ]
        # a tombstone removes an entry too: on every worker and in the monitor
        producer = Producer(settings.producer_config())
        producer.produce(settings.topic_lists, value=None, key=f"block:card:{card_y}".encode())
        assert producer.flush(30) == 0
        _wait_metric(workers, "fraud_list_updates_total", 4, outcome="applied")
        assert _decide(settings, transaction("lists-8", 1, card_token=card_y))["decision"] == "allow"
        deadline = time.monotonic() + 30
        while feed.lists.entries():
            assert time.monotonic() < deadline, feed.lists.entries()
            time.sleep(0.1)
    for worker in workers:
        assert worker.process.poll() is None, worker.log()
