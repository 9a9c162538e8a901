"""Which keys of a table have been idle too long: a pure index, per partition, oldest first.

Faust tables have no time-to-live. The pipeline records every write here and, while it handles an
event of a partition, deletes that partition's keys idle for longer than the TTL (a table may only
be changed from an event of the partition the key lives in). After a restart the index of a
partition is rebuilt once from the restored table.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class ExpiryIndex:
    """Keys by partition in the order they were last active (event time, seconds).

    Events arrive nearly in time order, so the front of a partition holds its idlest keys; a key
    behind a newer one waits until that one expires, and an active key is never removed.
    """

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self._partitions: dict[int, OrderedDict[str, float]] = {}

    def knows(self, partition: int) -> bool:
        return partition in self._partitions

    def load(self, partition: int, entries: Iterable[tuple[str, float]]) -> None:
        """Start a partition's index from (key, last activity) pairs, e.g. a restored table."""
        self._partitions[partition] = OrderedDict(sorted(entries, key=lambda entry: entry[1]))

    def touch(self, partition: int, key: str, at: float) -> None:
        """``key`` was active at ``at`` (a late event never makes a key look older)."""
        keys = self._partitions.setdefault(partition, OrderedDict())
        previous = keys.pop(key, None)
        keys[key] = at if previous is None else max(previous, at)

    def forget(self, partition: int, key: str) -> None:
        self._partitions.get(partition, OrderedDict()).pop(key, None)

    def expired(self, partition: int, now: float, limit: int = 100) -> list[str]:
        """Remove and return up to ``limit`` keys of ``partition`` idle since before ``now - ttl``."""
        keys = self._partitions.get(partition)
        out: list[str] = []
        horizon = now - self.ttl
        while keys and len(out) < limit:
            key, at = next(iter(keys.items()))
            if at >= horizon:
                break
            del keys[key]
            out.append(key)
        return out

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._partitions.values())
