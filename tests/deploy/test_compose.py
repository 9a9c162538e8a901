"""Static checks of the container deployment: docker-compose.yml, deploy/Dockerfile and the
Prometheus configurations must agree with the settings and the `fraud` command line.

No Docker engine is needed: the files are parsed, never run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import REPO_ROOT, ConfigurationError, Settings, load_settings
from pipeline.tools.cli import build_parser

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"

REQUIRED_SERVICES = {"kafka", "topics", "worker", "simulator", "monitor", "prometheus"}
FRAUD_SERVICES = ("topics", "worker", "simulator", "monitor")
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
SETTING_NAMES = {f"FRAUD_{name.upper()}" for name in Settings.model_fields}
DEFAULTS = Settings.model_construct()  # the declared defaults, whatever this machine's environment


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping (compose allows a mapping or a list of K=V)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR-default} / ${VAR}, as if VAR were unset."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(str(part) for part in test)


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def port_of(target: str) -> int:
    return int(target.rsplit(":", 1)[1])


# --- docker-compose.yml -----------------------------------------------------------------------


def test_required_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= REQUIRED_SERVICES


def test_python_services_build_the_project_image(services: dict[str, dict[str, Any]]) -> None:
    for name in FRAUD_SERVICES:
        build = services[name]["build"]
        assert build["context"] == ".", name
        assert build["dockerfile"] == "deploy/Dockerfile", name
        assert (REPO_ROOT / build["context"] / build["dockerfile"]).is_file()


def test_kafka_is_a_single_kraft_node(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node_id}@kafka:9093"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    listeners = env["KAFKA_LISTENERS"].split(",")
    assert {"PLAINTEXT://:9092", "CONTROLLER://:9093"} <= set(listeners)
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "PLAINTEXT://kafka:9092" in advertised
    external = [a for a in advertised if a.startswith("EXTERNAL://")]
    assert external and port_of(external[0]) == 29092
    assert "29092:29092" in [str(p) for p in kafka["ports"]]
    protocol_map = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert {listener.split("://")[0] for listener in listeners} <= set(protocol_map)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[key] == "1", key


def test_every_python_service_points_at_the_compose_broker(services: dict[str, dict[str, Any]]) -> None:
    for name in FRAUD_SERVICES:
        assert environment(services[name]).get("KAFKA_BOOTSTRAP_SERVERS") == "kafka:9092", name


def test_worker_can_be_scaled(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")
    # Replicas share the rule file's volume, never a data directory.
    assert worker.get("volumes") == ["rules:/app/rules"]
    assert not environment(worker).get("FRAUD_DATA_DIR", "").startswith("/app/rules")
    assert worker.get("restart") == "unless-stopped"
    assert command(worker) == ["worker"]


def test_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    assert "kafka-broker-api-versions.sh" in healthcheck_text(services["kafka"])
    worker = healthcheck_text(services["worker"])
    assert f"http://localhost:{DEFAULTS.worker_web_port}/healthz" in worker
    assert "urllib" in worker
    monitor = healthcheck_text(services["monitor"])
    assert f"http://localhost:{DEFAULTS.monitor_port}/healthz" in monitor


def test_every_fraud_variable_is_a_real_setting() -> None:
    used = set(re.findall(r"\bFRAUD_[A-Z0-9_]+", COMPOSE_FILE.read_text()))
    assert used, "the compose file sets no FRAUD_* variable"
    assert used <= SETTING_NAMES, f"unknown settings: {sorted(used - SETTING_NAMES)}"


@pytest.mark.parametrize("name", FRAUD_SERVICES)
def test_service_environment_loads(
    name: str, services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each container's environment passes `fraud`'s start-up check (names and values)."""
    monkeypatch.chdir(tmp_path)  # no .env file
    for key in list(os.environ):
        if key.startswith("FRAUD_") or key == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(key)
    for key, value in environment(services[name]).items():
        monkeypatch.setenv(key, interpolate(value))
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        pytest.fail(f"{name}: {exc}")
    assert settings.bootstrap_servers == "kafka:9092"


def test_http_endpoints_listen_on_all_interfaces(services: dict[str, dict[str, Any]]) -> None:
    for name in ("worker", "simulator"):
        assert environment(services[name]).get("FRAUD_METRICS_BIND") == "0.0.0.0", name
    assert environment(services["monitor"]).get("FRAUD_MONITOR_HOST") == "0.0.0.0"
    assert f"{DEFAULTS.monitor_port}:{DEFAULTS.monitor_port}" in [
        str(p) for p in services["monitor"]["ports"]
    ]


def test_simulator_settings(services: dict[str, dict[str, Any]]) -> None:
    simulator = services["simulator"]
    assert environment(simulator).get("FRAUD_SIMULATOR_RATE") == "50"
    args = build_parser().parse_args(command(simulator))
    assert args.metrics_port == DEFAULTS.simulator_metrics_port


@pytest.mark.parametrize("name", FRAUD_SERVICES)
def test_command_is_a_fraud_subcommand(name: str, services: dict[str, dict[str, Any]]) -> None:
    argv = command(services[name])
    assert argv, f"{name} has no command (the image's default is --help)"
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{name}: `fraud {shlex.join(argv)}` is not a valid command")
    assert args.command == argv[0]


def test_depends_on_conditions(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert condition in DEPENDS_ON_CONDITIONS, f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is not a one-shot"
    assert depends_on(services["topics"]) == {"kafka": "service_healthy"}
    assert depends_on(services["worker"])["topics"] == "service_completed_successfully"


def test_topics_is_one_shot(services: dict[str, dict[str, Any]]) -> None:
    topics = services["topics"]
    assert topics.get("restart") == "no"  # the string: a bare `no` would be YAML's false
    assert command(topics) == ["topics"]


def test_prometheus_mounts_its_config(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus")
    mounts = {str(v).split(":")[0]: str(v).split(":")[1] for v in prometheus["volumes"]}
    assert mounts.get("./deploy/prometheus/prometheus.yml") == "/etc/prometheus/prometheus.yml"
    assert (REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml").is_file()
    assert "9090:9090" in [str(p) for p in prometheus["ports"]]


# --- deploy/Dockerfile ----------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    split = (line.split(None, 1) for line in logical)
    return [(parts[0].upper(), parts[1] if len(parts) > 1 else "") for parts in split]


def test_dockerfile_base_user_and_entrypoint() -> None:
    instructions = dockerfile_instructions()
    froms = [args for op, args in instructions if op == "FROM"]
    assert froms and froms[-1].startswith("python:3.11")
    users = [args for op, args in instructions if op == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    entrypoint = [args for op, args in instructions if op == "ENTRYPOINT"]
    assert entrypoint and json.loads(entrypoint[-1]) == ["fraud"]
    cmd = [args for op, args in instructions if op == "CMD"]
    assert cmd and json.loads(cmd[-1]) == ["--help"]
    exposed = {port for op, args in instructions if op == "EXPOSE" for port in args.split()}
    assert {str(DEFAULTS.monitor_port), str(DEFAULTS.worker_web_port)} <= exposed


def test_dockerfile_has_a_dependency_layer() -> None:
    """pyproject.toml is copied and the dependencies installed before any source is copied."""
    instructions = dockerfile_instructions()
    copies = [(i, args.split()) for i, (op, args) in enumerate(instructions) if op == "COPY"]
    first_pyproject = min(i for i, args in copies if "pyproject.toml" in args[:-1])
    sources = [i for i, args in copies if {"pipeline/", "pipeline", "monitor/", "monitor"} & set(args[:-1])]
    assert sources and first_pyproject < min(sources)
    installs = [i for i, (op, args) in enumerate(instructions) if op == "RUN" and "pip install" in args]
    assert any(first_pyproject < i < min(sources) for i in installs)
    assert all("--no-cache-dir" in instructions[i][1] for i in installs)


def test_dockerfile_keeps_schemas_beside_the_packages() -> None:
    """pipeline.config.REPO_ROOT is the parent of the pipeline package: schemas/ must be its sibling."""
    workdir = Path("/")
    destinations: dict[str, Path] = {}
    for op, args in dockerfile_instructions():
        if op == "WORKDIR":
            workdir = workdir / args
        elif op == "COPY" and not args.startswith("--from"):
            *sources, dest = args.split()
            for source in sources:
                destinations[source.rstrip("/")] = workdir / dest
    for name in ("pipeline", "monitor", "schemas"):
        assert name in destinations, f"{name}/ is not copied into the image"
        assert (REPO_ROOT / name).is_dir()
    # `COPY pipeline/ ./pipeline/` puts the directory's contents at the destination itself.
    placed = {name: destinations[name] for name in ("pipeline", "monitor", "schemas")}
    assert all(dest.name == name for name, dest in placed.items()), placed
    assert len({dest.parent for dest in placed.values()}) == 1, placed
    assert Settings.model_construct().schemas_dir == REPO_ROOT / "schemas"


def test_dockerignore_keeps_the_sources() -> None:
    patterns = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
    patterns.discard("")
    for needed in ("pyproject.toml", "pipeline", "monitor", "schemas"):
        assert needed not in patterns
    assert {".venv", ".git", "var"} <= patterns


# --- Prometheus --------------------------------------------------------------------------------


def scrape_ports(path: Path) -> dict[str, set[int]]:
    config = yaml.safe_load(path.read_text())
    ports: dict[str, set[int]] = {}
    for job in config["scrape_configs"]:
        found = ports.setdefault(job["job_name"], set())
        for static in job.get("static_configs", []):
            found.update(port_of(target) for target in static["targets"])
        for dns in job.get("dns_sd_configs", []):
            found.add(int(dns["port"]))
    return ports


EXPECTED_PORTS = {
    "worker": DEFAULTS.worker_web_port,
    "simulator": DEFAULTS.simulator_metrics_port,
    "monitor": DEFAULTS.monitor_port,
}


@pytest.mark.parametrize("filename", ["prometheus.yml", "prometheus.local.yml"])
def test_prometheus_targets_match_the_settings(filename: str) -> None:
    path = PROMETHEUS_DIR / filename
    config = yaml.safe_load(path.read_text())
    assert config["global"]["scrape_interval"] == "5s"
    ports = scrape_ports(path)
    for job, port in EXPECTED_PORTS.items():
        assert ports.get(job) == {port}, f"{filename}: {job}"
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_scrapes_every_worker_replica() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    worker = next(job for job in config["scrape_configs"] if job["job_name"] == "worker")
    assert worker["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": DEFAULTS.worker_web_port, "refresh_interval": "15s"}
    ]
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert {f"simulator:{DEFAULTS.simulator_metrics_port}", f"monitor:{DEFAULTS.monitor_port}"} <= targets


def test_local_prometheus_scrapes_this_machine() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.local.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert targets == {f"127.0.0.1:{port}" for port in EXPECTED_PORTS.values()}


def test_the_workers_and_the_monitor_share_the_rule_file(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """A rule an analyst enables in the monitor reaches the workers: both read FRAUD_RULES_FILE on
    the one named volume, started from the shipped rules, in a directory the image lets them write."""
    assert "rules" in compose["volumes"]
    for name in ("worker", "monitor"):
        env = environment(services[name])
        assert env["FRAUD_RULES_FILE"] == "/app/rules/rules.yaml", name
        assert env["FRAUD_RULES_FILE_SEED"] == "true", name
        assert "rules:/app/rules" in services[name]["volumes"], name
    assert "chown fraud:fraud /app/var /app/rules" in DOCKERFILE.read_text()
