"""Child processes of the tools that run the whole system (``fraud demo``, ``fraud soak``): start a
``fraud`` subcommand with its output in a log file, wait until it answers, stop it.

``wait_until_ready`` waits as long as the process makes progress (a worker restoring its tables
from their changelogs can take minutes after a long history, and says how far it is on /readyz),
and gives up with one line when a child exits or nothing moves for a while."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


class StartupError(RuntimeError):
    """A process did not become ready: it exited, or made no progress for too long (one line)."""


@dataclass(frozen=True)
class Readiness:
    """What a process's readiness endpoint said, for someone waiting on it."""

    ready: bool
    summary: str
    """One line: what it is doing."""
    progress: Hashable
    """Changes whenever it has made progress."""
    fraction: float | None = None
    """How far a long step (restoring tables) has come, 0 to 1; None for the others."""


def readiness_of(status: int | None, body: Any) -> Readiness:
    """The readiness of a process from its endpoint's answer (``status`` None: no answer). A worker's
    /readyz body tells its state and the table recovery's figures (pipeline/worker/faust_app.py)."""
    if status is None:
        return Readiness(False, "not answering yet", "not answering")
    if status == 200:
        return Readiness(True, "ready", "ready", 1.0)
    state = body.get("state", "starting") if isinstance(body, dict) else "starting"
    recovery = body.get("recovery") if isinstance(body, dict) else None
    if state == "recovering" and isinstance(recovery, dict) and recovery.get("total"):
        restored, total = int(recovery["restored"]), int(recovery["total"])
        rate, left = recovery.get("records_per_second"), recovery.get("seconds_left")
        pace = f", {rate:,.0f}/s, about {left:,.0f} s left" if rate and left is not None else ""
        return Readiness(
            False,
            f"restoring its tables {restored:,} of {total:,} records{pace}",
            (state, restored),
            restored / total,
        )
    return Readiness(False, {"rebalancing": "joining its consumer group"}.get(state, state), state)


def progress_bar(fraction: float, width: int = 24) -> str:
    """``[#########...............]  37%``"""
    fraction = min(1.0, max(0.0, fraction))
    filled = round(width * fraction)
    return f"[{'#' * filled}{'.' * (width - filled)}] {100 * fraction:3.0f}%"


def ask(url: str, timeout: float = 2.0) -> tuple[int | None, Any]:
    """Status and JSON body (None if not JSON) of ``url`` now; (None, None) when it does not answer."""
    try:
        answer = requests.get(url, timeout=timeout)
    except requests.RequestException:
        return None, None
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, None


def wait_until_ready(
    name: str,
    url: str,
    children: Mapping[str, subprocess.Popen[bytes]],
    no_progress_timeout: float,
    show: Callable[[Readiness], None] = lambda readiness: None,
    hint: str = "",
) -> None:
    """Wait until ``url`` answers 200, showing each answer; raise StartupError (one line) when a
    child exits first, or when ``name`` makes no progress for ``no_progress_timeout`` seconds."""
    last: Hashable = None
    moved_at = time.monotonic()
    while True:
        for child_name, child in children.items():
            if child.poll() is not None:
                raise StartupError(f"{child_name} exited with {child.returncode} while starting{hint}")
        readiness = readiness_of(*ask(url))
        show(readiness)
        if readiness.ready:
            return
        now = time.monotonic()
        if readiness.progress != last:
            last, moved_at = readiness.progress, now
        elif now - moved_at > no_progress_timeout:
            raise StartupError(
                f"{name} made no progress for {no_progress_timeout:g} s ({readiness.summary}){hint}; "
                "FRAUD_DEMO_NO_PROGRESS_TIMEOUT_SECONDS sets how long to wait"
            )
        time.sleep(0.5)


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
