"""A local single-node Apache Kafka broker in KRaft mode, for the demo and the tests.

The broker's jars come from Maven Central (``mvn dependency:copy-dependencies`` on
``deploy/kafka/pom.xml``) into a cache outside the repository; the second start reuses them.
Storage is formatted with ``kafka.tools.StorageTool`` and the broker runs as ``kafka.Kafka``
with a generated ``server.properties``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.config import REPO_ROOT

log = logging.getLogger(__name__)

POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
LOG4J_CONFIG = REPO_ROOT / "deploy" / "kafka" / "log4j2.properties"


class LocalKafkaError(RuntimeError):
    """The local broker could not be fetched, formatted or started."""


@dataclass(frozen=True)
class BrokerTls:
    """The broker's TLS material as PEM files (Kafka's ``ssl.keystore.type=PEM``, no JKS needed).

    ``keystore``: the broker's unencrypted PKCS#8 private key followed by its certificate chain;
    ``truststore``: the CA certificate(s) that client certificates must chain to.
    """

    keystore: Path
    truststore: Path


@dataclass(frozen=True)
class SecureListener:
    """An extra client listener next to the PLAINTEXT one (which brokers and tools keep using).

    ``SASL_SSL`` and ``SASL_PLAINTEXT`` listeners authenticate with ``sasl_mechanism`` (SCRAM
    users are created at format time, see ``LocalKafka.scram_users``); an ``SSL`` listener with
    ``client_auth="required"`` accepts only clients whose certificate chains to the truststore.
    """

    name: str
    port: int
    protocol: Literal["SSL", "SASL_SSL", "SASL_PLAINTEXT"]
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    client_auth: Literal["none", "requested", "required"] = "none"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"


WHOLE_HEAP_AT_START = ("-Xms768m", "-XX:+AlwaysPreTouch")
"""JVM options of the soak's broker: its whole heap committed and touched at start (-Xms = -Xmx, as
Kafka's own kafka-server-start.sh sets them). Its memory is bounded by -Xmx either way; without
them G1 touches new heap regions in steps for many minutes (at d72d4fe: 728 -> 804 MiB after the
soak's warm-up), which a soak cannot tell from a leak."""


@dataclass(frozen=True)
class LocalKafka:
    """One local broker: its version, ports and the folder that holds its jars, data and logs."""

    version: str
    port: int
    home: Path
    controller_port: int | None = None
    heap: str = "768m"
    jvm_options: tuple[str, ...] = ()  # e.g. WHOLE_HEAP_AT_START
    listeners: tuple[SecureListener, ...] = ()
    tls: BrokerTls | None = None
    scram_users: tuple[tuple[str, str], ...] = ()  # (name, password), for every SASL listener

    @property
    def libs_dir(self) -> Path:
        return self.home / f"kafka-{self.version}" / "libs"

    @property
    def instance_dir(self) -> Path:
        return self.home / f"broker-{self.port}"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def _pid_file(self) -> Path:
        return self.instance_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.instance_dir / "broker.log"

    # --- jars ----------------------------------------------------------------------------------
    def fetch(self) -> Path:
        """Download the broker and its runtime dependencies once; return the libs folder."""
        marker = self.libs_dir / ".complete"
        if marker.exists():
            return self.libs_dir
        if shutil.which("mvn") is None:
            raise LocalKafkaError("Maven (mvn) is needed to fetch the Kafka broker: apt-get install maven")
        tmp = self.libs_dir.with_name("libs.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("fetching org.apache.kafka:kafka_2.13:%s with Maven into %s", self.version, tmp)
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-Dkafka.version={self.version}",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not any(tmp.glob(f"kafka_2.13-{self.version}.jar")):
            raise LocalKafkaError(f"fetching Kafka {self.version} failed:\n{result.stdout}\n{result.stderr}")
        shutil.rmtree(self.libs_dir, ignore_errors=True)
        tmp.rename(self.libs_dir)
        marker.touch()
        return self.libs_dir

    # --- lifecycle -----------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The running broker's pid, or None."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def is_answering(self) -> bool:
        return _port_open(self.port)

    def running(self) -> bool:
        """This broker runs already (its pid file names a live process, and its port answers)."""
        return self.pid() is not None and self.is_answering()

    def start(self, timeout: float = 90.0) -> str:
        """Start the broker unless it already runs; return its bootstrap address."""
        if self.running():
            log.info("local Kafka already running on %s", self.bootstrap_servers)
            return self.bootstrap_servers
        if self.is_answering():
            raise LocalKafkaError(f"port {self.port} is taken by another process; set FRAUD_LOCAL_KAFKA_PORT")
        libs = self.fetch()
        self.instance_dir.mkdir(parents=True, exist_ok=True)
        controller_port = self.controller_port or _free_port()
        properties = self.instance_dir / "server.properties"
        data_dir = self.instance_dir / "data"
        properties.write_text(
            _server_properties(self.port, controller_port, data_dir)
            + _secure_properties(self.listeners, self.tls, self.port, controller_port)
        )
        classpath = f"{libs}/*"
        java = _java()
        if not (data_dir / "meta.properties").exists():
            shutil.rmtree(data_dir, ignore_errors=True)
            cluster_id = _cluster_id()
            fmt = subprocess.run(
                [
                    java,
                    f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(properties),
                    *self._scram_arguments(),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                raise LocalKafkaError(f"formatting KRaft storage failed:\n{fmt.stdout}\n{fmt.stderr}")
        with self.log_file.open("ab") as out:
            proc = subprocess.Popen(
                [
                    java,
                    f"-Xmx{self.heap}",
                    "-XX:+UseG1GC",
                    *self.jvm_options,
                    f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                    "-cp",
                    classpath,
                    "kafka.Kafka",
                    str(properties),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalKafkaError(
                    f"broker exited with {proc.returncode}; end of {self.log_file}:\n{self._log_tail()}"
                )
            if self.is_answering() and _broker_ready(self.bootstrap_servers):
                log.info(
                    "local Kafka %s started on %s (pid %d)", self.version, self.bootstrap_servers, proc.pid
                )
                return self.bootstrap_servers
            time.sleep(0.5)
        self.stop()
        raise LocalKafkaError(
            f"broker did not answer within {timeout:.0f}s; end of {self.log_file}:\n{self._log_tail()}"
        )

    def _scram_arguments(self) -> list[str]:
        """StorageTool ``--add-scram`` arguments: in KRaft, SCRAM users are records written at format
        time (later ones would need ``kafka-configs --alter`` against the running broker)."""
        mechanisms = sorted(
            {item.sasl_mechanism for item in self.listeners if item.protocol.startswith("SASL")}
        )
        arguments: list[str] = []
        for mechanism in mechanisms:
            for name, password in self.scram_users:
                if any(c in name + password for c in ",=[]\"'"):
                    raise LocalKafkaError(f"SCRAM user {name!r}: name and password must not contain ,=[]\"'")
                arguments += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
        return arguments

    def _log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL); return whether one was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            _reap(pid)
            time.sleep(0.2)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
        self._pid_file.unlink(missing_ok=True)
        return True

    def wipe(self) -> None:
        """Delete this broker's data (it must be stopped)."""
        shutil.rmtree(self.instance_dir, ignore_errors=True)


def _server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={data_dir}",
            "num.partitions=4",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "log.segment.bytes=67108864",
            "",
        ]
    )


def _secure_properties(
    listeners: tuple[SecureListener, ...], tls: BrokerTls | None, port: int, controller_port: int
) -> str:
    """The extra listeners' lines; they replace ``listeners``, ``advertised.listeners`` and the
    protocol map written by ``_server_properties`` (a later line wins in a properties file)."""
    if not listeners:
        return ""
    if any(item.protocol.endswith("SSL") for item in listeners) and tls is None:
        raise LocalKafkaError("an SSL or SASL_SSL listener needs the broker's TLS files (tls=BrokerTls(...))")
    names = {item.name.upper() for item in listeners}
    if len(names) != len(listeners) or names & {"PLAINTEXT", "CONTROLLER"}:
        raise LocalKafkaError(
            f"listener names must be unique and not PLAINTEXT or CONTROLLER: {sorted(names)}"
        )
    plain = f"PLAINTEXT://127.0.0.1:{port}"
    client = [f"{item.name.upper()}://127.0.0.1:{item.port}" for item in listeners]
    protocols = [f"{item.name.upper()}:{item.protocol}" for item in listeners]
    lines = [
        "listeners=" + ",".join([plain, f"CONTROLLER://127.0.0.1:{controller_port}", *client]),
        "advertised.listeners=" + ",".join([plain, *client]),
        "listener.security.protocol.map="
        + ",".join(["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT", *protocols]),
    ]
    if tls is not None:
        lines += [
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={tls.keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={tls.truststore}",
        ]
    for item in listeners:
        prefix = f"listener.name.{item.name.lower()}"
        if item.protocol.endswith("SSL"):
            lines.append(f"{prefix}.ssl.client.auth={item.client_auth}")
        if item.protocol.startswith("SASL"):
            mechanism = item.sasl_mechanism.lower()
            lines += [
                f"{prefix}.sasl.enabled.mechanisms={item.sasl_mechanism}",
                f"{prefix}.{mechanism}.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            ]
    return "\n".join(lines) + "\n"


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java:
        raise LocalKafkaError(
            "Java 17+ is needed for the local Kafka broker: apt-get install openjdk-17-jre-headless"
        )
    return java


def _cluster_id() -> str:
    """A random KRaft cluster id (base64url of 16 random bytes, as StorageTool random-uuid prints)."""
    import base64

    while True:  # an id starting with "-" would read as an option to StorageTool
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _broker_ready(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=2)
    except Exception:
        return False
    return bool(metadata.brokers)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # not our child: nothing to reap
        os.waitpid(pid, os.WNOHANG)
