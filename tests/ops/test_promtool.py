"""promtool (Debian package `prometheus`) checks the Prometheus configurations and the rules,
and runs the rules' unit tests (deploy/prometheus/rules.test.yml). Offline: `check config` does
not resolve the docker configuration's dns_sd names, it checks their syntax and the rule files.

Without promtool the tests are skipped, except on CI (CI=true) where they fail.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.ops.conftest import PROMETHEUS_DIR, RULES_FILE, RULES_TEST_FILE
from tests.ops.metric_names import PROMETHEUS_SERIES, all_sample_names, promql_metric_names

CONFIGS = ["prometheus.yml", "prometheus.local.yml"]
# level:metric:operations (https://prometheus.io/docs/practices/rules/); the level may be empty.
RECORD_NAME = re.compile(r"^[a-z_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120)


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@pytest.mark.parametrize("filename", CONFIGS)
def test_promtool_check_config(promtool: str, filename: str) -> None:
    result = run(promtool, "check", "config", filename)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 rule files found" in output, output
    assert f"SUCCESS: {filename} is valid prometheus config file syntax" in output, output


@pytest.mark.parametrize("filename", CONFIGS)
def test_configs_load_the_rules_file(filename: str) -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / filename).read_text())
    assert config["rule_files"] == ["rules.yml"]
    assert (PROMETHEUS_DIR / "rules.yml").is_file()


def test_promtool_check_rules_with_every_lint(promtool: str) -> None:
    result = run(promtool, "check", "rules", "--lint=all", "--lint-fatal", RULES_FILE.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_test_rules(promtool: str) -> None:
    result = run(promtool, "test", "rules", RULES_TEST_FILE.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing_and_some_not_firing() -> None:
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts == {
        "FraudRateJump",
        "DeadLettersSpike",
        "ConsumerLagGrowing",
        "MonitorLagGrowing",
        "WorkerDown",
        "NoWorkers",
        "MonitorDown",
        "SimulatorDown",
        "NoDecisions",
        "StaleDecisions",
        "TableRecoverySlow",
        "FraudModelLearntNothing",
        "FraudModelPrecisionLow",
    }
    cases = [
        case
        for test in yaml.safe_load(RULES_TEST_FILE.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert firing == alerts, f"never seen firing: {sorted(alerts - firing)}"
    assert quiet, "no test where an alert does not fire"
    assert quiet <= alerts


def test_rules_follow_the_naming_conventions() -> None:
    for rule in rules():
        if "record" in rule:
            name = rule["record"]
            assert RECORD_NAME.match(name), f"{name}: not level:metric:operations"
            assert "_total" not in name, f"{name}: drop _total once a counter is rated"
            assert "job" in name.split(":")[0], f"{name}: the level must say it keeps `job`"
        else:
            name = rule["alert"]
            assert re.fullmatch(r"(?:[A-Z][a-z0-9]*)+", name), f"{name}: alerts are CamelCase"
            assert rule["labels"]["severity"] in {"warning", "critical"}, name
            assert {"summary", "description"} <= set(rule["annotations"]), name
            assert rule.get("for"), f"{name}: an alert needs a `for` to ride out one bad scrape"


def test_alerts_read_recording_rules_evaluated_before_them_in_their_group() -> None:
    """Groups are evaluated concurrently; within a group, in order. An alert on a recorded series
    must come after that recording rule in the same group, or it may see the previous value."""
    for group in yaml.safe_load(RULES_FILE.read_text())["groups"]:
        recorded: set[str] = set()
        for rule in group["rules"]:
            if "record" in rule:
                recorded.add(rule["record"])
                continue
            used = set(re.findall(r"\b[a-z_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*\b", rule["expr"]))
            assert used <= recorded, f"{rule['alert']} reads {sorted(used - recorded)} recorded elsewhere"


def test_rules_read_only_metrics_the_processes_export() -> None:
    """A misnamed metric would make a rule silently empty: every name is a metric of the worker, the
    simulator or the monitor (from the code), a recording rule of this file, or a series Prometheus
    makes itself (up)."""
    known = all_sample_names() | PROMETHEUS_SERIES | {rule["record"] for rule in rules() if "record" in rule}
    for rule in rules():
        used = promql_metric_names(rule["expr"])
        assert used, rule
        assert used <= known, f"{rule.get('record') or rule.get('alert')}: unknown {sorted(used - known)}"
