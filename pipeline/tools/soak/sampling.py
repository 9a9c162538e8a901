"""Sampling a process's resident memory and CPU time from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path


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
