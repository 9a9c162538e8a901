"""A local Apicurio Registry (in-memory storage, Confluent-compatible API), for the tests and
for trying the wire format by hand, fetched and started like the local broker (local_kafka.py).

``fetch`` builds the registry once with Maven from ``deploy/registry/pom.xml`` (Maven Central
only; the POM says why this version and what it replaces) into a cache outside the repository;
``start`` runs it as a Java process and waits until it answers. Its schemas live in memory: a
restart begins empty.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import REPO_ROOT
from pipeline.tools.local_kafka import _reap

log = logging.getLogger(__name__)

BUILD_DIR = REPO_ROOT / "deploy" / "registry"
VERSION = "2.4.2.Final"
CCOMPAT_PATH = "/apis/ccompat/v7"


class LocalRegistryError(RuntimeError):
    """The local registry could not be built or started."""


@dataclass(frozen=True)
class LocalRegistry:
    """One local registry: its port and the cache folder that holds its build and logs."""

    port: int
    home: Path
    heap: str = "256m"

    @property
    def app_dir(self) -> Path:
        return self.home / f"apicurio-registry-{VERSION}"

    @property
    def instance_dir(self) -> Path:
        return self.home / f"registry-{self.port}"

    @property
    def url(self) -> str:
        """The base URL of its Confluent-compatible API (FRAUD_SCHEMA_REGISTRY_URL)."""
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}"

    @property
    def log_file(self) -> Path:
        return self.instance_dir / "registry.log"

    @property
    def _pid_file(self) -> Path:
        return self.instance_dir / "registry.pid"

    def fetch(self) -> Path:
        """Build the registry once (Maven, a few minutes the first time); return its runner jar."""
        runner = self.app_dir / "registry-runner.jar"
        if runner.exists():
            return runner
        if shutil.which("mvn") is None:
            raise LocalRegistryError(
                "Maven (mvn) is needed to build the schema registry: apt-get install maven"
            )
        build = self.app_dir.with_name(self.app_dir.name + ".build")
        shutil.rmtree(build, ignore_errors=True)
        shutil.copytree(BUILD_DIR, build)
        log.info("building Apicurio Registry %s with Maven in %s", VERSION, build)
        cmd = ["mvn", "-q", "-B", "-s", "settings.xml", "package", "-DskipTests"]
        result = subprocess.run(cmd, cwd=build, capture_output=True, text=True, check=False)
        built = list((build / "target").glob("*-runner.jar"))
        if result.returncode != 0 or not built:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise LocalRegistryError(f"building Apicurio Registry {VERSION} failed:\n{tail}")
        staging = self.app_dir.with_name(self.app_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.move(build / "target" / "lib", staging / "lib")  # the runner jar's Class-Path: lib/...
        shutil.move(built[0], staging / runner.name)
        shutil.rmtree(self.app_dir, ignore_errors=True)
        staging.rename(self.app_dir)
        shutil.rmtree(build, ignore_errors=True)
        return runner

    def pid(self) -> int | None:
        """The running registry's pid, or None."""
        try:
            pid = int(self._pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def is_answering(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/subjects", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def start(self, timeout: float = 120.0) -> str:
        """Start the registry unless it runs; return its URL once it answers."""
        if self.pid() is not None and self.is_answering():
            return self.url
        runner = self.fetch()
        self.instance_dir.mkdir(parents=True, exist_ok=True)
        java = shutil.which("java")
        if java is None:
            raise LocalRegistryError(
                "Java is needed to run the schema registry: apt-get install openjdk-17-jre-headless"
            )
        with self.log_file.open("ab") as out:
            proc = subprocess.Popen(
                [java, f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-Dquarkus.http.host=127.0.0.1",
                 f"-Dquarkus.http.port={self.port}", "-Dquarkus.log.level=WARN", "-jar", str(runner)],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.instance_dir, start_new_session=True,
            )  # fmt: skip
        self._pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LocalRegistryError(f"registry exited with {proc.returncode}; see {self.log_file}")
            if self.is_answering():
                log.info("local Apicurio Registry %s at %s (pid %d)", VERSION, self.url, proc.pid)
                return self.url
            time.sleep(0.5)
        self.stop()
        raise LocalRegistryError(f"registry did not answer within {timeout:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the registry (SIGTERM, then SIGKILL); return whether one was running."""
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
