"""``fraud bench``: the pipeline's throughput and latency side by side with raw Kafka.

In one run, on one broker, with the same pre-produced simulated transactions:

1. the limit: a raw confluent-kafka consumer that reads each transaction and produces one small
   message for it, no processing;
2. the pipeline with one worker process, everything on (validation, entity stages with their
   tables, rules, a trained model, the anomaly detector, decisions, alerts, metrics);
3. the same with two worker processes;
4. end-to-end latency (produce time to decision arrival) at a fixed offered load of half the
   one-worker peak;
5. each model's samples per second alone, offline.

Rates are measured on the output topics' own timestamps over the steady part of each run.
Everything runs on its own topics and consumer groups, so runs do not disturb each other.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import Consumer, Producer

from pipeline.config import REPO_ROOT, Settings
from pipeline.tools.bench.charts import (
    per_second,
    steady_rate,
    top_frames,
)
from pipeline.tools.bench.detector_alone import (
    detector_alone,
    install_model,
    logic_alone,
    model_rates,
    trained_model,
)
from pipeline.tools.bench.latency import latency_run
from pipeline.tools.bench.processes import cpu_seconds, free_port, machine, peak_rss_mb
from pipeline.tools.bench.report import latency_line, print_summary, say, write, write_quick
from pipeline.tools.bench.workers import (
    app_settings,
    collect,
    produce_all,
    start_profiler,
    start_worker,
    transactions,
    wait_ready,
)
from pipeline.tools.local_kafka import LocalKafka
from pipeline.worker.topics import ensure_topics


@dataclass(frozen=True)
class BenchOptions:
    transactions: int = 200_000
    partitions: int = 4
    latency_seconds: float = 30.0
    warmup_transactions: int = 30_000
    profile: bool = False
    one_worker_only: bool = False  # a quick look while profiling: no raw, 2-worker or latency run
    latency_only: float | None = None  # only the latency run, at this offered rate
    latency_rates: tuple[float, ...] = (100.0, 200.0, 400.0)  # latency at these fixed rates too
    out: Path = REPO_ROOT / "var" / "bench"


def run_benchmark(settings: Settings, options: BenchOptions) -> dict[str, Any]:
    """Run every measurement; write throughput.json and the charts into ``options.out``."""
    broker: LocalKafka | None = None
    if not settings.kafka_bootstrap_servers:  # a broker of its own: nothing else runs on it
        broker = LocalKafka(settings.local_kafka_version, free_port(), settings.local_kafka_home)
        say(f"starting a Kafka {broker.version} broker for the benchmark on {broker.bootstrap_servers}")
        settings = settings.model_copy(update={"kafka_bootstrap_servers": broker.start()})
    try:
        return _run(settings, options)
    finally:
        if broker is not None:
            broker.stop()
            broker.wipe()


def _run(settings: Settings, options: BenchOptions) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    out = options.out
    shutil.rmtree(out / "work", ignore_errors=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    base = settings.model_copy(
        update={
            "topic_partitions": options.partitions,
            "topic_transactions": f"bench-{run}-transactions",
            "data_dir": out / "work",
        }
    )
    results: dict[str, Any] = {"machine": machine(), "options": jsonable(options), "run": run}

    say(f"[1/7] training a model on {options.warmup_transactions:,} labelled transactions (offline)")
    model, features, labels = trained_model(base, options.warmup_transactions)
    results["models"] = model_rates(base, features, labels)
    for name, rate in results["models"].items():
        say(f"      {name:44} {rate:>10,.0f} samples/s")

    if options.latency_only:
        latency = latency_run(base, model, options.latency_only, options.latency_seconds, out, run)
        say(latency_line(latency))
        return write_quick({**results, "latency": latency}, out)

    logic = [value for _, value in transactions(base, min(options.transactions, 50_000), f"{run}logic")]
    results["detector_alone"] = detector_alone(base, model, logic)
    say(
        f"      the detector alone, batches of 500 (features, rules, model, anomaly): "
        f"{results['detector_alone']['rate']:,.0f} transactions/s "
        f"({results['detector_alone']['us_per_transaction']:.0f} us each)"
    )
    results["logic_alone"] = logic_alone(base, model, logic)
    say(
        f"      the worker's own work alone, no Kafka (validation, features, decision, messages): "
        f"{results['logic_alone']['rate']:,.0f} transactions/s"
    )

    say(f"[2/7] producing {options.transactions:,} simulated transactions to {base.topic_transactions}")
    ensure_topics(base, include_internal=False)
    produced = produce_all(base, base.topic_transactions, transactions(base, options.transactions, run))
    results["produce"] = produced
    say(f"      {produced['rate']:,.0f} transactions/s produced")

    if options.one_worker_only:
        app = app_settings(base, f"bench-{run}-w1")
        install_model(app, model)
        results["workers_1"] = _pipeline_run(app, 1, options.transactions, out, profile=options.profile)
        one = results["workers_1"]
        say(
            f"      {one['rate']:,.0f} transactions/s, {one['cpu_cores_per_worker'][0]:.2f} cores, "
            f"{one['duplicates']} duplicates, {one['alert_share']:.1%} alerted; "
            f"{one['rate'] / results['logic_alone']['rate']:.0%} of "
            "the worker's own work alone"
        )
        for frame, share in one.get("profile_top", []):
            say(f"  {share:6.1%}  {frame}")
        return write_quick(results, out)

    say("[3/7] the limit: raw confluent-kafka consume -> produce, no processing")
    results["raw"] = _raw_passthrough(base, f"bench-{run}-raw-out", options.transactions)
    say(f"      {results['raw']['rate']:,.0f} transactions/s")

    for workers, step in ((1, "4/7"), (2, "5/7")):
        say(f"[{step}] the pipeline, {workers} worker(s), everything on")
        app = app_settings(base, f"bench-{run}-w{workers}")
        install_model(app, model)
        results[f"workers_{workers}"] = _pipeline_run(
            app, workers, options.transactions, out, profile=options.profile and workers == 1
        )
        say(f"      {results[f'workers_{workers}']['rate']:,.0f} transactions/s")

    peak = results["workers_1"]["rate"]
    offered = max(peak / 2, 1.0)
    say(
        f"[6/7] latency at half the one-worker peak: {offered:,.0f} transactions/s "
        f"for {options.latency_seconds:.0f}s"
    )
    results["latency"] = latency_run(base, model, offered, options.latency_seconds, out, run)
    # The half-peak is measured against a backlog's rate; what a worker sustains at low latency
    # is a different regime (small batches), so a few fixed rates show where latency stays low.
    results["latency_by_rate"] = []
    for rate in options.latency_rates:
        say(f"[7/7] latency at {rate:,.0f} transactions/s for {options.latency_seconds:.0f}s")
        measured = latency_run(base, model, rate, options.latency_seconds, out, f"{run}r{rate:.0f}")
        say(latency_line(measured))
        results["latency_by_rate"].append(measured)

    raw, one, two = results["raw"]["rate"], results["workers_1"]["rate"], results["workers_2"]["rate"]
    results["ratios"] = {
        "one_worker_over_raw": one / raw,
        "two_workers_over_one": two / one,
        "one_worker_over_logic_alone": one / results["logic_alone"]["rate"],
    }
    write(results, out)
    print_summary(results)
    return results


# --- the limit ----------------------------------------------------------------------------------
def _raw_passthrough(settings: Settings, out_topic: str, expected: int) -> dict[str, Any]:
    """Read every transaction and produce one small message for it: what Kafka and one Python
    process on this machine allow with no processing at all."""
    ensure_topics(settings.model_copy(update={"topic_transactions": out_topic}), include_internal=False)
    consumer = Consumer(
        settings.confluent_config(
            **{
                "group.id": f"{out_topic}-group",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    producer = Producer(settings.producer_config())
    consumer.subscribe([settings.topic_transactions])
    me = psutil.Process()
    cpu_before, wall_before = cpu_seconds(me), time.monotonic()
    count = 0
    while count < expected:
        for message in consumer.consume(1000, 1.0):
            if message.error():
                continue
            while True:
                try:
                    producer.produce(out_topic, b'{"seen":true}', message.key())
                    break
                except BufferError:
                    producer.poll(0.05)
            count += 1
        producer.poll(0)
    producer.flush(60)
    consumer.commit(asynchronous=False)  # at-least-once, as the pipeline: commit after delivery
    consumer.close()
    cpu = (cpu_seconds(me) - cpu_before) / (time.monotonic() - wall_before)
    stamps = [at for at, _ in collect(settings, out_topic, expected, "raw output", key_only=True)]
    return {"rate": steady_rate(stamps), "cpu_cores": cpu, "peak_rss_mb": peak_rss_mb(me.pid)}


# --- the pipeline -------------------------------------------------------------------------------


def _pipeline_run(
    settings: Settings, workers: int, expected: int, out: Path, profile: bool
) -> dict[str, Any]:
    processes = [start_worker(settings, index, out) for index in range(workers)]
    profiler: subprocess.Popen[bytes] | None = None
    try:
        for process, port in processes:
            wait_ready(process, port)
        if profile:
            profiler = start_profiler(processes[0][0].pid, out)
        cpu_before = [cpu_seconds(psutil.Process(p.pid)) for p, _ in processes]
        wall_before = time.monotonic()
        actions: Counter[str] = Counter()
        decisions = collect(
            settings, settings.topic_decisions, expected, f"{workers} worker(s)", actions=actions
        )
        wall = time.monotonic() - wall_before
        cpu = [
            (cpu_seconds(psutil.Process(p.pid)) - before) / wall
            for (p, _), before in zip(processes, cpu_before, strict=True)
        ]
        peak = [peak_rss_mb(p.pid) for p, _ in processes]
    finally:
        for process, _ in processes:
            process.terminate()
        for process, _ in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        if profiler is not None:
            profiler.terminate()
            profiler.wait(30)
    ids = [key for _, key in decisions]
    result: dict[str, Any] = {
        "rate": steady_rate([at for at, _ in decisions]),
        "decisions": len(ids),
        "distinct_transactions": len(set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        # How much alert work the bench's model gave the worker (an alert message, the fraud type
        # model and the explanation per review or block): runs compare only with the same share.
        "alert_share": (actions["review"] + actions["block"]) / max(len(ids), 1),
        "cpu_cores_per_worker": cpu,
        "peak_rss_mb_per_worker": peak,
        "per_second": per_second([at for at, _ in decisions]),
    }
    if profile:
        collapsed = out / "profile-1-worker.txt"
        if collapsed.exists():
            result["profile_top"] = top_frames(collapsed.read_text().splitlines(), 25)
    return result


def jsonable(options: BenchOptions) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in options.__dict__.items()}
