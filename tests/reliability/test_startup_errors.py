"""Bad configuration at start-up: one clear line on stderr and exit code 2, never a traceback or a
hang; a corrupt or tampered model snapshot is refused and the worker runs on the previous one.

Every case runs the real ``fraud`` command (``python -m pipeline``) as a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from pipeline.config import REPO_ROOT, Settings
from pipeline.detection.model import OnlineFraudModel
from pipeline.wiring import snapshot_store
from tests.conftest import free_port

COMMANDS = [["worker"], ["monitor"], ["simulate", "--count", "1"]]
TIMEOUT = 60.0  # far above the bounded waits below: a hang fails the test instead of blocking CI


def run_fraud(args: list[str], module: str = "pipeline", **env_vars: str) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGS`` with only the given FRAUD_* variables; fails on a hang."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.update(env_vars)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_unknown_setting_is_named(command: list[str], tmp_path: Path) -> None:
    result = run_fraud(command, FRAUD_DATA_DIR=str(tmp_path), FRAUD_TOPIC_PARTITIONZ="8")
    assert_one_clear_line(result, "unknown setting", "FRAUD_TOPIC_PARTITIONZ")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_unreachable_broker_fails_within_the_connect_timeout(command: list[str], tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = run_fraud(
        command,
        FRAUD_KAFKA_BOOTSTRAP_SERVERS=address,
        FRAUD_KAFKA_CONNECT_TIMEOUT_SECONDS="3",
        FRAUD_DATA_DIR=str(tmp_path),
        FRAUD_WORKER_WEB_PORT=str(free_port()),
        FRAUD_MONITOR_PORT=str(free_port()),
        FRAUD_SIMULATOR_METRICS_PORT="0",
    )
    line = assert_one_clear_line(result, "cannot reach Kafka", address, "within 3 s")
    print(f"{command[0]}: exit {result.returncode} after {time.monotonic() - started:.1f} s: {line}")


def test_python_m_monitor_checks_the_broker_too(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    result = run_fraud(
        [],
        module="monitor",
        FRAUD_KAFKA_BOOTSTRAP_SERVERS=address,
        FRAUD_KAFKA_CONNECT_TIMEOUT_SECONDS="2",
        FRAUD_MONITOR_PORT=str(free_port()),
        FRAUD_DATA_DIR=str(tmp_path),
    )
    assert_one_clear_line(result, "cannot reach Kafka", address)


@pytest.mark.parametrize(
    ("command", "setting"), [("worker", "FRAUD_WORKER_WEB_PORT"), ("monitor", "FRAUD_MONITOR_PORT")]
)
def test_port_in_use_is_named(command: str, setting: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_fraud(
            [command],
            **{setting: str(port)},
            FRAUD_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",  # checked after the port
            FRAUD_DATA_DIR=str(tmp_path),
        )
    assert_one_clear_line(result, f"cannot listen on 127.0.0.1:{port}", setting)


BAD_RULE_FILES = {
    "not_yaml": ("rules:\n  - id: X\n    when: [\n", "not valid YAML"),
    "unknown_feature": (
        "version: 1\nrules:\n  - id: X\n    fraud_type: malicious_behavior\n    action: review\n"
        "    when: no_such_feature > 3\n    reason: x\n",
        "unknown name 'no_such_feature'",
    ),
    "missing": (None, "cannot read rule file"),
}


@pytest.mark.kafka
@pytest.mark.parametrize("case", sorted(BAD_RULE_FILES))
def test_malformed_rule_file_stops_the_worker_with_one_line(case: str, make_settings, tmp_path: Path) -> None:
    text, needle = BAD_RULE_FILES[case]
    rules = tmp_path / "rules.yaml"
    if text is not None:
        rules.write_text(text)
    settings = make_settings(rules_file=rules)
    result = run_fraud(["worker"], **settings.to_environment())
    # The YAML parser's message spans lines (it shows the spot); the first line names file and problem.
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith(f"fraud: {rules}"), first
    assert needle in result.stderr


def trained(model: OnlineFraudModel, start: int, count: int) -> OnlineFraudModel:
    for i in range(start, start + count):
        model.learn(f"tx-{i}", {"amount": float(i % 7), "card_count_1h": 1.0}, i % 3 == 0, "identity_theft")
    return model


def tamper(path: Path) -> None:
    """Change the pickled payload and fix its checksum: only the HMAC signature can tell."""
    payload = bytearray(path.read_bytes())
    payload[len(payload) // 2] ^= 0x01
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = hashlib.sha256(payload).hexdigest()
    path.write_bytes(bytes(payload))
    meta_path.write_text(json.dumps(meta))


def corrupt(path: Path) -> None:
    """Truncate the file, as a crash or a full disk would."""
    path.write_bytes(path.read_bytes()[:-100])


@pytest.mark.kafka
def test_worker_refuses_corrupt_and_tampered_snapshots_and_loads_the_previous_one(
    make_settings, start_worker
) -> None:
    settings: Settings = make_settings()
    store = snapshot_store(settings)
    model = OnlineFraudModel()
    good = trained(model, 0, 30)
    good_version = good.version
    store.save(good, good.labels_learnt)
    time.sleep(0.01)  # snapshot names carry the time in microseconds
    tampered_path = store.save(trained(model, 30, 30), model.labels_learnt)
    time.sleep(0.01)
    corrupt_path = store.save(trained(model, 60, 30), model.labels_learnt)
    assert [p.name for p in store.snapshots()][:2] == [corrupt_path.name, tampered_path.name]
    tamper(tampered_path)
    corrupt(corrupt_path)

    worker = start_worker(settings)
    readyz = requests.get(f"{worker.url}/readyz", timeout=5).json()
    assert (readyz["ready"], readyz["model"]) == (True, good_version), (readyz, worker.log())
    assert good_version.endswith("@30")
    log = worker.log_path.read_text(errors="replace")
    assert f"skipping model snapshot: {corrupt_path.name}: checksum mismatch" in log, log
    assert f"skipping model snapshot: {tampered_path.name}: signature mismatch" in log, log
    assert "Traceback" not in log

    listing = run_fraud(["model", "list"], **settings.to_environment())
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()}
    assert "checksum mismatch" in rows[corrupt_path.name]
    assert "signature mismatch" in rows[tampered_path.name]
    assert rows[store.snapshots()[2].name].rstrip().endswith("ok")
