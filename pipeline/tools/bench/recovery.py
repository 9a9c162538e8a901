"""``fraud bench --recovery``: how long a worker that lost its disk takes to be ready again, against
how much traffic the system has seen (issue 22, item 5; docs/reliability.md, "Table recovery").

Over the demo's fixed population (the simulator's customers, cards, merchants), one worker
processes N transactions in all; then it is killed (SIGKILL), its state folder deleted, ``waiting``
more transactions arrive meanwhile (as they would while a worker is down), and a new worker is
started: the time from its start to /readyz 200, to its first decision and to the last of the
waiting transactions' decisions, and the changelog records it restored (its /readyz figures), are
measured for each N, the traffic adding up from one N to the next. Writes recovery.json and
recovery.svg.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import requests
from confluent_kafka import Consumer, TopicPartition

from pipeline.config import Settings
from pipeline.tools.bench.processes import free_port, machine
from pipeline.tools.bench.report import say
from pipeline.tools.bench.workers import app_settings, produce_all, start_worker
from pipeline.tools.local_kafka import LocalKafka
from pipeline.tools.simulator.generator import SimulatedTransaction, TrafficGenerator, label_for
from pipeline.worker.topics import changelog_topic_names, internal_topic_names

RATE = 400.0  # transactions per second of event time


@dataclass(frozen=True)
class RecoveryOptions:
    counts: tuple[int, ...] = (50_000, 200_000, 1_000_000)
    partitions: int = 4
    waiting: int = 5_000
    """Transactions that arrive while the worker is down, decided by the new one."""
    out: Path = Path("var/bench")


def run_recovery_benchmark(settings: Settings, options: RecoveryOptions) -> list[dict[str, Any]]:
    """Measure each count in turn on a broker of its own (unless one is configured)."""
    broker: LocalKafka | None = None
    if not settings.kafka_bootstrap_servers:
        broker = LocalKafka(settings.local_kafka_version, free_port(), settings.local_kafka_home)
        say(f"starting a Kafka {broker.version} broker for the benchmark on {broker.bootstrap_servers}")
        settings = settings.model_copy(update={"kafka_bootstrap_servers": broker.start()})
    try:
        return _run(settings, options, broker)
    finally:
        if broker is not None:
            broker.stop()
            broker.wipe()


def _run(settings: Settings, options: RecoveryOptions, broker: LocalKafka | None) -> list[dict[str, Any]]:
    run = uuid.uuid4().hex[:6]
    out = options.out
    work = out / "recovery-work"
    shutil.rmtree(work, ignore_errors=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    base = app_settings(
        settings.model_copy(
            update={
                "topic_partitions": options.partitions,
                "topic_transactions": f"benchrec-{run}-transactions",
                "topic_lists": f"benchrec-{run}-lists",
                "data_dir": work,
                "worker_session_timeout_seconds": 6.0,  # the killed worker's partitions move soon
            }
        ),
        f"benchrec-{run}",
    )
    rows: list[dict[str, Any]] = []
    workers: list[subprocess.Popen[bytes]] = []
    try:
        _measure(base, options, broker, workers, rows)
    finally:
        for worker in workers:  # the last one, or any left by an interruption
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(60)
    return rows


def _measure(
    base: Settings,
    options: RecoveryOptions,
    broker: LocalKafka | None,
    workers: list[subprocess.Popen[bytes]],
    rows: list[dict[str, Any]],
) -> None:
    out, run, work = options.out, base.app_id.removeprefix("benchrec-"), base.data_dir
    worker, port = _ready_worker(base, out, 0)[:2]
    workers.append(worker)
    produced = sent = decided_before = 0  # N so far; all sent (N and the waiting); decided before N
    start = time.time() - (max(options.counts) + len(options.counts) * options.waiting) / RATE
    for index, count in enumerate(options.counts, start=1):
        say(f"[{index}/{len(options.counts)}] {count - produced:,} more transactions ({count:,} in all)")
        size, begin, run_id = count - produced, start + sent / RATE, f"{run}n{count}"
        traffic = _traffic(base, size, begin, run_id)
        produce_all(base, base.topic_transactions, ((t["card_token"], orjson.dumps(t)) for t, _ in traffic))
        _wait_processed(port, decided_before + size, ("fraud_decisions_total{", "fraud_dead_letters_total{"))
        # Then their labels, as the demo's simulator sends them: their pending entries go.
        labelled = time.time()
        labels = (
            (t["card_token"], orjson.dumps(label_for(i, labelled)))
            for t, i in _traffic(base, size, begin, run_id)
        )
        produce_all(base, base.topic_labels, labels)
        _wait_processed(port, size, ("fraud_labels_total{",))
        produced, sent = count, sent + size
        # The later stages too: the labels' frames are still counted by the merchant stage after the
        # learn stage has them all (a worker killed before would leave that work to the next one,
        # ahead of the waiting transactions' frames).
        _wait_drained(base)
        time.sleep(3)  # a few commits: the changelogs have the last changes
        changelog = _changelog_records(base)
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
        shutil.rmtree(work / base.app_id, ignore_errors=True)  # its disk is gone (and the model's)
        waiting = _traffic(base, options.waiting, start + sent / RATE, f"{run_id}w")
        produce_all(base, base.topic_transactions, ((t["card_token"], orjson.dumps(t)) for t, _ in waiting))
        sent += options.waiting
        started = time.monotonic()
        worker, port, ready = _ready_worker(base, out, index)
        workers.append(worker)
        decided = _decisions_after(port, started, options.waiting)
        decided_before = options.waiting  # the new worker's counters include them
        read = _records_read_in_bulk(out / "logs" / f"{base.app_id}-{index}.log")
        row = {"transactions": count, **changelog, **ready, **decided, "records_read_in_bulk": read}
        row["broker_log_mb"] = _log_mb(broker, base)
        rows.append(row)
        say(_line(row))
        # Written after each count: a long run stopped early keeps what it measured.
        (out / "recovery.json").write_text(json.dumps({"machine": machine(), "runs": rows}, indent=2) + "\n")
        (out / "recovery.svg").write_text(recovery_chart_svg(rows))


def _ready_worker(
    base: Settings, out: Path, index: int
) -> tuple[subprocess.Popen[bytes], int, dict[str, Any]]:
    """Start a worker; wait until /readyz answers 200; its time to ready and recovery figures."""
    started = time.monotonic()
    process, port = start_worker(base, index, out)
    body: dict[str, Any] = {}
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"a benchmark worker exited with {process.returncode}; see {out / 'logs'}")
        try:
            answer = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            body = answer.json()
            if answer.status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.2)
    recovery = body["recovery"]
    return (
        process,
        port,
        {
            "seconds_to_ready": round(time.monotonic() - started, 1),
            "recovery_seconds": recovery["seconds"],
            "records_restored": recovery["restored"],
            "records_by_table": {name: t["restored"] for name, t in recovery["tables"].items()},
        },
    )


def _wait_drained(settings: Settings, limit: float = 1800.0) -> None:
    """Until the worker's group has committed every message of its input, labels and stage topics."""
    topics = [settings.topic_transactions, settings.topic_labels, *internal_topic_names(settings)]
    consumer = Consumer(
        settings.confluent_config(**{"group.id": settings.app_id, "enable.auto.commit": False})
    )
    parts = [TopicPartition(t, p) for t in topics for p in range(settings.topic_partitions)]
    deadline, last = time.monotonic() + limit, time.monotonic()
    try:
        while time.monotonic() < deadline:
            committed = consumer.committed(parts, timeout=10)
            left = sum(
                max(0, consumer.get_watermark_offsets(tp, timeout=10)[1] - max(tp.offset, 0))
                for tp in committed
            )
            if left == 0:
                return
            if time.monotonic() - last >= 30:
                say(f"      {left:,} messages of the input, labels and stage topics not committed yet")
                last = time.monotonic()
            time.sleep(1)
    finally:
        consumer.close()


def _decisions_after(port: int, started: float, waiting: int, limit: float = 900.0) -> dict[str, Any]:
    """Seconds from ``started`` (the worker's start) to its first decision and to the decision of
    the last of the ``waiting`` transactions (None: not within ``limit``)."""
    first = last = None
    while time.monotonic() - started < limit:
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
        except requests.RequestException:  # a busy worker: ask again
            continue
        done = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("fraud_decisions_total{")
        )
        now = round(time.monotonic() - started, 1)
        if done and first is None:
            first = now
        if done >= waiting:
            last = now
            break
        time.sleep(0.2)
    return {
        "waiting_transactions": waiting,
        "seconds_to_first_decision": first,
        "seconds_to_decide_waiting": last,
    }


def _traffic(
    base: Settings, count: int, start: float, run_id: str
) -> Iterator[tuple[dict[str, Any], SimulatedTransaction]]:
    """The same ``count`` transactions over the demo's population each time it is called."""
    generator = TrafficGenerator.from_settings(base, rate=RATE, start=start, rhythm=False, run_id=run_id)
    for item in generator.events(count=count):
        yield item.transaction, item


def _wait_processed(port: int, produced: int, counters: tuple[str, ...]) -> None:
    """Until the worker's ``counters`` add up to ``produced`` (counted since the worker started)."""
    last = time.monotonic()
    while True:
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
        except requests.RequestException:  # a busy worker: ask again
            time.sleep(1)
            continue
        done = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(counters))
        if done >= produced:
            return
        if time.monotonic() - last >= 30:
            say(f"      {done:,.0f} of {produced:,} ({counters[0].split('{')[0]})")
            last = time.monotonic()
        time.sleep(1)


def _records_read_in_bulk(log_path: Path) -> int | None:
    """Changelog messages the worker read in bulk (its log's 'N records restored in bulk' line):
    the offsets it went through, less the gaps compaction left."""
    for line in log_path.read_text(errors="replace").splitlines():
        if "records restored in bulk in" in line:
            return int(line.split("table recovery: ", 1)[1].split(" ", 1)[0])
    return None


def _changelog_records(settings: Settings) -> dict[str, int]:
    """Records in the tables' changelogs now (end minus start offsets, compaction's gaps included)."""
    consumer = Consumer(settings.confluent_config(**{"group.id": f"benchrec-{uuid.uuid4().hex}"}))
    try:
        span = 0
        for topic in changelog_topic_names(settings):
            for partition in range(settings.topic_partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                span += high - low
        return {"changelog_offsets": span}
    finally:
        consumer.close()


def _log_mb(broker: LocalKafka | None, settings: Settings) -> float | None:
    """Size on the broker's disk of the tables' changelogs (a local broker only)."""
    if broker is None:
        return None
    names = changelog_topic_names(settings)
    total = sum(
        f.stat().st_size
        for folder in (broker.instance_dir / "data").iterdir()
        if folder.name.rsplit("-", 1)[0] in names
        for f in folder.iterdir()
    )
    return round(total / 1024 / 1024, 1)


def _line(row: dict[str, Any]) -> str:
    return (
        f"      after {row['transactions']:,} transactions: ready {row['seconds_to_ready']} s after start "
        f"(restoring {row['recovery_seconds']} s), first decision {row['seconds_to_first_decision']} s, "
        f"the {row['waiting_transactions']:,} waiting decided after {row['seconds_to_decide_waiting']} s; "
        f"{row['records_restored']:,} records restored; "
        f"changelogs {row['changelog_offsets']:,} offsets, {row['broker_log_mb']} MB on disk"
    )


def recovery_chart_svg(rows: list[dict[str, Any]]) -> str:
    """Two bar panels against the transactions seen: seconds to ready (and, when measured, to the
    first decision beside it), records restored."""
    width, height, left, panel = 640, 300, 60, 270
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">'
        "A worker without its state: time to ready and records restored, by transactions seen</text>",
    ]
    seconds = [("seconds_to_ready", "#4472c4")]
    if any(row.get("seconds_to_first_decision") is not None for row in rows):
        seconds.append(("seconds_to_first_decision", "#70ad47"))
    title = "seconds to ready" + (" / to the first decision" if len(seconds) > 1 else "")
    panels = ((seconds, title, "s"), ([("records_restored", "#ed7d31")], "records restored", ""))
    for index, (series, title, unit) in enumerate(panels):
        x0 = left + index * (panel + 40)
        top, bottom = 40, height - 40
        peak = max((row.get(key) or 0 for row in rows for key, _ in series), default=1) or 1
        parts.append(f'<text x="{x0 + panel / 2}" y="32" text-anchor="middle">{title}</text>')
        parts.append(f'<line x1="{x0}" y1="{bottom}" x2="{x0 + panel}" y2="{bottom}" stroke="#444"/>')
        step = panel / max(1, len(rows))
        each = step * 0.6 / len(series)
        for i, row in enumerate(rows):
            for j, (key, colour) in enumerate(series):
                if row.get(key) is None:
                    continue
                bar = (bottom - top) * row[key] / peak
                x = x0 + i * step + step * 0.2 + j * each
                parts.append(
                    f'<rect x="{x:.1f}" y="{bottom - bar:.1f}" width="{each:.1f}" height="{bar:.1f}" '
                    f'fill="{colour}"/>'
                )
                value = f"{row[key]:,.0f}{unit}" if index else f"{row[key]:.0f}{unit}"
                label_y = bottom - bar - 4
                parts.append(
                    f'<text x="{x + each / 2:.1f}" y="{label_y:.1f}" text-anchor="middle">{value}</text>'
                )
            parts.append(
                f'<text x="{x0 + i * step + step * 0.5:.1f}" y="{bottom + 14}" text-anchor="middle">'
                f"{row['transactions']:,}</text>"
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
