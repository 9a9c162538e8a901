"""What every store checks in a record before keeping it: ids, timestamps, the decisions a record
can carry, and the error raised when a record breaks its contract.

Timestamps follow the project's one rule, ``pipeline.detection.vocabulary.parse_timestamp`` (RFC
3339 with a UTC offset; a lower-case ``t``/``z`` and leap seconds are read too); this module only
turns its seconds into the aware UTC datetime the stores keep, and its error into an
``InvalidRecordError`` that names the field.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pipeline.detection.vocabulary import parse_timestamp

DECISIONS: tuple[str, ...] = ("allow", "review", "block")
"""The decisions a ``decision.v1`` record can carry."""
FLAGGED_DECISIONS: frozenset[str] = frozenset({"review", "block"})
"""The decisions that raise an alert."""

AddResult = Literal["added", "duplicate", "too_old", "other_source", "deleted"]
"""What became of a record: counted, a redelivery of one already counted, older than the history
(or than the verdict already known), a label that is not an analyst's verdict, or the tombstone of
a worker's table entry (kept by the monitor all the same)."""


class VersionedStore:
    """A store that Dash's callbacks read while the feed's thread adds to it: one lock, a size, and
    a version that grows with every change (unchanged: nothing to redraw)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def __len__(self) -> int:
        with self._lock:
            return self._count()

    def _count(self) -> int:
        """How many records it keeps (called with the lock held)."""
        raise NotImplementedError


class InvalidRecordError(ValueError):
    """A record lacks a field the monitor needs, or a value breaks its contract."""


def record_time(value: Any, name: str) -> datetime:
    """The timestamp ``value`` of the field ``name`` as an aware UTC datetime.

    Raises InvalidRecordError (naming the field) when it is not a string, or not a timestamp with
    a UTC offset by ``pipeline.detection.vocabulary.parse_timestamp``.
    """
    if not isinstance(value, str):
        raise InvalidRecordError(f"{name}: expected an ISO-8601 string, got {type(value).__name__}")
    try:
        return datetime.fromtimestamp(parse_timestamp(value), UTC)
    except (ValueError, OverflowError, OSError):  # OverflowError, OSError: out of datetime's range
        raise InvalidRecordError(
            f"{name}: not an ISO-8601 timestamp with a UTC offset: {value[:40]!r}"
        ) from None


def require_id(record: Mapping[str, Any], name: str) -> str:
    """The non-empty string ``record[name]``; raises InvalidRecordError otherwise."""
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRecordError(f"{name}: expected a non-empty string")
    return value
