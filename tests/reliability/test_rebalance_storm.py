"""One worker decides a steady stream while a second joins and leaves, again and again: each join
and each leave is a rebalance that revokes every partition of the first worker mid-stream (Faust's
eager protocol) and gives them back, with frames in its queues, batches in its stages and offsets
not yet committed. Every transaction still gets a decision.

The kill -9 test (test_worker_crash.py) has one rebalance per run; a loss that needs a rebalance at
an unlucky moment showed there about once in fifty runs (a clean-clone CI run on 2026-12-07). Here a
run has seven to nine. Until the worker's consumer read again what Faust did not hand over
(pipeline/worker/fetching.py, docs/reliability.md "Rebalances"), 2 runs of about 19 lost a
transaction. One run is in the suite (1 to 5 minutes); tests/reliability/loop_stress.sh loops it."""

from __future__ import annotations

import signal
import time

import pytest

from pipeline.tools.simulator.generator import FraudRates, TrafficGenerator
from tests.conftest import free_port
from tests.support import SteadyLoad, decisions_for_every_id, wait_for_group_members

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
]


def test_workers_joining_and_leaving_under_load_lose_nothing(make_settings, start_worker) -> None:
    settings = make_settings(topic_partitions=4, worker_session_timeout_seconds=8, model_min_labels=10**9)
    first = start_worker(settings)
    generator = TrafficGenerator(seed=22, customers=400, merchants=80, rate=80, rhythm=False,
                                 fraud=FraudRates(0.02, 0.02, 0.01), run_id="storm")  # fmt: skip
    transactions = [item.transaction for item in generator.events(count=4000)]  # 50 s at 80/s
    load = SteadyLoad(settings, transactions, rate=80).start()
    visitors = {}
    signals = [signal.SIGTERM, signal.SIGKILL]  # a graceful leave, then one noticed after the session
    while load.running():
        visitor = start_worker(settings.model_copy(update={"worker_web_port": free_port()}), wait=False)
        visitors[f"visitor {len(visitors) + 1}"] = visitor
        wait_for_group_members(settings, 2)  # it joined: the first worker gave half its partitions
        time.sleep(2)  # the visitor restores and decides a little
        visitor.stop(signals[len(visitors) % 2])
        if visitor.process.returncode == -signal.SIGKILL:
            wait_for_group_members(settings, 1)  # the session ran out: the first took them back
    ids = load.finish()
    decisions = decisions_for_every_id(settings, ids, {"first": first, **visitors})
    decided = [d["transaction_id"] for d in decisions]
    rebalances = first.log_path.read_text(errors="replace").count("Seek stream partitions to committed")
    print(f"{len(visitors)} visits, {rebalances} rebalances of the first worker; {len(ids)} produced, "
          f"{len(set(decided))} decided, {len(decided) - len(set(decided))} duplicate decisions")  # fmt: skip
    assert set(decided) == ids
    assert first.process.poll() is None, "the first worker kept running"
    # The loss is rare; its mark was not: before the consumer read again what Faust did not hand
    # over, every run's first worker took 5-15 offset jumps as gaps and dropped ~185 messages.
    for name, worker in {"first": first, **visitors}.items():
        said = worker.log_path.read_text(errors="replace")
        gaps = said.count("skipped by the consumer: a gap")
        dropped = said.count("dropped the message at offset")
        assert (gaps, dropped) == (0, 0), f"{name}: {gaps} gaps, {dropped} dropped ({worker.log_path})"
