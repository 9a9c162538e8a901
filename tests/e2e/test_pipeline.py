"""The pipeline end to end: a real worker process on the real broker."""

from __future__ import annotations

import base64
import copy
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.contracts.json_schemas import load_schema, validator
from pipeline.tools.simulator.generator import FraudRates, TrafficGenerator
from tests.support import consume_until, produce

pytestmark = pytest.mark.kafka


def simulated(count: int, seed: int = 3, start: float | None = None, **fraud: float) -> list[dict[str, Any]]:
    """``count`` simulated transactions from ``start`` (default: 10 minutes ago)."""
    start = datetime.now(UTC).timestamp() - 600 if start is None else start
    rates = FraudRates(**fraud) if fraud else FraudRates(0.02, 0.02, 0.01)
    generator = TrafficGenerator(
        seed=seed, customers=300, merchants=60, rate=20, fraud=rates, start=start, run_id=f"e2e{seed}"
    )
    return [item.transaction for item in generator.events(count=count)]


def metric_value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


@pytest.mark.parametrize("worker_input", ["faust", "native"])
def test_every_transaction_gets_one_valid_decision_and_alerts_only_for_review_or_block(
    make_settings, start_worker, worker_input: str
) -> None:
    settings = make_settings(worker_input=worker_input)
    transactions = simulated(400)
    # A zero-amount authorisation (a card check) is real traffic: decided like any other.
    transactions[7] = {**transactions[7], "amount": 0.0}
    ids = {t["transaction_id"] for t in transactions}
    worker = start_worker(settings)
    produce(settings, settings.topic_transactions, ((t["card_token"], t) for t in transactions))

    decisions = consume_until(
        settings, settings.topic_decisions, lambda got: ids <= {d["transaction_id"] for d in got}
    )
    check_decision = validator("decision")
    for decision in decisions:
        check_decision(decision)
    by_id = {d["transaction_id"]: d for d in decisions}
    assert set(by_id) == ids
    assert len(decisions) == len(ids), "one decision per transaction, no duplicates on a clean run"
    assert by_id[transactions[7]["transaction_id"]]["amount"] == 0.0

    flagged = {i for i, d in by_id.items() if d["decision"] in ("review", "block")}
    assert flagged, "the injected fraud must raise some alerts"
    alerts = consume_until(
        settings, settings.topic_alerts, lambda got: flagged <= {a["alert_id"] for a in got}
    )
    check_alert = validator("alert")
    for alert in alerts:
        check_alert(alert)
        assert by_id[alert["transaction_id"]]["decision"] == alert["decision"]
        assert alert["reasons"], "every alert says why"
    assert {a["alert_id"] for a in alerts} == flagged

    metrics = worker.metrics()
    assert metric_value(metrics, "fraud_transactions_consumed_total") == len(transactions)
    outcomes = Counter(d["decision"] for d in decisions)
    for outcome, count in outcomes.items():
        assert metric_value(metrics, "fraud_decisions_total", decision=outcome) == count
    assert metric_value(metrics, "fraud_scoring_latency_seconds_count") == len(transactions)
    produced = metric_value(metrics, "fraud_produced_messages_total", topic=settings.topic_decisions)
    assert produced == len(transactions)
    assert metric_value(metrics, "fraud_produce_failures_total") == 0
    # Where its memory is: the tables' record caches hold the entities just seen.
    assert metric_value(metrics, "fraud_worker_memory_bytes", part="record_cache") > 0
    assert metric_value(metrics, "fraud_worker_memory_bytes", part="malloc_in_use") > 0
    assert 'fraud_worker_memory_bytes{part="rocksdb"}' in metrics
    alert_types = Counter(by_id[i]["fraud_type"] for i in flagged)
    for fraud_type, count in alert_types.items():
        assert metric_value(metrics, "fraud_alerts_total", fraud_type=fraud_type) == count


def test_malformed_messages_are_dead_lettered_with_a_reason_and_the_stream_goes_on(
    make_settings, start_worker
) -> None:
    settings = make_settings(topic_partitions=1)
    good = simulated(6, seed=5)
    example = copy.deepcopy(load_schema("transaction")["examples"][0])
    negative = {**example, "transaction_id": "bad-amount", "amount": -5}
    missing = {k: v for k, v in example.items() if k != "card_token"}
    pan = {**example, "transaction_id": "has-pan", "customer_id": "4111111111111111"}
    bad: list[tuple[str | None, bytes | dict[str, Any]]] = [
        ("k1", b"\xff\xfe not utf-8"),
        ("k2", b"{not json"),
        ("k3", b"[1, 2, 3]"),
        ("k4", negative),
        ("k5", missing),
        ("k6", pan),
    ]
    records: list[tuple[str | None, bytes | dict[str, Any]]] = []
    for index, txn in enumerate(good):  # interleave: every bad message has valid ones around it
        records.append((txn["card_token"], txn))
        records.append(bad[index])
    start_worker(settings)
    produce(settings, settings.topic_transactions, records)

    ids = {t["transaction_id"] for t in good}
    decisions = consume_until(
        settings, settings.topic_decisions, lambda got: ids <= {d["transaction_id"] for d in got}
    )
    assert {d["transaction_id"] for d in decisions} == ids
    dead = consume_until(settings, settings.topic_dead_letter, lambda got: len(got) >= len(bad))
    assert len(dead) == len(bad)
    for envelope in dead:
        validator("dead_letter")(envelope)
        assert envelope["source_topic"] == settings.topic_transactions
        assert envelope["component"] == "validate"
    codes = [d["reason_code"] for d in sorted(dead, key=lambda d: d["source_offset"])]
    assert codes == [
        "not_utf8",
        "not_json",
        "not_an_object",
        "schema_violation",
        "schema_violation",
        "card_number_detected",
    ]
    by_code = {d["source_key_base64"]: d for d in dead}
    amount_error = by_code[base64.b64encode(b"k4").decode()]
    assert amount_error["field"] == "amount" and "bigger than or equal to 0" in amount_error["reason"]
    assert base64.b64decode(by_code[base64.b64encode(b"k2").decode()]["payload_base64"]) == b"{not json"
    masked = base64.b64decode(by_code[base64.b64encode(b"k6").decode()]["payload_base64"])
    assert b"4111111111111111" not in masked and b"1111" in masked, "the card number is masked in the DLQ"


def pattern(index: int, *, fraud: bool) -> dict[str, Any]:
    """A transaction of a clear fraud pattern (large, abroad, new device, changed contact) or a normal one."""
    example = copy.deepcopy(load_schema("transaction")["examples"][0])
    at = datetime.now(UTC) - timedelta(minutes=30) + timedelta(seconds=index)
    example.update(
        transaction_id=f"learn-{'f' if fraud else 'l'}-{index}",
        event_time=at.isoformat(),
        card_token=f"tok_learn{index:08d}",
        customer_id=f"cust-learn-{index}",
        terminal_id=f"t-learn-{index % 50}",
        amount=950.0 if fraud else 25.0,
        country="BR" if fraud else "DE",
        device_id=f"dev-new-{index}" if fraud else f"dev-home-{index}",
        hours_since_contact_change=3.0 if fraud else None,
        shipping_matches_billing=not fraud,
    )
    return example


def test_labels_make_the_model_learn(make_settings, start_worker) -> None:
    settings = make_settings(model_min_labels=10_000)  # keep decisions rule-only; watch model_score
    probe_fraud, probe_legit = pattern(401, fraud=True), pattern(402, fraud=False)
    worker = start_worker(settings)
    produce(settings, settings.topic_transactions, [(t["card_token"], t) for t in (probe_fraud, probe_legit)])
    before = consume_until(settings, settings.topic_decisions, lambda got: len(got) >= 2)
    assert {d["model_score"] for d in before} == {0.0}, "an untrained model scores nothing"

    training = [pattern(i, fraud=i % 4 == 0) for i in range(400)]
    produce(settings, settings.topic_transactions, [(t["card_token"], t) for t in training])
    consume_until(settings, settings.topic_decisions, lambda got: len(got) >= 402)
    labels = [
        (
            t["card_token"],
            {
                "schema_version": 1,
                "transaction_id": t["transaction_id"],
                "card_token": t["card_token"],
                "is_fraud": t["amount"] > 100,
                "fraud_type": "identity_theft" if t["amount"] > 100 else None,
                "source": "chargeback" if t["amount"] > 100 else "settlement",
                "analyst": None,
                "comment": None,
                "labelled_at": datetime.now(UTC).isoformat(),
            },
        )
        for t in training
    ]
    labels.append(
        ("tok_unknown00", {**labels[0][1], "transaction_id": "never-scored", "card_token": "tok_unknown00"})
    )
    produce(settings, settings.topic_labels, labels)
    frauds = sum(1 for t in training if t["amount"] > 100)

    def labels_handled() -> float:
        metrics = worker.metrics()
        return sum(
            metric_value(metrics, "fraud_labels_total", outcome=o) for o in ("learnt", "skipped", "unknown")
        )

    deadline = time.monotonic() + 60
    while labels_handled() < len(labels) and time.monotonic() < deadline:
        time.sleep(0.5)
    metrics = worker.metrics()
    assert metric_value(metrics, "fraud_labels_total", outcome="unknown") == 1
    assert metric_value(metrics, "fraud_labels_total", outcome="learnt") >= frauds

    again_fraud = {**probe_fraud, "transaction_id": "learn-probe-fraud-2", "card_token": "tok_learnprobe1"}
    again_legit = {**probe_legit, "transaction_id": "learn-probe-legit-2", "card_token": "tok_learnprobe2"}
    produce(settings, settings.topic_transactions, [(t["card_token"], t) for t in (again_fraud, again_legit)])
    after = consume_until(
        settings,
        settings.topic_decisions,
        lambda got: {"learn-probe-fraud-2", "learn-probe-legit-2"} <= {d["transaction_id"] for d in got},
    )
    scores = {d["transaction_id"]: d for d in after}
    fraud_score = scores["learn-probe-fraud-2"]["model_score"]
    legit_score = scores["learn-probe-legit-2"]["model_score"]
    assert fraud_score > 0.5 > legit_score, (fraud_score, legit_score)
    assert scores["learn-probe-fraud-2"]["model_version"].endswith(
        f"@{int(metric_value(metrics, 'fraud_model_labels_learnt'))}"
    )
