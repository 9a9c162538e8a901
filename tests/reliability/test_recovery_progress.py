"""Table recovery you can see (issue 22, item 3), on a real broker and real worker processes: a
worker whose local state is gone restores its tables from their changelogs, logs its progress per
table, answers /readyz with 503 and the figures until it is ready, and its gauge
``fraud_table_recovery_remaining_records`` falls to 0. Restored in bulk (bulk_restore.py), the
tables hold the same history."""

from __future__ import annotations

import shutil
import signal
import time

import pytest
import requests
from confluent_kafka import Producer

from pipeline.worker.topics import changelog_topic_names
from tests.e2e.test_pipeline import metric_value, simulated
from tests.e2e.test_restart import decisions_for, transaction
from tests.support import abroad_card_present, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

DELETIONS = 15_000  # pending entries written and deleted long ago: what a long history leaves


def _changelog_history(settings, topic: str, count: int) -> None:
    """``count`` deletions of long-gone keys on ``topic``, over its partitions: records a worker
    restoring the table must read, as a history of pending labels leaves them."""
    producer = Producer(settings.producer_config(**{"linger.ms": 20}))
    for i in range(count):
        while True:
            try:
                producer.produce(topic, None, f'"gone-{i}"'.encode(), partition=i % settings.topic_partitions)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(30) == 0


def _remaining(worker) -> dict[str, float]:
    text = requests.get(f"{worker.url}/metrics", timeout=2).text
    tables = ("terminal-rows", "merchant-rows", "device-rows", "customer-rows", "card-rows", "pending-labels")
    return {t: metric_value(text, "fraud_table_recovery_remaining_records", table=t) for t in tables}


def test_a_worker_without_its_state_shows_its_recovery_until_ready(make_settings, start_worker) -> None:
    # Faust's own recovery (bulk restore off): slow enough to be watched.
    settings = make_settings(worker_recovery_log_seconds=1.0, worker_bulk_restore_min_records=10**9)
    card = "tok_recoverybulk01"
    abroad = abroad_card_present(card)
    history = [*simulated(800), transaction("bulk-1", 20, merchant_id="m-1", terminal_id="t-1", **abroad)]
    first = start_worker(settings)
    produce(settings, settings.topic_transactions, [(t["card_token"], t) for t in history])
    decisions_for(settings, {t["transaction_id"] for t in history})
    pending_changelog = changelog_topic_names(settings)[-1]
    assert pending_changelog.endswith("pending-labels-changelog")
    _changelog_history(settings, pending_changelog, DELETIONS)
    time.sleep(2)  # a commit or two: the changelogs hold the tables' last changes
    first.stop(signal.SIGKILL)
    shutil.rmtree(settings.data_dir / settings.app_id)  # its disk is gone

    worker = start_worker(settings, wait=False)
    recovering: list[dict] = []
    gauges: list[float] = []
    deadline = time.monotonic() + 120
    while True:
        assert worker.process.poll() is None and time.monotonic() < deadline, worker.log()
        try:
            answer = requests.get(f"{worker.url}/readyz", timeout=1)
        except requests.RequestException:
            time.sleep(0.2)
            continue
        body = answer.json()
        if answer.status_code == 200:
            break
        assert answer.status_code == 503, body
        if body["state"] == "recovering":
            recovering.append(body["recovery"])
            gauges.append(sum(_remaining(worker).values()))
        time.sleep(0.2)

    assert recovering, f"/readyz never answered 503 with the recovery's figures:\n{worker.log()}"
    middle = recovering[len(recovering) // 2]
    assert middle["remaining"] > 0 and middle["restored"] + middle["remaining"] == middle["total"]
    assert middle["tables"]["pending-labels"]["total"] >= DELETIONS
    assert max(gauges) > 0, "the gauge showed records left while recovering"
    recovered = body["recovery"]
    assert body["ready"] and recovered["state"] == "recovered"
    assert recovered["remaining"] == 0 and recovered["restored"] == recovered["total"] >= DELETIONS
    assert recovered["tables"]["card-rows"]["total"] > 0, "the cards' history was restored too"
    assert _remaining(worker) == dict.fromkeys(_remaining(worker), 0.0)
    worker.log()  # flushes it
    log = worker.log_path.read_text(errors="replace")
    assert "table recovery: pending-labels" in log, log
    assert "table recovery: all tables" in log and "s left" in log, log
    assert f"table recovery done: {recovered['total']:,} records in" in log, log
    print(f"recovered {recovered['total']:,} records in {recovered['seconds']} s; {len(recovering)} 503s")

    # The same changelogs restored in bulk: ready at once, and the card's history is back.
    worker.stop(signal.SIGKILL)
    shutil.rmtree(settings.data_dir / settings.app_id)
    bulk = start_worker(settings.model_copy(update={"worker_bulk_restore_min_records": 1}))
    ready = requests.get(f"{bulk.url}/readyz", timeout=2).json()["recovery"]
    assert ready["total"] >= recovered["total"] and ready["restored"] == ready["total"], ready
    bulk.log()
    log = bulk.log_path.read_text(errors="replace")
    assert "restored in bulk in" in log, log
    second = transaction("bulk-2", 10, merchant_id="m-2", terminal_id="t-2", **abroad)
    produce(settings, settings.topic_transactions, [(card, second)])
    after = decisions_for(settings, {"bulk-2"})["bulk-2"]
    assert "UT-burst-abroad" in after["rule_hits"], (after, bulk.log())
    print(f"in bulk: {ready['total']:,} records in {ready['seconds']} s")
