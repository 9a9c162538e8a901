"""A real Prometheus (Debian's `prometheus`) scrapes a real worker on the real broker, with
deploy/prometheus/rules.yml loaded, and sees exactly what the worker did.

Prometheus runs on a free port with its own configuration and TSDB in the test's temporary
directory: nothing is shared with a system Prometheus service (the Debian package installs one;
nothing here starts or talks to it).
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import free_port
from tests.e2e.test_pipeline import simulated
from tests.ops.conftest import RULES_FILE
from tests.support import consume_until, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

JOB = "fraud-worker"
TRANSACTIONS = 300


class PrometheusProcess:
    """``prometheus`` scraping ``target`` every second as job fraud-worker, with the rules."""

    def __init__(self, binary: str, target: str, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES_FILE)],
            "scrape_configs": [
                {"job_name": JOB, "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}
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

    def query(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
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
def start_prometheus(prometheus_binary: str, tmp_path: Path) -> Iterator[Callable[[str], PrometheusProcess]]:
    started: list[PrometheusProcess] = []

    def factory(target: str) -> PrometheusProcess:
        prometheus = PrometheusProcess(prometheus_binary, target, tmp_path / f"prometheus-{len(started)}")
        started.append(prometheus)
        prometheus.wait_ready()
        return prometheus

    try:
        yield factory
    finally:
        for prometheus in started:
            prometheus.stop()


def test_prometheus_scrapes_the_worker_and_loads_the_rules(
    make_settings, start_worker, start_prometheus, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings()
    worker = start_worker(settings)
    target = f"127.0.0.1:{settings.worker_web_port}"
    prometheus = start_prometheus(target)

    # The target is up (scraped at least once) before any traffic: the counters' first samples are
    # the zeros, so that rates over the traffic are not empty.
    def target_up() -> bool:
        targets = prometheus.api("targets", state="active")["activeTargets"]
        return any(t["labels"]["job"] == JOB and t["health"] == "up" for t in targets)

    wait_for(target_up, 30, lambda: f"{prometheus.api('targets')}\n{prometheus.log()}")
    assert prometheus.query(f'up{{job="{JOB}"}}') == {(("instance", target), ("job", JOB)): 1.0}
    assert prometheus.query(f'fraud_transactions_consumed_total{{job="{JOB}"}}') == {
        (("instance", target), ("job", JOB)): 0.0
    }

    transactions = simulated(TRANSACTIONS, seed=11)
    ids = {t["transaction_id"] for t in transactions}
    produce(settings, settings.topic_transactions, ((t["card_token"], t) for t in transactions))
    decisions = consume_until(
        settings, settings.topic_decisions, lambda got: ids <= {d["transaction_id"] for d in got}
    )
    flagged = {d["transaction_id"] for d in decisions if d["decision"] != "allow"}
    assert flagged, "the simulated fraud must raise some alerts"
    alerts = consume_until(
        settings, settings.topic_alerts, lambda got: flagged <= {a["transaction_id"] for a in got}
    )
    alerts_by_type = Counter(a["fraud_type"] for a in {a["transaction_id"]: a for a in alerts}.values())
    outcomes = Counter({d["transaction_id"]: d["decision"] for d in decisions}.values())

    # What Prometheus scraped is what the worker did, once it has caught up.
    expected = {
        "consumed": {(("instance", target), ("job", JOB)): float(TRANSACTIONS)},
        "decisions": {(): float(TRANSACTIONS)},
        "outcomes": {(("decision", k),): float(v) for k, v in outcomes.items()},
        "alerts": {(("fraud_type", k),): float(v) for k, v in alerts_by_type.items()},
    }

    def scraped() -> dict[str, Any]:
        return {
            "consumed": prometheus.query(f'fraud_transactions_consumed_total{{job="{JOB}"}}'),
            "decisions": prometheus.query(f'sum(fraud_decisions_total{{job="{JOB}"}})'),
            "outcomes": prometheus.query(f'sum by (decision) (fraud_decisions_total{{job="{JOB}"}})'),
            "alerts": prometheus.query(f'sum by (fraud_type) (fraud_alerts_total{{job="{JOB}"}})'),
        }

    wait_for(
        lambda: scraped() == expected,
        30,
        lambda: f"expected {expected}, scraped {scraped()}\nworker /metrics:\n{worker.metrics()[-3000:]}",
    )

    # Every rule of rules.yml is loaded and evaluates without error; the recording rules produce
    # series from the real metrics.
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
    assert not firing, f"alerts firing on a healthy worker: {firing}"

    def recordings() -> dict[str, Any]:
        return {
            name: prometheus.query(f'{name}{{job="{JOB}"}}')
            for name in (
                "job:fraud_transactions_consumed:rate5m",
                "job_fraud_type:fraud_alerts_per_transaction:ratio_rate5m",
                "job:faust_consumer_lag_messages:sum",
                "faust_topic_partition_end_offset",
                "faust_topic_partition_offset_commited",
            )
        }

    def recorded() -> bool:
        found = recordings()
        rates = found["job:fraud_transactions_consumed:rate5m"].values()
        # A labelled series needs two samples before rate() sees it: one per fraud type alerted.
        types = {
            dict(k)["fraud_type"] for k in found["job_fraud_type:fraud_alerts_per_transaction:ratio_rate5m"]
        }
        return all(found.values()) and all(v > 0 for v in rates) and types == set(alerts_by_type)

    wait_for(recorded, 30, lambda: f"recording rules without the expected series: {recordings()}")

    # The metric names Prometheus saw (for the operations notes).
    names = prometheus.api("label/__name__/values")
    seen = sorted(name for name in names if name.startswith(("fraud_", "faust_")))
    with capsys.disabled():
        print(f"\nmetric names Prometheus scraped from the worker ({len(seen)}):")
        for name in seen:
            print(f"  {name}")
    for name in (
        "fraud_transactions_consumed_total",
        "fraud_decisions_total",
        "fraud_alerts_total",
        "fraud_scoring_latency_seconds_bucket",
        "fraud_end_to_end_latency_seconds_bucket",
        "faust_topic_partition_end_offset",
        "faust_topic_partition_offset_commited",
    ):
        assert name in seen, f"{name} not scraped; saw {seen}"
