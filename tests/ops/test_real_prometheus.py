"""A real Prometheus (Debian's `prometheus`) scrapes a real worker, the real simulator and the real
monitor on the real broker, with deploy/prometheus/rules.yml loaded, and sees exactly what went
through: transactions produced by the simulator = consumed by the worker = decided = read by the
monitor, dead letters by reason as sent, labels produced = received, and the monitor's lag.

Prometheus runs on a free port with its own configuration and TSDB in the test's temporary
directory: nothing is shared with a system Prometheus service (the Debian package installs one;
nothing here starts or talks to it). The metric names Prometheus saw, with a sample value each, are
written to tests/artifacts/prometheus-metrics.txt (and printed) for the operations notes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import yaml

from monitor.state.scored import pending_labels_topic
from pipeline.config import REPO_ROOT, Settings
from pipeline.worker.telemetry import DEAD_LETTER_REASONS
from tests.conftest import free_port
from tests.ops.conftest import RULES_FILE
from tests.ops.test_grafana_dashboard import DASHBOARDS_DIR as GRAFANA_DASHBOARDS
from tests.ops.test_grafana_dashboard import expressions as dashboard_expressions
from tests.support import consume_until, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

JOBS = ("worker", "simulator", "monitor")  # the job names of deploy/prometheus/*.yml
TRANSACTIONS = 400
SIMULATOR_RATE = 100.0  # transactions per second: the simulator produces for about 4 s
LABEL_DELAY = 20.0  # the simulator lives this long after its last transaction, publishing labels
# Refused input sent straight to the transactions topic, and the reason each must be dead-lettered with.
BAD_INPUT: list[tuple[bytes, str]] = [
    (b"not json {", "not_json"),
    (b"", "not_json"),
    (b"\xff\xfe\xfa", "not_utf8"),
    (b"[1, 2, 3]", "not_an_object"),
    (orjson.dumps({"transaction_id": "bad-1"}), "schema_violation"),
    (orjson.dumps({"transaction_id": "bad-2", "amount": "a lot"}), "schema_violation"),
]
ARTIFACT = REPO_ROOT / "tests" / "artifacts" / "prometheus-metrics.txt"
Vector = dict[tuple[tuple[str, str], ...], float]


class PrometheusProcess:
    """``prometheus`` scraping ``targets`` ({job: host:port}) every second, with the rules."""

    def __init__(self, binary: str, targets: dict[str, str], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES_FILE)],
            "scrape_configs": [
                {"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}
                for job, target in targets.items()
            ],
        }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            cwd=workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.log()}")
            try:
                return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, timeout, lambda: f"prometheus not ready:\n{self.log()}")

    def api(self, path: str, **params: str) -> Any:
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=5)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> Vector:
        """An instant vector as {sorted label pairs (without __name__): value}."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return {
            tuple(sorted((k, v) for k, v in item["metric"].items() if k != "__name__")): float(
                item["value"][1]
            )
            for item in data["result"]
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


class FraudProcess:
    """``python -m pipeline <args>`` with ``settings`` as its environment (like conftest's workers)."""

    def __init__(self, settings: Settings, args: list[str], log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
        env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        env.update(settings.to_environment())
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_http(self, url: str, timeout: float = 90.0) -> None:
        def answers() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"exited with {self.process.returncode}:\n{self.log()}")
            try:
                return requests.get(url, timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(answers, timeout, lambda: f"{url} did not answer 200:\n{self.log()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


def wait_for(condition: Callable[[], Any], timeout: float, explain: Callable[[], str]) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``explain()`` at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout}s: {explain()}")


@pytest.fixture
def start_prometheus(
    prometheus_binary: str, tmp_path: Path
) -> Iterator[Callable[[dict[str, str]], PrometheusProcess]]:
    started: list[PrometheusProcess] = []

    def factory(targets: dict[str, str]) -> PrometheusProcess:
        prometheus = PrometheusProcess(prometheus_binary, targets, tmp_path / f"prometheus-{len(started)}")
        started.append(prometheus)
        prometheus.wait_ready()
        return prometheus

    try:
        yield factory
    finally:
        for prometheus in started:
            prometheus.stop()


@pytest.fixture
def start_fraud(tmp_path: Path) -> Iterator[Callable[[Settings, list[str]], FraudProcess]]:
    started: list[FraudProcess] = []

    def factory(settings: Settings, args: list[str]) -> FraudProcess:
        process = FraudProcess(settings, args, tmp_path / f"{args[0]}-{len(started)}.log")
        started.append(process)
        return process

    try:
        yield factory
    finally:
        for process in reversed(started):
            process.stop()


def by(label: str, vector: Vector) -> dict[str, float]:
    return {dict(key)[label]: value for key, value in vector.items()}


def test_prometheus_scrapes_worker_simulator_and_monitor_and_sees_what_went_through(
    make_settings, start_worker, start_fraud, start_prometheus, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(
        simulator_metrics_port=free_port(),
        simulator_rate=SIMULATOR_RATE,
        simulator_label_delay_seconds=LABEL_DELAY,
        simulator_rhythm=False,
        simulator_customers=300,
        simulator_merchants=60,
        simulator_unauthorized_rate=0.02,
        simulator_identity_theft_rate=0.02,
        simulator_malicious_rate=0.01,
    )
    targets = {
        "worker": f"127.0.0.1:{settings.worker_web_port}",
        "simulator": f"127.0.0.1:{settings.simulator_metrics_port}",
        "monitor": f"127.0.0.1:{settings.monitor_port}",
    }
    worker = start_worker(settings)
    monitor = start_fraud(settings, ["monitor"])
    monitor.wait_http(f"http://{targets['monitor']}/readyz")
    prometheus = start_prometheus(targets)

    def up() -> dict[str, float]:
        return by("job", prometheus.query("up"))

    # Worker and monitor are scraped before any traffic: the counters' first samples are the zeros,
    # so that rates over the traffic are not empty. The simulator is not started yet: its target is down.
    wait_for(lambda: up() == {"worker": 1.0, "monitor": 1.0, "simulator": 0.0}, 30, lambda: f"{up()}")
    assert prometheus.query('fraud_transactions_consumed_total{job="worker"}') == {
        (("instance", targets["worker"]), ("job", "worker")): 0.0
    }

    produce(settings, settings.topic_transactions, ((None, raw) for raw, _ in BAD_INPUT))
    simulator = start_fraud(settings, ["simulate", "--count", str(TRANSACTIONS)])

    # While the simulator runs (it lives LABEL_DELAY s after its last transaction), every job is up
    # and Prometheus sees every transaction it produced.
    def simulator_done() -> bool:
        produced = prometheus.query('fraud_simulator_produced_total{job="simulator"}')
        return by("kind", produced).get("transaction") == TRANSACTIONS and up() == dict.fromkeys(JOBS, 1.0)

    wait_for(simulator_done, 60, lambda: f"up {up()}; simulator log:\n{simulator.log()}")

    decisions = consume_until(
        settings,
        settings.topic_decisions,
        lambda got: len({d["transaction_id"] for d in got}) >= TRANSACTIONS,
    )
    by_id = {d["transaction_id"]: d for d in decisions}
    assert len(by_id) == TRANSACTIONS, "one decision per simulated transaction, none for the bad input"
    flagged = {i for i, d in by_id.items() if d["decision"] != "allow"}
    assert flagged, "the simulated fraud must raise some alerts"
    alerts = consume_until(
        settings, settings.topic_alerts, lambda got: flagged <= {a["transaction_id"] for a in got}
    )
    alert_ids = {a["transaction_id"] for a in alerts}
    alerts_by_type = Counter(a["fraud_type"] for a in {a["transaction_id"]: a for a in alerts}.values())
    outcomes = Counter(d["decision"] for d in by_id.values())
    bad_reasons = Counter(reason for _, reason in BAD_INPUT)

    # What Prometheus scraped is what went through, once everything has caught up. The simulator
    # may have exited by now: its last values are read with last_over_time.
    expected: dict[str, Any] = {
        "simulator produced": float(TRANSACTIONS),
        "worker consumed": float(TRANSACTIONS + len(BAD_INPUT)),
        "worker decisions": float(TRANSACTIONS),
        "worker outcomes": {k: float(v) for k, v in outcomes.items()},
        "worker alerts by type": {k: float(v) for k, v in alerts_by_type.items()},
        "worker dead letters by reason": {r: float(bad_reasons[r]) for r in DEAD_LETTER_REASONS},
        "monitor decisions read": float(TRANSACTIONS),
        "monitor alerts read": float(len(alerts)),
        "monitor lag": 0.0,
        "monitor lag partitions": {
            (topic, str(p))
            for topic in (
                settings.topic_decisions,
                settings.topic_alerts,
                settings.topic_labels,
                pending_labels_topic(settings),  # read for the rule what-if
                settings.topic_model_health,  # the workers' model-health reports
                settings.topic_audit,  # the audit trail
            )
            for p in range(settings.topic_partitions)
        },
    }
    assert len(alerts) == len(alert_ids), "one alert per flagged transaction on a clean run"

    def total(expr: str) -> float:
        return sum(prometheus.query(expr).values())

    def nonzero(label: str, expr: str) -> dict[str, float]:
        return {k: v for k, v in by(label, prometheus.query(expr)).items() if v}

    def scraped() -> dict[str, Any]:
        monitor_read = by("topic", prometheus.query('fraud_monitor_messages_consumed_total{job="monitor"}'))
        lag = prometheus.query('fraud_monitor_consumer_lag_messages{job="monitor"}')
        return {
            "simulator produced": total(
                'last_over_time(fraud_simulator_produced_total{job="simulator", kind="transaction"}[10m])'
            ),
            "worker consumed": total('fraud_transactions_consumed_total{job="worker"}'),
            "worker decisions": total('fraud_decisions_total{job="worker"}'),
            "worker outcomes": nonzero("decision", 'sum by (decision) (fraud_decisions_total{job="worker"})'),
            "worker alerts by type": nonzero(
                "fraud_type", 'sum by (fraud_type) (fraud_alerts_total{job="worker"})'
            ),
            "worker dead letters by reason": by(
                "reason", prometheus.query('sum by (reason) (fraud_dead_letters_total{job="worker"})')
            ),
            "monitor decisions read": monitor_read.get(settings.topic_decisions),
            "monitor alerts read": monitor_read.get(settings.topic_alerts),
            "monitor lag": sum(lag.values()),
            "monitor lag partitions": {(dict(k)["topic"], dict(k)["partition"]) for k in lag},
        }

    wait_for(
        lambda: scraped() == expected,
        60,
        lambda: f"expected {expected},\nscraped  {scraped()}\nworker /metrics:\n{worker.metrics()[-2000:]}",
    )

    # Labels: the simulator publishes one per transaction LABEL_DELAY s after it; the worker and the
    # monitor read each one, and the simulator's ground-truth counter per fraud type is what the
    # labels say (fraud episodes start seconds after the run begins: a 4-second run may have none).
    labels = consume_until(
        settings, settings.topic_labels, lambda got: len(got) >= TRANSACTIONS, timeout=LABEL_DELAY + 60
    )
    assert len(labels) == TRANSACTIONS
    truth = Counter(label["fraud_type"] for label in labels if label["is_fraud"])

    def labels_scraped() -> dict[str, Any]:
        frauds = "last_over_time(fraud_simulator_fraud_transactions_total{job='simulator'}[10m])"
        return {
            "worker labels": total('fraud_labels_total{job="worker"}'),
            "monitor labels read": by(
                "topic", prometheus.query('fraud_monitor_messages_consumed_total{job="monitor"}')
            ).get(settings.topic_labels),
            "simulator frauds": nonzero("fraud_type", f"sum by (fraud_type) ({frauds})"),
        }

    labels_expected = {
        "worker labels": float(TRANSACTIONS),
        "monitor labels read": float(TRANSACTIONS),
        "simulator frauds": {k: float(v) for k, v in truth.items()},
    }
    wait_for(lambda: labels_scraped() == labels_expected, 60, lambda: f"{labels_scraped()}")

    # Every rule of rules.yml is loaded and evaluates without error; the recording rules produce
    # series from the real metrics; nothing fires on this healthy system.
    declared = [
        rule.get("record") or rule.get("alert")
        for group in yaml.safe_load(RULES_FILE.read_text())["groups"]
        for rule in group["rules"]
    ]

    def rules_healthy() -> list[dict[str, Any]] | None:
        loaded = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        return loaded if all(rule["health"] == "ok" for rule in loaded) else None

    loaded = wait_for(rules_healthy, 30, lambda: str(prometheus.api("rules")))
    assert [rule["name"] for rule in loaded] == declared
    assert all(not rule.get("lastError") for rule in loaded)
    firing = [rule["name"] for rule in loaded if rule["type"] == "alerting" and rule["state"] == "firing"]
    assert not firing, f"alerts firing on a healthy system: {firing}"

    def recordings() -> dict[str, Vector]:
        return {
            name: prometheus.query(f'{name}{{job="{job}"}}')
            for name, job in (
                ("job:fraud_transactions_consumed:rate5m", "worker"),
                ("job_fraud_type:fraud_alerts_per_transaction:ratio_rate5m", "worker"),
                ("job:faust_consumer_lag_messages:sum", "worker"),
                ("job:fraud_monitor_consumer_lag_messages:sum", "monitor"),
            )
        }

    def recorded() -> bool:
        found = recordings()
        rates = found["job:fraud_transactions_consumed:rate5m"].values()
        # Every type has a series from the start (the worker creates them at zero); the types
        # alerted, and only those, have a rate above zero.
        ratios = by("fraud_type", found["job_fraud_type:fraud_alerts_per_transaction:ratio_rate5m"])
        alerted = {fraud_type for fraud_type, ratio in ratios.items() if ratio > 0}
        return all(found.values()) and all(v > 0 for v in rates) and alerted == set(alerts_by_type)

    wait_for(recorded, 30, lambda: f"recording rules without the expected series: {recordings()}")

    # Every query of the Grafana dashboard runs on this Prometheus; those of the processes still
    # running return series (the simulator has exited by now: its rates are empty; no alert fires).
    empty = []
    for path in sorted(GRAFANA_DASHBOARDS.glob("*.json")):
        for where, expr in dashboard_expressions(json.loads(path.read_text())):
            concrete = expr.replace("$__rate_interval", "1m").replace("$job", "worker")
            may_be_empty = "fraud_simulator_" in expr or "ALERTS" in expr
            if not prometheus.query(concrete) and not may_be_empty:
                empty.append(f"{path.name} {where}: {concrete}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)

    report = metrics_report(prometheus)
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(report)
    with capsys.disabled():
        print(f"\n{report}")
    for name in (
        "fraud_transactions_consumed_total",
        "fraud_scoring_latency_seconds_bucket",
        "fraud_end_to_end_latency_seconds_bucket",
        "faust_topic_partition_end_offset",
        "faust_topic_partition_offset_commited",
        "fraud_simulator_produced_total",
        "fraud_simulator_delivery_errors_total",
        "fraud_monitor_consumer_lag_messages",
        "fraud_monitor_active_sessions",
    ):
        assert f"\n{name} " in report, f"{name} not scraped"


def metrics_report(prometheus: PrometheusProcess) -> str:
    """Every fraud_/faust_ metric name Prometheus has, by job, with its type (from the scrape's
    metadata), its labels and one sample value (the largest series, over the last 10 minutes)."""
    names = [n for n in prometheus.api("label/__name__/values") if n.startswith(("fraud_", "faust_"))]
    metadata = prometheus.api("metadata")
    lines = [
        "# Metric names Prometheus scraped in tests/ops/test_real_prometheus.py",
        "# name  job  type  labels  sample  (one line each; sample: the largest series' last value)",
    ]
    for name in sorted(names):
        series = prometheus.api("series", **{"match[]": name})
        jobs = sorted({s["job"] for s in series})
        labels = sorted({k for s in series for k in s} - {"__name__", "job", "instance"})
        values = prometheus.query(f"last_over_time({name}[10m])")
        sample = max(values.values()) if values else float("nan")
        family = next(
            (n for n in (name, *(name.removesuffix(x) for x in SUFFIXES)) if n in metadata),
            None,
        )
        kind = metadata[family][0]["type"] if family else "?"
        lines.append(f"{name} {','.join(jobs)} {kind} {','.join(labels) or '-'} {sample:g}")
    return "\n".join(lines) + "\n"


SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum")
