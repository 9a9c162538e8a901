"""Sampling a process's resident memory and CPU time from /proc (Linux), a worker's memory by part
from its metrics, and the monitor's count of transactions."""

from __future__ import annotations

import os
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

MIB = 1024 * 1024


def resource_usage(pid: int) -> tuple[float, float] | None:
    """The process's resident memory (VmRSS) in MiB and CPU time (user + system) in seconds, or
    None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rss = next(
        (int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:")), None
    )
    if rss is None:  # a zombie
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return rss, cpu


def worker_memory_parts(metrics_url: str, timeout: float = 1.0) -> dict[str, float] | None:
    """A worker's ``fraud_worker_memory_bytes`` by part, in MiB, read from its ``metrics_url``;
    None when it does not answer (starting, restoring, killed)."""
    try:
        response = requests.get(metrics_url, timeout=timeout)
        response.raise_for_status()
    except requests.RequestException:
        return None
    parts = {
        sample.labels["part"]: round(sample.value / MIB, 1)
        for family in text_string_to_metric_families(response.text)
        if family.name == "fraud_worker_memory_bytes"
        for sample in family.samples
    }
    return parts or None


def monitor_count_when(port: int, decided: int, timeout: float = 120.0) -> int | None:
    """The monitor's count of transactions (its /api/summary on ``port``) once it reaches
    ``decided``, or what it has when ``timeout`` seconds have passed (None: no answer)."""
    url = f"http://127.0.0.1:{port}/api/summary"
    deadline = time.monotonic() + timeout
    count: int | None = None
    while time.monotonic() < deadline:
        try:
            count = int(requests.get(url, timeout=5).json()["transactions"])
        except (requests.RequestException, ValueError, KeyError):
            count = None
        if count == decided:
            break
        time.sleep(2)
    return count
