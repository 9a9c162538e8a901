"""Broken messages on the worker's internal topics (frames between stages) are dead-lettered with
the stage that refused them, and the stages go on: the rest of a frame and later frames are decided.

Frames are written only by the worker itself, so these stand for a bug or a foreign producer on an
internal topic; the point is that a stage reading them neither crashes nor drops the good ones.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import orjson
import pytest

from pipeline.contracts.validation import Invalid, parse_message
from pipeline.worker.topics import internal_topic_names
from tests.e2e.test_restart import transaction
from tests.support import consume_until, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _transaction(transaction_id: str, card: str) -> dict[str, Any]:
    """A transaction as the validate stage passes it on."""
    parsed = parse_message(
        json.dumps(transaction(transaction_id, 5, card_token=card)).encode(), "transaction", 1 << 20
    )
    assert not isinstance(parsed, Invalid), parsed
    return parsed


def _envelope(txn: dict[str, Any]) -> dict[str, Any]:
    return {"txn": txn, "received": time.time(), "features": {}}


def test_broken_frames_are_dead_lettered_by_their_stage_and_the_rest_is_decided(
    make_settings, start_worker
) -> None:
    settings = make_settings()
    start_worker(settings)
    by_merchant, *_, by_card = internal_topic_names(settings)
    good_in_frame = _transaction("frame-good-1", "tok_frames000001")
    after_garbage = _transaction("frame-good-2", "tok_frames000002")
    merchant = good_in_frame["merchant_id"]
    broken_envelope = {"txn": {"transaction_id": "frame-broken"}, "received": time.time(), "features": {}}

    produce(
        settings,
        by_merchant,
        [
            (merchant, b"not json at all"),
            (merchant, b'{"a frame": "is an array"}'),
            (merchant, orjson.dumps([broken_envelope, _envelope(good_in_frame)])),
        ],
    )
    produce(settings, by_card, [("tok_frames000003", b"\xff\xfe garbage"), ("tok_frames000003", b"[42]")])
    # and ordinary traffic after all of it
    produce(settings, settings.topic_transactions, [(after_garbage["card_token"], after_garbage)])

    decisions = consume_until(
        settings,
        settings.topic_decisions,
        lambda got: {"frame-good-1", "frame-good-2"} <= {d["transaction_id"] for d in got},
        timeout=120,
    )
    assert {"frame-good-1", "frame-good-2"} <= {d["transaction_id"] for d in decisions}

    dead = consume_until(settings, settings.topic_dead_letter, lambda got: len(got) >= 5, timeout=60)
    assert len(dead) == 5, [(d["component"], d["reason"]) for d in dead]
    assert {d["reason_code"] for d in dead} == {"processing_error"}
    by_stage = sorted((d["component"], d["source_topic"]) for d in dead)
    assert by_stage == sorted([("merchant-features", by_merchant)] * 3 + [("score", by_card)] * 2), by_stage
    # the broken envelope is dead-lettered alone, with its own transaction as the payload
    payloads = [base64.b64decode(d["payload_base64"]) for d in dead]
    assert orjson.dumps(broken_envelope["txn"]) in payloads
    assert not any(b"frame-good-1" in payload for payload in payloads)
