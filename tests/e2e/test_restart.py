"""A worker's state survives its restart: card history from the changelog, the model from its snapshot."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.contracts.json_schemas import load_schema
from tests.e2e.test_pipeline import metric_value
from tests.support import abroad_card_present, consume_until, produce

pytestmark = pytest.mark.kafka


def transaction(transaction_id: str, minutes_ago: float, **fields: Any) -> dict[str, Any]:
    txn = copy.deepcopy(load_schema("transaction")["examples"][0])
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    txn.update(transaction_id=transaction_id, event_time=at.isoformat(), **fields)
    return txn


def label(txn: dict[str, Any], is_fraud: bool) -> tuple[str, dict[str, Any]]:
    return txn["card_token"], {
        "schema_version": 1,
        "transaction_id": txn["transaction_id"],
        "card_token": txn["card_token"],
        "is_fraud": is_fraud,
        "fraud_type": "unauthorized_transactions" if is_fraud else None,
        "source": "chargeback" if is_fraud else "settlement",
        "analyst": None,
        "comment": None,
        "labelled_at": datetime.now(UTC).isoformat(),
    }


def decisions_for(settings, ids: set[str]) -> dict[str, dict[str, Any]]:
    got = consume_until(settings, settings.topic_decisions, lambda m: ids <= {d["transaction_id"] for d in m})
    return {d["transaction_id"]: d for d in got if d["transaction_id"] in ids}


def test_card_history_and_model_survive_a_worker_restart(make_settings, start_worker) -> None:
    settings = make_settings(model_snapshot_interval_seconds=3600)  # the snapshot comes from shutdown
    card = "tok_restart0001"
    abroad = abroad_card_present(card)
    first = transaction("restart-1", 20, merchant_id="m-first", terminal_id="t-first", **abroad)
    others = [transaction(f"restart-other-{i}", 19, card_token=f"tok_restartother{i:03d}") for i in range(30)]

    worker = start_worker(settings)
    produce(settings, settings.topic_transactions, [(t["card_token"], t) for t in [first, *others]])
    before = decisions_for(settings, {t["transaction_id"] for t in [first, *others]})
    assert before["restart-1"]["decision"] == "allow", "a first foreign payment alone is not suspicious"
    produce(settings, settings.topic_labels, [label(t, is_fraud=i % 3 == 0) for i, t in enumerate(others)])
    consume_until(settings, settings.topic_labels, lambda m: len(m) >= len(others))
    learnt_before = _labels_learnt_once_all_joined(worker, expected=len(others))
    assert learnt_before > 0
    assert worker.stop() == 0, worker.log()

    restarted = start_worker(settings)
    second = transaction("restart-2", 10, merchant_id="m-second", terminal_id="t-second", **abroad)
    produce(settings, settings.topic_transactions, [(card, second)])
    after = decisions_for(settings, {"restart-2"})["restart-2"]
    assert after["decision"] in ("review", "block"), (after, restarted.log())
    assert "UT-burst-abroad" in after["rule_hits"], (
        "the card's earlier payment was restored from the changelog"
    )
    assert after["model_version"].endswith(f"@{learnt_before}"), "the model was restored from its snapshot"


def _labels_learnt_once_all_joined(worker, expected: int) -> int:
    """Wait until every label was joined (learnt or skipped by under-sampling); the model's count."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        metrics = worker.metrics()
        joined = sum(metric_value(metrics, "fraud_labels_total", outcome=o) for o in ("learnt", "skipped"))
        if joined >= expected:
            return int(metric_value(metrics, "fraud_model_labels_learnt"))
        time.sleep(0.5)
    raise AssertionError(f"labels not joined within 60 s:\n{worker.metrics()}")
