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

import copy
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil
import requests
from confluent_kafka import Consumer, Producer

from pipeline.config import REPO_ROOT, Settings
from pipeline.tools.bench.charts import (
    Bar,
    bar_chart_svg,
    latency_summary,
    per_second,
    steady_rate,
    top_frames,
)
from pipeline.tools.local_kafka import LocalKafka
from pipeline.tools.simulator.generator import TrafficGenerator
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


def say(message: str) -> None:
    print(message, flush=True)


def run_benchmark(settings: Settings, options: BenchOptions) -> dict[str, Any]:
    """Run every measurement; write throughput.json and the charts into ``options.out``."""
    broker: LocalKafka | None = None
    if not settings.kafka_bootstrap_servers:  # a broker of its own: nothing else runs on it
        broker = LocalKafka(settings.local_kafka_version, _free_port(), settings.local_kafka_home)
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
    results: dict[str, Any] = {"machine": _machine(), "options": _jsonable(options), "run": run}

    say(f"[1/7] training a model on {options.warmup_transactions:,} labelled transactions (offline)")
    model, features, labels = _trained_model(base, options.warmup_transactions)
    results["models"] = _model_rates(base, features, labels)
    for name, rate in results["models"].items():
        say(f"      {name:44} {rate:>10,.0f} samples/s")

    if options.latency_only:
        latency = _latency_run(base, model, options.latency_only, options.latency_seconds, out, run)
        say(_latency_line(latency))
        return _write_quick({**results, "latency": latency}, out)

    logic = [value for _, value in _transactions(base, min(options.transactions, 50_000), f"{run}logic")]
    results["logic_alone"] = _logic_alone(base, model, logic)
    say(
        f"      the worker's own work alone, no Kafka (validation, features, decision, messages): "
        f"{results['logic_alone']['rate']:,.0f} transactions/s"
    )

    say(f"[2/7] producing {options.transactions:,} simulated transactions to {base.topic_transactions}")
    ensure_topics(base, include_internal=False)
    produced = _produce_all(base, base.topic_transactions, _transactions(base, options.transactions, run))
    results["produce"] = produced
    say(f"      {produced['rate']:,.0f} transactions/s produced")

    if options.one_worker_only:
        app = _app_settings(base, f"bench-{run}-w1")
        _install_model(app, model)
        results["workers_1"] = _pipeline_run(app, 1, options.transactions, out, profile=options.profile)
        one = results["workers_1"]
        say(
            f"      {one['rate']:,.0f} transactions/s, {one['cpu_cores_per_worker'][0]:.2f} cores, "
            f"{one['duplicates']} duplicates; {one['rate'] / results['logic_alone']['rate']:.0%} of "
            "the worker's own work alone"
        )
        for frame, share in one.get("profile_top", []):
            say(f"  {share:6.1%}  {frame}")
        return _write_quick(results, out)

    say("[3/7] the limit: raw confluent-kafka consume -> produce, no processing")
    results["raw"] = _raw_passthrough(base, f"bench-{run}-raw-out", options.transactions)
    say(f"      {results['raw']['rate']:,.0f} transactions/s")

    for workers, step in ((1, "4/7"), (2, "5/7")):
        say(f"[{step}] the pipeline, {workers} worker(s), everything on")
        app = _app_settings(base, f"bench-{run}-w{workers}")
        _install_model(app, model)
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
    results["latency"] = _latency_run(base, model, offered, options.latency_seconds, out, run)
    # The half-peak is measured against a backlog's rate; what a worker sustains at low latency
    # is a different regime (small batches), so a few fixed rates show where latency stays low.
    results["latency_by_rate"] = []
    for rate in options.latency_rates:
        say(f"[7/7] latency at {rate:,.0f} transactions/s for {options.latency_seconds:.0f}s")
        measured = _latency_run(base, model, rate, options.latency_seconds, out, f"{run}r{rate:.0f}")
        say(_latency_line(measured))
        results["latency_by_rate"].append(measured)

    raw, one, two = results["raw"]["rate"], results["workers_1"]["rate"], results["workers_2"]["rate"]
    results["ratios"] = {
        "one_worker_over_raw": one / raw,
        "two_workers_over_one": two / one,
        "one_worker_over_logic_alone": one / results["logic_alone"]["rate"],
    }
    _write(results, out)
    _print_summary(results)
    return results


# --- traffic ------------------------------------------------------------------------------------
def _transactions(
    settings: Settings, count: int, run_id: str, rate: float = 400.0
) -> Iterator[tuple[str, bytes]]:
    """(card token, JSON) of ``count`` simulated transactions whose event times end about now."""
    start = time.time() - count / rate
    generator = TrafficGenerator.from_settings(settings, rate=rate, start=start, rhythm=False, run_id=run_id)
    for item in generator.events(count=count):
        yield item.transaction["card_token"], orjson.dumps(item.transaction)


def _produce_all(settings: Settings, topic: str, records: Iterator[tuple[str, bytes]]) -> dict[str, Any]:
    producer = Producer(settings.producer_config(**{"linger.ms": 20, "batch.size": 1_000_000}))
    errors: list[str] = []

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            errors.append(str(error))

    started, count = time.perf_counter(), 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key.encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if count % 50_000 == 0:
            say(f"      {count:,} produced")
    remaining = producer.flush(60)
    if errors or remaining:
        raise RuntimeError(f"producing the benchmark traffic failed: {errors[:3]}, {remaining} undelivered")
    seconds = time.perf_counter() - started
    return {"count": count, "seconds": seconds, "rate": count / seconds}


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
    cpu_before, wall_before = _cpu_seconds(me), time.monotonic()
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
    cpu = (_cpu_seconds(me) - cpu_before) / (time.monotonic() - wall_before)
    stamps = [at for at, _ in _collect(settings, out_topic, expected, "raw output", key_only=True)]
    return {"rate": steady_rate(stamps), "cpu_cores": cpu, "peak_rss_mb": _peak_rss_mb(me.pid)}


# --- the pipeline -------------------------------------------------------------------------------
def _app_settings(base: Settings, app_id: str, **update: Any) -> Settings:
    settings = base.model_copy(
        update={
            "app_id": app_id,
            "topic_decisions": f"{app_id}-decisions",
            "topic_alerts": f"{app_id}-alerts",
            "topic_labels": f"{app_id}-labels",
            "topic_dead_letter": f"{app_id}-dead-letter",
            **update,
        }
    )
    ensure_topics(settings)
    return settings


def _pipeline_run(
    settings: Settings, workers: int, expected: int, out: Path, profile: bool
) -> dict[str, Any]:
    processes = [_start_worker(settings, index, out) for index in range(workers)]
    profiler: subprocess.Popen[bytes] | None = None
    try:
        for process, port in processes:
            _wait_ready(process, port)
        if profile:
            profiler = _start_profiler(processes[0][0].pid, out)
        cpu_before = [_cpu_seconds(psutil.Process(p.pid)) for p, _ in processes]
        wall_before = time.monotonic()
        decisions = _collect(settings, settings.topic_decisions, expected, f"{workers} worker(s)")
        wall = time.monotonic() - wall_before
        cpu = [
            (_cpu_seconds(psutil.Process(p.pid)) - before) / wall
            for (p, _), before in zip(processes, cpu_before, strict=True)
        ]
        peak = [_peak_rss_mb(p.pid) for p, _ in processes]
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
        "cpu_cores_per_worker": cpu,
        "peak_rss_mb_per_worker": peak,
        "per_second": per_second([at for at, _ in decisions]),
    }
    if profile:
        collapsed = out / "profile-1-worker.txt"
        if collapsed.exists():
            result["profile_top"] = top_frames(collapsed.read_text().splitlines(), 25)
    return result


def _start_worker(settings: Settings, index: int, out: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = settings.model_copy(update={"worker_web_port": port}).child_environment()
    log = (out / "logs" / f"{settings.app_id}-{index}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "worker", "--loglevel", "warning"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, port


def _wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"a benchmark worker exited with {process.returncode}; see var/bench/logs")
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"a benchmark worker was not ready within {timeout:.0f}s")


def _start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
         "--output", str(out / "profile-1-worker.txt"), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=(out / "logs" / "py-spy.log").open("wb"),
    )  # fmt: skip


# --- latency ------------------------------------------------------------------------------------
def _latency_run(
    base: Settings, model: Any, rate: float, seconds: float, out: Path, run: str, warmup: float = 10.0
) -> dict[str, Any]:
    """Offer ``rate`` transactions per second for ``warmup`` + ``seconds`` to a fresh worker (an app
    and input topic of its own, running ``model``); time each of the last ``seconds`` from just
    before its produce call to the arrival of its decision. (The first transactions after a worker
    starts wait for its consumers of the internal topics to fetch.)"""
    topic = f"bench-{run}-latency-transactions"
    settings = _app_settings(base, f"bench-{run}-latency", topic_transactions=topic)
    _install_model(settings, model)
    count = max(int(rate * (seconds + warmup)), 50)
    measured_from = int(rate * warmup) if count > rate * warmup else 0
    records = [
        (key, value, orjson.loads(value)["transaction_id"])
        for key, value in _transactions(settings, count, f"{run}lat")
    ]
    process, port = _start_worker(settings, 0, out)
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    try:
        _wait_ready(process, port)
        consumer = Consumer(
            settings.confluent_config(
                **{
                    "group.id": f"{settings.app_id}-latency-reader",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 5,
                }
            )
        )
        consumer.subscribe([settings.topic_decisions])
        reading = threading.Event()
        reading.set()

        def read() -> None:
            while reading.is_set() or len(arrived) < len(sent):
                message = consumer.poll(0.1)
                if message is None or message.error():
                    if not reading.is_set() and time.monotonic() > give_up:
                        return
                    continue
                arrived.setdefault(orjson.loads(message.value())["transaction_id"], time.time())

        give_up = float("inf")
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(2)  # the reader's partitions are assigned before the first transaction
        producer = Producer(settings.producer_config())
        worker = psutil.Process(process.pid)
        cpu_from = (time.monotonic(), _cpu_seconds(worker))
        started = time.monotonic()
        for index, (key, value, transaction_id) in enumerate(records):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if index == measured_from:
                cpu_from = (time.monotonic(), _cpu_seconds(worker))
            sent[transaction_id] = time.time()
            producer.produce(settings.topic_transactions, value, key.encode())
            producer.poll(0)
        producer.flush(30)
        cpu_to = (time.monotonic(), _cpu_seconds(worker))
        give_up = time.monotonic() + 60
        reading.clear()
        reader.join(90)
        consumer.close()
    finally:
        process.terminate()
        process.wait(30)
    measured = list(sent.items())[measured_from:]
    latencies = [arrived[t] - at for t, at in measured if t in arrived]
    return {
        "offered_rate": rate,
        "warmup_seconds": warmup,
        "sent": len(measured),
        "decided": len(latencies),
        # The worker's CPU while the measured transactions were offered: at a steady moderate rate a
        # transaction costs several times what it costs on a backlog (docs/performance.md).
        "cpu_cores": (cpu_to[1] - cpu_from[1]) / max(cpu_to[0] - cpu_from[0], 1e-9),
        "cpu_ms_per_transaction": 1000 * (cpu_to[1] - cpu_from[1]) / max(len(measured), 1),
        **latency_summary(latencies),
    }


# --- reading the outputs ------------------------------------------------------------------------
def _collect(
    settings: Settings, topic: str, expected: int, label: str, key_only: bool = False, idle: float = 180.0
) -> list[tuple[float, str]]:
    """(Kafka timestamp in seconds, transaction id or key) of the messages of ``topic``, read
    from the start until ``expected`` distinct ones arrived; shows progress."""
    consumer = Consumer(
        settings.confluent_config(
            **{
                "group.id": f"bench-reader-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([topic])
    seen: list[tuple[float, str]] = []
    distinct: set[str] = set()
    last_message, last_report, reported = time.monotonic(), time.monotonic(), 0
    try:
        while len(distinct) < expected:
            batch = consumer.consume(5000, 0.5)
            now = time.monotonic()
            for message in batch:
                if message.error():
                    continue
                if key_only:
                    ident = f"{message.partition()}:{message.offset()}"
                else:
                    ident = orjson.loads(message.value())["transaction_id"]
                seen.append((message.timestamp()[1] / 1000, ident))
                distinct.add(ident)
                last_message = now
            if now - last_message > idle:
                raise RuntimeError(
                    f"{label}: no output for {idle:.0f}s after {len(distinct):,} of {expected:,}"
                )
            if now - last_report >= 5:
                rate = (len(distinct) - reported) / (now - last_report)
                say(f"      {label}: {len(distinct):,}/{expected:,} ({rate:,.0f}/s)")
                last_report, reported = now, len(distinct)
    finally:
        consumer.close()
    return seen


# --- models alone -------------------------------------------------------------------------------
def _trained_model(
    settings: Settings, count: int
) -> tuple[Any, list[dict[str, float]], list[tuple[str, bool, str | None]]]:
    """A model trained by replaying ``count`` labelled simulated transactions, plus the features
    and labels of that replay (for the per-model rates)."""
    from pipeline.tools.backtest import replay
    from pipeline.wiring import build_detector

    rate = 200.0
    start = time.time() - 3 * 86400
    generator = TrafficGenerator.from_settings(
        settings, rate=rate, start=start, rhythm=False, run_id="warm", seed=11
    )
    rows = [
        {**item.transaction, "is_fraud": item.is_fraud, "fraud_type": item.fraud_type or ""}
        for item in generator.events(count=count)
    ]
    detector = build_detector(settings, "combined")
    result = replay(rows, detector, label_delay_days=600 / 86400, keep_features=True)
    labels = [(s.transaction_id, s.is_fraud, s.true_fraud_type) for s in result.scored]
    return detector.engine.model, result.features, labels


def _model_rates(
    settings: Settings, features: list[dict[str, float]], labels: list[tuple[str, bool, str | None]]
) -> dict[str, float]:
    """Samples per second of each model alone, and of the whole decision, on replayed features."""
    from pipeline.detection.anomaly import AnomalyDetector
    from pipeline.detection.model import OnlineFraudModel
    from pipeline.wiring import build_detector

    def timed(step: Callable[[int], object]) -> float:
        started = time.perf_counter()
        for index in range(len(features)):
            step(index)
        return len(features) / (time.perf_counter() - started)

    model = OnlineFraudModel()
    rates = {
        "fraud model learn (scaler|clip|logistic)": timed(
            lambda i: model.fraud.learn_one(features[i], labels[i][1])
        ),
        "fraud model predict": timed(lambda i: model.fraud.predict_proba_one(features[i])),
        "type model learn (scaler|clip|softmax)": timed(
            lambda i: model.fraud_type.learn_one(features[i], labels[i][2] or "unauthorized_transactions")
        ),
        "type model predict": timed(lambda i: model.fraud_type.predict_one(features[i])),
    }
    detector = AnomalyDetector()
    rates["anomaly score+learn (half-space trees)"] = timed(lambda i: detector.score_and_learn(features[i]))
    engine = build_detector(settings, "combined").engine
    for index in range(len(features)):
        engine.learn(labels[index][0], features[index], labels[index][1], labels[index][2])
    txn = {"card_token": "tok", "merchant_id": "m", "device_id": "d", "terminal_id": "t", "customer_id": "c"}
    rates["whole decision (rules, models, anomaly, explanation)"] = timed(
        lambda i: engine.decide(txn, features[i])
    )
    return rates


def _logic_alone(settings: Settings, model: Any, values: list[bytes]) -> dict[str, Any]:
    """Transactions per second of the worker's own work on one core, without Kafka or Faust: each
    transaction validated (JSON, PAN check, schema), its features from every entity's state, the
    decision (rules, the trained model, the anomaly detector), the decision and alert messages and
    the features kept for its label, encoded. What the stages' hops, tables and Faust's delivery add
    is the gap between this and the one-worker rate."""
    from pipeline.contracts.messages import alert_message, decision_message, utc_now_iso
    from pipeline.contracts.validation import Invalid, parse_message
    from pipeline.detection.detector import InMemoryStates
    from pipeline.detection.features import event_seconds
    from pipeline.wiring import build_detector

    detector = build_detector(settings, "combined", copy.deepcopy(model))
    states = InMemoryStates()
    started = time.perf_counter()
    for start in range(0, len(values), settings.worker_batch_size):
        batch = []
        for value in values[start : start + settings.worker_batch_size]:
            txn = parse_message(value, "transaction", settings.max_message_bytes)
            if isinstance(txn, Invalid):
                raise ValueError(f"a simulated transaction was refused: {txn.reason}")
            batch.append((txn, event_seconds(txn)))
        for item in detector.process(batch, states.state_of, states.card_of):
            decision = decision_message(item.txn, item.decision, utc_now_iso(), 0.0)
            orjson.dumps(decision)
            if item.decision.action != "allow":
                orjson.dumps(alert_message(decision, item.txn, item.features))
            orjson.dumps({"features": item.features, "decision": decision, "at": item.at})
    seconds = time.perf_counter() - started
    return {"transactions": len(values), "seconds": seconds, "rate": len(values) / seconds}


def _install_model(settings: Settings, model: Any) -> None:
    from pipeline.wiring import snapshot_store

    store = snapshot_store(settings)
    store.save(model, model.labels_learnt)


# --- process figures ----------------------------------------------------------------------------
def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _machine() -> dict[str, Any]:
    return {
        "cpu": platform.processor() or _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _jsonable(options: BenchOptions) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in options.__dict__.items()}


# --- report -------------------------------------------------------------------------------------
def _write_quick(results: dict[str, Any], out: Path) -> dict[str, Any]:
    """A quick look's figures (--one-worker-only, --latency-only) go to quick.json, beside the full
    run's throughput.json, which they leave alone."""
    (out / "quick.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _write(results: dict[str, Any], out: Path) -> None:
    (out / "throughput.json").write_text(json.dumps(results, indent=2) + "\n")
    raw, one, two = (results[k]["rate"] for k in ("raw", "workers_1", "workers_2"))
    logic = results["logic_alone"]["rate"]
    bars = [
        Bar("raw consume→produce", raw),
        Bar("own work, no Kafka", logic),
        Bar("pipeline, 1 worker", one, f"({one / raw:.0%} of raw, {one / logic:.0%} of its work alone)"),
        Bar("pipeline, 2 workers", two, f"(x{two / one:.2f})"),
    ]
    (out / "throughput.svg").write_text(bar_chart_svg("Transactions per second", bars, "/s"))
    latency = results["latency"]
    bars = [Bar(name, latency[f"{name}_ms"]) for name in ("p50", "p95", "p99", "max")]
    title = f"End-to-end latency at {latency['offered_rate']:,.0f} transactions/s"
    (out / "latency.svg").write_text(bar_chart_svg(title, bars, "ms"))
    bars = [
        Bar(f"{row['offered_rate']:,.0f}/s {name}", row[f"{name}_ms"])
        for row in results.get("latency_by_rate", [])
        for name in ("p50", "p99")
    ]
    if bars:
        title = "End-to-end latency at fixed rates (p50, p99)"
        (out / "latency-by-rate.svg").write_text(bar_chart_svg(title, bars, "ms"))


def _print_summary(results: dict[str, Any]) -> None:
    raw, one, two = (results[k] for k in ("raw", "workers_1", "workers_2"))
    latency = results["latency"]
    say("")
    say(f"{'':34}{'transactions/s':>16}{'CPU cores':>22}{'peak RSS MiB':>22}")
    say(
        f"{'raw consume -> produce':34}{raw['rate']:>16,.0f}"
        f"{raw['cpu_cores']:>22.2f}{raw['peak_rss_mb']:>22.0f}"
    )
    say(f"{'own work alone, no Kafka':34}{results['logic_alone']['rate']:>16,.0f}{1.0:>22.2f}")
    for name, row in (("pipeline, 1 worker", one), ("pipeline, 2 workers", two)):
        cpu = " / ".join(f"{c:.2f}" for c in row["cpu_cores_per_worker"])
        mem = " / ".join(f"{m:.0f}" for m in row["peak_rss_mb_per_worker"])
        say(f"{name:34}{row['rate']:>16,.0f}{cpu:>22}{mem:>22}")
    say("")
    say(f"1 worker / raw:        {results['ratios']['one_worker_over_raw']:.1%}")
    say(f"2 workers / 1 worker:  x{results['ratios']['two_workers_over_one']:.2f}")
    say(f"1 worker / own work:   {results['ratios']['one_worker_over_logic_alone']:.1%}")
    say(_latency_line(latency))
    for row in results.get("latency_by_rate", []):
        say(_latency_line(row))
    duplicates = one["duplicates"] + two["duplicates"]
    say(f"decisions: every transaction decided in each run; {duplicates} duplicate decisions")
    if "profile_top" in one:
        say("\nwhere one worker spends its time (py-spy, self time):")
        for frame, share in one["profile_top"]:
            say(f"  {share:6.1%}  {frame}")


def _latency_line(latency: dict[str, Any]) -> str:
    return (
        f"latency at {latency['offered_rate']:,.0f}/s ({latency['decided']:,}/{latency['sent']:,} decided): "
        f"p50 {latency['p50_ms']:.1f} ms, p95 {latency['p95_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms, "
        f"max {latency['max_ms']:.1f} ms; worker {latency['cpu_cores']:.2f} cores, "
        f"{latency['cpu_ms_per_transaction']:.2f} ms CPU per transaction"
    )
