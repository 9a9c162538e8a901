"""SIGTERM and Ctrl-C as an exception, for the commands that run child processes (``fraud soak``):
the command's ``finally`` blocks then stop every child, even when it was started with SIGINT
ignored (``nohup``, ``&``), where Ctrl-C would otherwise do nothing and SIGTERM would kill the
command alone and leave its children running."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Stopped(Exception):
    """SIGTERM or SIGINT arrived; its name is the message."""


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    # Once stopping, a second signal must not cut the stop short (children left running).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Stopped(signal.Signals(signum).name)


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise ``Stopped``; the handlers before are restored after."""
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
