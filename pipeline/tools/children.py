"""Child processes of the tools that run the whole system (``fraud demo``, ``fraud soak``): start a
``fraud`` subcommand with its output in a log file, wait until it answers, stop it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import requests

from pipeline.config import REPO_ROOT


def fraud_command(*arguments: str) -> list[str]:
    """The command line of ``fraud <arguments>`` run by this interpreter."""
    return [sys.executable, "-m", "pipeline", *arguments]


def spawn(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session of its own (Ctrl-C reaches only the parent, which stops its
    children), its output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        return subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def answers(url: str, timeout: float = 1.0) -> bool:
    """True when ``url`` answers 200 now."""
    try:
        return requests.get(url, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def wait_for(url: str, children: Mapping[str, subprocess.Popen[bytes]], timeout: float) -> None:
    """Wait until ``url`` answers 200; raise RuntimeError if a child exits first or on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, child in children.items():
            if child.poll() is not None:
                raise RuntimeError(f"{name} exited with {child.returncode} during start-up")
        if answers(url):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def stop_child(name: str, child: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; prints that it stopped."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)
    print(f"{name} stopped.", flush=True)
