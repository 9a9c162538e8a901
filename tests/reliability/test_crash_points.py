"""A worker stopped dead at each of its crash points (pipeline/worker/faults.py), a new worker takes
over: every transaction produced ends with at least one decision (counted by id; duplicates are
allowed and reported). The crash is deterministic: the Nth time the worker reaches the point,
after everything it wrote so far reached Kafka (the worst case for the replay).

``after_card_state`` is the hole of issue 18: the card states of a scoring batch are in their
changelog, none of the batch's decisions nor their stored copies are. A worker that took a card's
history for "already decided" dropped those transactions: no decision, ever."""

from __future__ import annotations

import subprocess
from collections import Counter
from typing import Any

import pytest

from pipeline.config import CRASH_POINTS
from pipeline.tools.simulator.generator import FraudRates, TrafficGenerator
from pipeline.worker.faults import CRASH_EXIT_CODE
from tests.conftest import free_port
from tests.support import consume_until, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

NTH = {"after_card_state": 3, "after_decisions": 3, "after_state_flush": 1, "after_input_frames": 3}
"""Which time each point crashes: the third scoring batch (two before it are decided and stored,
not committed); the first flush before a commit (nothing committed yet: every stage replays); the
native input reader's third batch (its frames acknowledged, its offsets not committed)."""


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_at_each_point_leaves_no_transaction_undecided(point, make_settings, start_worker) -> None:
    settings = make_settings(
        fault_crash_at=f"{point}:{NTH[point]}",
        worker_session_timeout_seconds=6,  # the crashed worker's partitions move after 6 s
        worker_batch_size=20,  # many small batches: the crash comes mid-stream
        worker_frame_items=10,
        model_min_labels=10**9,
        worker_input="native" if point == "after_input_frames" else "faust",
    )
    generator = TrafficGenerator(seed=18, customers=60, merchants=20, rate=50, rhythm=False,
                                 fraud=FraudRates(0.02, 0.02, 0.01), run_id=point)  # fmt: skip
    transactions = [item.transaction for item in generator.events(count=300)]
    ids = {t["transaction_id"] for t in transactions}
    assert len(ids) == len(transactions)

    crashing = start_worker(settings)
    produce(settings, settings.topic_transactions, [(t["card_token"], t) for t in transactions])
    try:
        code = crashing.process.wait(60)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"the worker never reached {point} {NTH[point]} times:\n{crashing.log()}"
        ) from None
    assert code == CRASH_EXIT_CODE, f"exit code {code}:\n{crashing.log()}"
    assert f"crash point {point} reached" in crashing.log()

    taking_over = start_worker(
        settings.model_copy(update={"fault_crash_at": None, "worker_web_port": free_port()})
    )
    read: list[dict[str, Any]] = []

    def all_decided(decisions: list[dict[str, Any]]) -> bool:
        read[:] = decisions
        return ids <= {d["transaction_id"] for d in decisions}

    try:
        consume_until(settings, settings.topic_decisions, all_decided, timeout=45)
    except AssertionError:
        missing = sorted(ids - {d["transaction_id"] for d in read})
        raise AssertionError(
            f"crash at {point}: {len(missing)} of {len(ids)} transactions never decided (first: "
            f"{missing[:5]}); {len(read)} decisions read\nthe new worker's log:\n{taking_over.log()}"
        ) from None
    per_id = Counter(d["transaction_id"] for d in read)
    duplicates = sum(n - 1 for n in per_id.values())
    print(f"crash at {point}: {len(ids)} produced, {len(per_id)} decided, {duplicates} duplicate decisions")
    assert set(per_id) == ids, f"decisions for ids never produced: {sorted(set(per_id) - ids)[:5]}"
