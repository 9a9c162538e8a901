"""Static checks of the Grafana provisioning in deploy/grafana: the data source, the dashboard JSON,
and that every metric its queries use is one the worker, the simulator or the monitor really exports.

The metric names come from the code, not from a copy (tests/ops/metric_names.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import REPO_ROOT
from tests.ops.metric_names import PROMETHEUS_SERIES, all_sample_names, promql_metric_names

GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "fraud.yml"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"

REQUIRED_METRICS = {
    "fraud_transactions_consumed_total",  # throughput
    "fraud_decisions_total",  # decisions by outcome
    "fraud_alerts_total",  # alerts and fraud rate by type
    "fraud_scoring_latency_seconds_bucket",
    "fraud_end_to_end_latency_seconds_bucket",
    "faust_topic_partition_end_offset",  # consumer lag
    "faust_topic_partition_offset_commited",
    "fraud_dead_letters_total",  # by reason
    "fraud_monitor_consumer_lag_messages",
    "fraud_simulator_produced_total",
}


@pytest.fixture(scope="module")
def exported_names() -> set[str]:
    return all_sample_names()


def test_the_expression_parser() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(a_bucket{job=~"$job", x="y{z}"}[$__rate_interval])))'
        " / ignoring (t) group_left sum without (i) (b_total offset 5m) > bool 1e3 unless on (j) up"
    )
    assert promql_metric_names(expr) == {"a_bucket", "b_total", "up"}


def dashboards() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def panels_of(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every query of the dashboard: panels, variables, annotations."""
    for panel in panels_of(dashboard):
        for target in panel["targets"]:
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            query = query["query"] if isinstance(query, dict) else query
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
            yield f"variable {variable['name']}", inner.group(1) if inner else query
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            yield f"annotation {annotation['name']!r}", annotation["expr"]


@pytest.fixture(scope="module")
def datasource() -> dict[str, Any]:
    config = yaml.safe_load(DATASOURCES.read_text())
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    return source


def test_the_datasource_is_the_compose_prometheus(datasource: dict[str, Any]) -> None:
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["access"] == "proxy"
    assert datasource["uid"]
    assert datasource.get("isDefault") is True


def test_there_is_a_dashboard() -> None:
    assert [path.name for path in dashboards()] == ["fraud-pipeline.json"]


@pytest.mark.parametrize("path", dashboards(), ids=lambda path: path.name)
def test_dashboard_json_is_valid_and_complete(path: Path, datasource: dict[str, Any]) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"]
    assert "id" not in dashboard or dashboard["id"] is None, "provisioned dashboards carry no database id"
    panels = list(panels_of(dashboard))
    assert panels
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    wanted = {"type": "prometheus", "uid": datasource["uid"]}
    for panel in panels:
        where = f"panel {panel.get('title')!r}"
        assert panel.get("title"), f"{where} has no title"
        assert panel.get("datasource") == wanted, f"{where}: datasource {panel.get('datasource')}"
        assert panel.get("targets"), f"{where} has no target"
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), where
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{where} {target.get('refId')}: empty expression"
            assert target.get("datasource", wanted) == wanted, f"{where} {target.get('refId')}"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), f"{where}: refIds must be unique"
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            assert variable.get("datasource") == wanted, f"variable {variable['name']}"
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            assert annotation.get("datasource") == wanted, f"annotation {annotation['name']}"


@pytest.mark.parametrize("path", dashboards(), ids=lambda path: path.name)
def test_every_metric_the_dashboard_uses_is_exported(path: Path, exported_names: set[str]) -> None:
    dashboard = json.loads(path.read_text())
    used: set[str] = set()
    unknown: list[str] = []
    for where, expr in expressions(dashboard):
        names = promql_metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        used |= names
        unknown += [f"{where}: {name}" for name in sorted(names - exported_names - PROMETHEUS_SERIES)]
    assert not unknown, "metrics no process exports:\n" + "\n".join(unknown)
    assert used >= REQUIRED_METRICS, f"the dashboard does not show {sorted(REQUIRED_METRICS - used)}"


@pytest.mark.parametrize("path", dashboards(), ids=lambda path: path.name)
def test_latency_quantiles_come_from_histogram_buckets(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    quantiles = [expr for _, expr in expressions(dashboard) if "histogram_quantile" in expr]
    assert {re.search(r"histogram_quantile\((0\.\d+)", expr).group(1) for expr in quantiles} >= {
        "0.5",
        "0.95",
        "0.99",
    }
    for expr in quantiles:
        assert re.search(r"by \([^)]*\ble\b", expr), f"the buckets must be summed by le: {expr}"
        assert "_bucket" in expr and "rate(" in expr, expr


def test_compose_provisions_grafana_from_deploy_grafana() -> None:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    grafana = services["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    mounts = {str(v).split(":")[0]: str(v).split(":")[1] for v in grafana["volumes"]}
    assert mounts.get("./deploy/grafana/provisioning") == "/etc/grafana/provisioning"
    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    for provider in providers:
        assert provider["type"] == "file"
        assert mounts.get("./deploy/grafana/dashboards") == provider["options"]["path"]
    for source in mounts:
        assert (REPO_ROOT / source).is_dir(), source
    assert "prometheus" in (grafana.get("depends_on") or [])
    assert "3000:3000" in [str(port) for port in grafana["ports"]]
