"""``fraud soak``: the whole system for a long while under faults, then the accounting.

Two workers, the simulator at a steady rate and the monitor run as child processes on topics of
their own (``soak-<time>-*``). Every few minutes the second worker gets SIGKILL and is started
again at once (the first lives throughout, so its memory is seen over the whole run); halfway,
the local broker is stopped and started once. Every process's resident memory is sampled. At the
end the simulator stops, every produced id is looked for among the decisions, and the figures go
to ``soak.json`` with two charts (``rss.svg``, ``lag.svg``) in the report folder.

Against a staging cluster (``KAFKA_BOOTSTRAP_SERVERS``) it starts and restarts no broker; a broker
of its own gets its whole heap at start (local_kafka.WHOLE_HEAP_AT_START).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.config import REPO_ROOT, Settings
from pipeline.tools.bench.processes import free_port, machine
from pipeline.tools.bench.report import say
from pipeline.tools.bench.workers import app_settings
from pipeline.tools.children import answers, fraud_command, spawn, stop_child, wait_for
from pipeline.tools.local_kafka import WHOLE_HEAP_AT_START, LocalKafka
from pipeline.tools.soak.figures import (
    BROKER_RESTART,
    KILL,
    Fault,
    Sample,
    all_flat,
    fault_plan,
    id_accounting,
    latency_figures,
    memory_summary,
    next_tick,
)
from pipeline.tools.soak.kafka import OffsetProbe, TopicReader
from pipeline.tools.soak.report import clock, write_report
from pipeline.tools.soak.sampling import monitor_count_when, resource_usage, worker_memory_parts
from pipeline.tools.stop_signals import Stopped, stop_signals_raise

WORKERS = ("worker-1", "worker-2")
KILLED = "worker-2"


@dataclass(frozen=True)
class SoakOptions:
    minutes: float = 60.0
    rate: float = 200.0
    kill_every_minutes: float = 5.0
    restart_broker: bool = True
    partitions: int = 4
    sample_seconds: float = 10.0
    progress_seconds: float = 30.0
    warmup_minutes: float | None = None  # default: a third of the run, at most 15 minutes
    drain_timeout_seconds: float = 600.0
    out: Path = REPO_ROOT / "var" / "soak"

    @property
    def warmup_seconds(self) -> float:
        minutes = self.warmup_minutes if self.warmup_minutes is not None else min(15.0, self.minutes / 3)
        return minutes * 60


def run_soak(settings: Settings, options: SoakOptions) -> dict[str, Any]:
    """Run the soak; write its report into ``options.out``; return the report. SIGTERM or Ctrl-C
    stops every child and the soak's broker first (pipeline/tools/stop_signals.py)."""
    try:
        with stop_signals_raise():
            return _run_soak(settings, options)
    except Stopped as stop:
        say(f"soak interrupted by {stop}: every child and the soak's broker stopped; no report")
        return {"passed": False, "interrupted": str(stop)}


def _run_soak(settings: Settings, options: SoakOptions) -> dict[str, Any]:
    broker: LocalKafka | None = None
    if not settings.kafka_bootstrap_servers:  # a broker of its own, which it may restart
        version, home = settings.local_kafka_version, settings.local_kafka_home
        broker = LocalKafka(
            version, free_port(), home, controller_port=free_port(), jvm_options=WHOLE_HEAP_AT_START
        )
        say(f"starting a Kafka {broker.version} broker for the soak on {broker.bootstrap_servers}")
        settings = settings.model_copy(update={"kafka_bootstrap_servers": broker.start()})
    elif options.restart_broker:
        say(f"Kafka at {settings.bootstrap_servers}: not restarted (the soak restarts only its own broker)")
    try:
        return Soak(settings, options, broker if options.restart_broker else None, broker).run()
    finally:
        if broker is not None:
            broker.stop()
            broker.wipe()


class Soak:
    """One soak run: its processes, its faults, its samples."""

    def __init__(
        self,
        base: Settings,
        options: SoakOptions,
        restartable: LocalKafka | None,
        local_broker: LocalKafka | None,
    ) -> None:
        self.options, self.restartable, self.local_broker = options, restartable, local_broker
        app_id = f"soak-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        out = options.out
        for folder in (out / "logs", out / "state"):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        self.logs = out / "logs"
        self.settings = app_settings(
            base,
            app_id,
            topic_transactions=f"{app_id}-transactions",
            topic_lists=f"{app_id}-list-updates",
            topic_partitions=options.partitions,
            data_dir=out / "state",
            simulator_rate=options.rate,
            simulator_rhythm=False,
            monitor_host="127.0.0.1",
            monitor_port=free_port(),
        )
        self.worker_ports = {role: free_port() for role in WORKERS}
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.samples: list[Sample] = []
        self.offsets: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.awaiting_ready: dict[str, dict[str, Any]] = {}
        self.started_at: dict[int, float] = {}
        self.started = time.monotonic()

    # --- processes -----------------------------------------------------------------------------
    def _command(self, role: str) -> tuple[list[str], dict[str, str]]:
        if role in WORKERS:
            worker = self.settings.model_copy(update={"worker_web_port": self.worker_ports[role]})
            return fraud_command("worker", "--loglevel", "warning"), worker.child_environment()
        if role == "simulator":
            return fraud_command("simulate", "--metrics-port", "0"), self.settings.child_environment()
        return fraud_command("monitor"), self.settings.child_environment()

    def _start(self, role: str) -> subprocess.Popen[bytes]:
        command, env = self._command(role)
        child = spawn(command, env, self.logs / f"{role}.log")
        self.children[role] = child
        self.started_at[child.pid] = time.monotonic()
        return child

    def _ready_url(self, role: str) -> str:
        if role in WORKERS:
            return f"http://127.0.0.1:{self.worker_ports[role]}/readyz"
        return f"http://127.0.0.1:{self.settings.monitor_port}/healthz"

    def _start_everything(self) -> None:
        s = self.settings
        say(
            f"soak {s.app_id}: {self.options.minutes:g} min at {self.options.rate:g} transactions/s, "
            f"{s.topic_partitions} partitions, Kafka {s.bootstrap_servers}; logs in {self.logs}"
        )
        for role in WORKERS:
            self._start(role)
        for role in WORKERS:
            wait_for(self._ready_url(role), self.children, timeout=180)
        self._start("monitor")
        wait_for(self._ready_url("monitor"), self.children, timeout=120)
        self._start("simulator")
        self.started = time.monotonic()
        say("workers ready, monitor up, simulator started")

    def _stop_everything(self) -> None:
        for role in ("simulator", "monitor", *WORKERS):
            child = self.children.pop(role, None)
            if child is not None:
                stop_child(role, child, timeout=30)

    # --- the run -------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def run(self) -> dict[str, Any]:
        options = self.options
        faults = fault_plan(options.minutes, options.kill_every_minutes, self.restartable is not None)
        say("faults: " + (", ".join(f"{f.action} at {clock(f.at)}" for f in faults) or "none"))
        probe = OffsetProbe(self.settings)
        try:
            self._start_everything()
            next_sample, next_progress = 0.0, options.progress_seconds
            while (now := self.elapsed()) < options.minutes * 60:
                self._check_children()
                if faults and faults[0].at <= now:
                    self._cause(faults.pop(0))
                if now >= next_sample:
                    self._sample()
                    next_sample = next_tick(next_sample, options.sample_seconds, now)
                if now >= next_progress:
                    self._progress(probe)
                    next_progress = next_tick(next_progress, options.progress_seconds, now)
                self._check_ready()
                time.sleep(0.5)
            report = self._finish(probe)
        finally:
            probe.close()
            self._stop_everything()
            shutil.rmtree(self.options.out / "state", ignore_errors=True)  # the workers' RocksDB
        return report

    def _check_children(self) -> None:
        for role, child in list(self.children.items()):
            if child.poll() is not None:
                say(
                    f"  {clock(self.elapsed())} {role} exited by itself with {child.returncode}; "
                    "restarting it"
                )
                self._record("unexpected_exit", role=role, pid=child.pid, returncode=child.returncode)
                self._start(role)

    def _cause(self, fault: Fault) -> None:
        if fault.action == KILL:
            child = self.children[KILLED]
            child.kill()
            child.wait(30)
            new = self._start(KILLED)
            event = self._record(KILL, role=KILLED, pid=child.pid, new_pid=new.pid)
            self.awaiting_ready[KILLED] = event
            say(f"  {clock(event['at'])} SIGKILL to {KILLED} (pid {child.pid}); restarted as pid {new.pid}")
        elif fault.action == BROKER_RESTART and self.restartable is not None:
            stopping = self.elapsed()
            say(f"  {clock(stopping)} stopping the broker")
            self.restartable.stop()
            time.sleep(5)
            self.restartable.start(timeout=180)
            event = self._record(BROKER_RESTART, stopped_at=round(stopping, 1))
            say(f"  {clock(event['at'])} broker started again after {event['at'] - stopping:.0f} s")

    def _record(self, action: str, **detail: Any) -> dict[str, Any]:
        event = {"at": round(self.elapsed(), 1), "action": action, **detail}
        self.events.append(event)
        return event

    def _check_ready(self) -> None:
        for role, event in list(self.awaiting_ready.items()):
            if answers(self._ready_url(role), timeout=0.3):
                event["ready_after_s"] = round(self.elapsed() - event["at"], 1)
                del self.awaiting_ready[role]

    def _processes(self) -> dict[str, int]:
        """The pids of the running processes, by role; a process younger than two seconds is
        left out (its memory is still the fork's)."""
        young = time.monotonic() - 2
        pids = {
            role: child.pid
            for role, child in self.children.items()
            if child.poll() is None and self.started_at.get(child.pid, 0) < young
        }
        broker_pid = self.local_broker.pid() if self.local_broker is not None else None
        if broker_pid is not None:
            pids["broker"] = broker_pid
        return pids

    def _sample(self) -> None:
        at = self.elapsed()
        for role, pid in self._processes().items():
            usage = resource_usage(pid)
            if usage is not None:
                parts = (
                    worker_memory_parts(f"http://127.0.0.1:{self.worker_ports[role]}/metrics")
                    if role in WORKERS
                    else None
                )
                self.samples.append(Sample(round(at, 1), role, pid, *usage, parts_mb=parts))

    def _latest_rss(self) -> str:
        latest: dict[str, float] = {}
        for sample in self.samples:
            latest[sample.role] = sample.rss_mb
        return ", ".join(f"{role} {mb:,.0f}" for role, mb in sorted(latest.items()))

    def _progress(self, probe: OffsetProbe) -> None:
        at = self.elapsed()
        offsets = probe.lag()
        kills = sum(event["action"] == KILL for event in self.events)
        restarts = sum(event["action"] == BROKER_RESTART for event in self.events)
        head = f"[{clock(at)}/{clock(self.options.minutes * 60)}]"
        if offsets is None:
            say(f"{head} Kafka does not answer | RSS MiB: {self._latest_rss()}")
            return
        offsets["at"] = round(at, 1)
        self.offsets.append(offsets)
        say(
            f"{head} produced {offsets['produced']:,} ({offsets['produced'] / max(at, 1):,.0f}/s), "
            f"input lag {offsets['lag']:,} | RSS MiB: {self._latest_rss()} | "
            f"{kills} kills, {restarts} broker restarts"
        )

    # --- the accounting ------------------------------------------------------------------------
    def _finish(self, probe: OffsetProbe) -> dict[str, Any]:
        s, options = self.settings, self.options
        ran = self.elapsed()
        self._sample()
        say(f"{clock(ran)}: stopping the simulator, then counting")
        simulator = self.children.pop("simulator")
        stop_child("simulator", simulator, timeout=60)
        produced_reader = TopicReader(s, s.topic_transactions, s.topic_partitions)
        produced = [orjson.loads(value)["transaction_id"] for value in produced_reader.read_to_end()]
        produced_reader.close()
        say(f"{len(produced):,} transactions on the input topic; waiting until each has a decision")
        decided, latencies, drained_after = self._read_decisions(set(produced))
        self._sample()
        accounting = id_accounting(produced, decided)
        dead_reader = TopicReader(s, s.topic_dead_letter, s.topic_partitions)
        dead = [orjson.loads(value) for value in dead_reader.read_to_end()]
        dead_reader.close()
        monitor_count = monitor_count_when(self.settings.monitor_port, accounting["decided_distinct"])
        memory = memory_summary(self.samples, options.warmup_seconds)
        report: dict[str, Any] = {
            "app_id": s.app_id,
            "machine": machine(),
            "options": {**asdict(options), "out": str(options.out)},
            "kafka": s.bootstrap_servers,
            "broker_restarted_by_soak": self.restartable is not None,
            "ran_seconds": round(ran, 1),
            "offered_rate": options.rate,
            "produced_rate": round(len(produced) / ran, 1),
            "ids": accounting,
            "all_decided_after_stop_s": drained_after,
            "dead_letters": len(dead),
            "dead_letter_reasons": dict(Counter(d.get("reason_code", "?") for d in dead)),
            "monitor_transactions": monitor_count,
            "latency": latency_figures(latencies),
            "max_input_lag": max((o["lag"] for o in self.offsets), default=None),
            "kills": sum(e["action"] == KILL for e in self.events),
            "broker_restarts": sum(e["action"] == BROKER_RESTART for e in self.events),
            "unexpected_exits": sum(e["action"] == "unexpected_exit" for e in self.events),
            "events": self.events,
            "memory": memory,
            "rss_flat_after_warmup": all_flat(memory),
            "samples": [asdict(sample) for sample in self.samples],
            "offsets": self.offsets,
        }
        report["passed"] = (
            accounting["missing"] == 0 and not report["dead_letters"] and report["rss_flat_after_warmup"]
        )
        write_report(report, self.options.out)
        return report

    def _read_decisions(
        self, produced: set[str]
    ) -> tuple[list[str], list[tuple[float, float]], float | None]:
        """Every decision's id and (decision time from the start, seconds from event to decision),
        read until every produced id is decided or the drain timeout passes."""
        s = self.settings
        reader = TopicReader(s, s.topic_decisions, s.topic_partitions)
        decided: list[str] = []
        latencies: list[tuple[float, float]] = []
        undecided = set(produced)
        stopped = time.monotonic()
        wall_start = time.time() - self.elapsed()
        last_report = stopped
        try:
            while True:
                for value in reader.read_to_end():
                    decision = orjson.loads(value)
                    decided.append(decision["transaction_id"])
                    undecided.discard(decision["transaction_id"])
                    decided_at = datetime.fromisoformat(decision["decided_at"]).timestamp()
                    event_time = datetime.fromisoformat(decision["event_time"]).timestamp()
                    latencies.append((decided_at - wall_start, decided_at - event_time))
                waited = time.monotonic() - stopped
                if not undecided:
                    return decided, latencies, round(waited, 1)
                if waited > self.options.drain_timeout_seconds:
                    say(f"  {len(undecided):,} transactions still undecided after {waited:.0f} s; giving up")
                    return decided, latencies, None
                if time.monotonic() - last_report >= 10:
                    say(f"  {len(undecided):,} transactions still undecided ({waited:.0f} s after the stop)")
                    last_report = time.monotonic()
                self._check_children()
                time.sleep(1)
        finally:
            reader.close()
