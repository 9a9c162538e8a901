"""The worker's expiry of restored entries (pipeline/worker/table_expiry.py) on stand-ins for
Faust's tables and RocksDB, without a broker: restored entries are indexed in the background, a
chunk at a time, and expire as if they had been written since the start."""

from __future__ import annotations

import asyncio
import bisect
from types import SimpleNamespace

import orjson
from faust.types import TP

from pipeline.config import Settings
from pipeline.detection.features import ENTITY_STAGES
from pipeline.worker import table_expiry
from pipeline.worker.table_expiry import TableExpiry
from pipeline.worker.tables import WorkerTables

OFFSET_KEY = b"__faust\x00offset__"


class Iterator:
    """rocksdict's iterator over a sorted mapping."""

    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.keys, self.data, self.at = sorted(data), data, 0

    def seek_to_first(self) -> None:
        self.at = 0

    def seek(self, key: bytes) -> None:
        self.at = bisect.bisect_left(self.keys, key)

    def valid(self) -> bool:
        return self.at < len(self.keys)

    def key(self) -> bytes:
        return self.keys[self.at]

    def value(self) -> bytes:
        return self.data[self.keys[self.at]]

    def next(self) -> None:
        self.at += 1


class Table:
    def __init__(self, name: str, rows: dict[bytes, bytes]) -> None:
        self.name = name
        self.rows = rows
        self.data = SimpleNamespace(
            _dbs={0: SimpleNamespace(iter=lambda: Iterator(rows))}, offset_key=OFFSET_KEY
        )
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: f"{name}-changelog")
        self.app = SimpleNamespace(
            assignor=SimpleNamespace(assigned_actives=lambda: {TP(f"{name}-changelog", 0)})
        )

    def get(self, key: str) -> bytes | None:
        return self.rows.get(orjson.dumps(key))

    def __delitem__(self, key: str) -> None:
        del self.rows[orjson.dumps(key)]


def test_restored_entries_are_indexed_aside_and_then_expire(monkeypatch) -> None:
    monkeypatch.setattr(table_expiry, "CHUNK", 100)  # several chunks, and a turn of the loop between
    hour = 3600.0
    restored = {
        orjson.dumps(f"txn-{i:04d}"): orjson.dumps({"partition": 0, "at": 1000.0 + i}) for i in range(450)
    }
    restored[OFFSET_KEY] = b"449"
    pending = Table("pending-labels", restored)
    tables = WorkerTables(
        entities={e.name: Table(f"{e.name}-rows", {}) for e in ENTITY_STAGES},  # type: ignore[misc]
        cards=Table("card-rows", {}),  # type: ignore[arg-type]
        pending=pending,  # type: ignore[arg-type]
    )
    expired = SimpleNamespace(labels=lambda name: SimpleNamespace(inc=lambda: None))
    expiry = TableExpiry(
        Settings(topic_partitions=1, pending_label_ttl_hours=1),
        tables,
        SimpleNamespace(expired_entries=expired),  # type: ignore[arg-type]
    )

    async def scenario() -> None:
        new = orjson.dumps("txn-new")
        pending.rows[new] = orjson.dumps({"partition": 0, "at": 2000.0})
        expiry.touch(pending, 0, "txn-new", 2000.0)  # the first write: returns at once
        assert expiry.pending_entries() == 1
        await asyncio.sleep(0)
        assert expiry.pending_entries() == 1 and not expiry._indexing["pending-labels", 0].done()
        await expiry._indexing["pending-labels", 0]
        assert expiry.pending_entries() == 451  # the offset's key is not an entry
        # An hour of event time later the restored entries go, up to 100 a write, oldest first.
        expiry.touch(pending, 0, "txn-new", 1000.0 + hour + 150.5)
        assert orjson.dumps("txn-0000") not in pending.rows and orjson.dumps("txn-0099") not in pending.rows
        assert orjson.dumps("txn-0100") in pending.rows and new in pending.rows

    asyncio.run(scenario())
