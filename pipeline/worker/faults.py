"""Deterministic fault injection: named crash points, compiled into the worker and inert by default.

``FRAUD_FAULT_CRASH_AT=point:N`` (pipeline/config.py, ``CRASH_POINTS``) stops the worker dead with
``os._exit(CRASH_EXIT_CODE)`` the Nth time it reaches ``crash_point(point)``. Before it exits,
everything the worker wrote so far reaches Kafka: every table's changes are sent to their changelogs
and the producer waits until all it holds is acknowledged. That is the worst case for a replay: the
state is as far ahead as it can be, no offset is committed past the point, and nothing after the point
was produced (librdkafka delivers partitions in no fixed order, so a real crash can leave any subset
of what was sent delivered; this one chooses all of it). docs/reliability.md lists the points and
``tests/reliability/test_crash_points.py`` has a test per point.

Unset, a crash point costs one lookup in an empty dict.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

CRASH_EXIT_CODE = 86
"""The exit code of a worker stopped by a crash point (the tests tell it from other exits)."""

_armed: dict[str, int] = {}  # point -> how many more times it may be reached before the crash
_deliver: list[Callable[[], object]] = []  # what the worker runs before it exits


def arm(crash_at: str | None, deliver: Callable[[], object]) -> None:
    """Arm the point of a ``point:N`` setting (None: none); ``deliver`` sends and waits for
    everything the worker wrote so far, before the crash."""
    _armed.clear()
    _deliver[:] = [deliver]
    if crash_at:
        point, _, nth = crash_at.partition(":")
        _armed[point] = int(nth)
        log.warning(
            "fault injection armed (FRAUD_FAULT_CRASH_AT=%s): the worker will stop dead there", crash_at
        )


def crash_point(name: str, deliver_first: bool = True) -> None:
    """Crash here if this point is armed and reached for the Nth time (see the module's doc).
    ``deliver_first`` False: exit at once (a point outside the event loop's thread, whose own
    output is delivered already, must not touch the tables)."""
    if name in _armed:
        _reached(name, deliver_first)


def _reached(name: str, deliver_first: bool) -> None:
    _armed[name] -= 1
    if _armed[name] > 0:
        return
    for deliver in _deliver if deliver_first else ():
        deliver()
    print(f"fraud: crash point {name} reached: exiting with {CRASH_EXIT_CODE}", file=sys.stderr, flush=True)
    os._exit(CRASH_EXIT_CODE)
