"""The lists store: the block and allow lists as the monitor shows them, thread-safe.

``monitor.lists_feed.ListFeed`` fills it from the compacted list-updates topic; the lists section
(``monitor.views.lists``) reads snapshots and applies the changes it published. Entries are named
on the page by an opaque id (``entry_id``): the key of a card's entry holds its whole token.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from pipeline.detection.entity_lists import ENTITY_KINDS, LIST_NAMES, EntityLists, ListEntry
from pipeline.kafka.list_topic import Record, apply_records


def entry_id(key: str) -> str:
    """An opaque, stable id of an entry for the page (its key holds a whole card token)."""
    return hashlib.sha256(key.encode()).hexdigest()[:20]


class SharedLists:
    """Thread-safe lists for the monitor: the feed thread writes, callbacks read snapshots."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lists = EntityLists()
        self._version = 0

    @property
    def version(self) -> int:
        return self._version

    def apply_records(self, records: Sequence[Record], max_bytes: int) -> None:
        with self._lock:
            if apply_records(self._lists, list(records), max_bytes, None):
                self._version += 1

    def rebuild(self, records: Sequence[Record], max_bytes: int) -> None:
        """Replace everything by the state ``records`` (the whole topic) give."""
        fresh = EntityLists()
        apply_records(fresh, list(records), max_bytes, None)
        with self._lock:
            self._lists = fresh
            self._version += 1

    def apply(self, key: str, message: Mapping[str, Any], max_bytes: int = 64 * 1024) -> None:
        """Apply a change this monitor published (the feed reads it back too: no harm)."""
        self.apply_records([Record(key.encode(), _dumps(message), -1, -1)], max_bytes)

    def entries(self) -> list[ListEntry]:
        """Every entry: block before allow, then by kind and newest first."""
        with self._lock:
            entries = list(self._lists)
        order = {name: i for i, name in enumerate(LIST_NAMES)} | {k: i for i, k in enumerate(ENTITY_KINDS)}
        entries.sort(key=lambda e: e.at, reverse=True)
        entries.sort(key=lambda e: (order[e.list], order[e.kind]))
        return entries

    def find(self, opaque_id: str) -> ListEntry | None:
        return next((e for e in self.entries() if entry_id(e.key) == opaque_id), None)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return self._lists.counts()


def _dumps(message: Mapping[str, Any]) -> bytes:
    return orjson.dumps(dict(message))
