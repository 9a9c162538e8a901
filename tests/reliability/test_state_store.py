"""The tables' record cache (pipeline/worker/record_cache.py) on a real worker killed with SIGKILL: what the
worker wrote before its last commit is in RocksDB with the changelog offset it corresponds to, and
the restarted worker has the card's history (from RocksDB plus the changelog after that offset)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import rocksdict

from pipeline.detection.rows import decode_row
from pipeline.detection.states import CARD
from pipeline.worker.batching import partition_of
from pipeline.worker.topics import changelog_topic_names
from tests.conftest import free_port
from tests.e2e.test_restart import decisions_for, transaction
from tests.support import abroad_card_present, consume_until, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

OFFSET_KEY = b"__faust\0offset__"  # where Faust's RocksDB store keeps the changelog offset it holds


def test_card_state_is_written_back_and_survives_kill_9(make_settings, start_worker) -> None:
    settings = make_settings()
    card = "tok_cachekill0001"
    abroad = abroad_card_present(card)
    first = transaction("cache-1", 20, merchant_id="m-first", terminal_id="t-first", **abroad)
    others = [transaction(f"cache-other-{i}", 19, card_token=f"tok_cacheother{i:03d}") for i in range(30)]

    worker = start_worker(settings)
    # Others first: the worker's first writes after a start also index what RocksDB holds (a scan,
    # which writes the cache back); the card's payment comes after, and only the commits write it.
    produce(settings, settings.topic_transactions, [(t["card_token"], t) for t in others])
    decisions_for(settings, {t["transaction_id"] for t in others})
    produce(settings, settings.topic_transactions, [(card, first)])
    decisions_for(settings, {"cache-1"})
    time.sleep(4)  # a few commits: each flushes, writes the cache back and records the offset
    worker.stop(signal.SIGKILL)

    partition = partition_of(card, settings.topic_partitions)
    [path] = settings.data_dir.glob(f"**/*card-rows-{partition}.db")
    db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))
    try:
        stored = db.get(orjson.dumps(card))
        persisted_offset = db.get(OFFSET_KEY)
    finally:
        db.close()
    assert stored is not None, "the card's state was not written back to RocksDB before the kill"
    assert CARD.has_seen_id(decode_row(orjson.loads(stored), CARD.width), "cache-1")
    assert persisted_offset is not None and int(persisted_offset) >= 0

    restarted = start_worker(settings)
    second = transaction("cache-2", 10, merchant_id="m-second", terminal_id="t-second", **abroad)
    produce(settings, settings.topic_transactions, [(card, second)])
    after = decisions_for(settings, {"cache-2"})["cache-2"]
    assert "UT-burst-abroad" in after["rule_hits"], (after, restarted.log())


def test_changelog_gets_an_entry_once_per_flush_with_its_latest_value(make_settings, start_worker) -> None:
    """A card paid 20 times, 100 ms apart (each payment mostly its own batch in every stage), over
    about two commit intervals: its changelog gets its latest state at each flush, not a message
    per batch (15-16 messages measured when it did), and the last message holds all 20 payments."""
    settings = make_settings()
    card = "tok_coalesce0001"
    payments = [transaction(f"coalesce-{i:02d}", 5 - i / 100, card_token=card) for i in range(20)]

    def one_every_100_ms() -> Iterator[tuple[str, dict[str, Any]]]:
        for payment in payments:
            yield card, payment
            time.sleep(0.1)

    start_worker(settings)
    warm_up = transaction("coalesce-warm-up", 6, card_token="tok_coalescewarm01")
    produce(settings, settings.topic_transactions, [(warm_up["card_token"], warm_up)])
    decisions_for(settings, {"coalesce-warm-up"})  # the worker has its partitions: no backlog below
    produce(settings, settings.topic_transactions, one_every_100_ms())
    decisions_for(settings, {p["transaction_id"] for p in payments})

    [changelog] = [name for name in changelog_topic_names(settings) if name.endswith("-card-rows-changelog")]

    def count(text: str) -> float:
        return float(decode_row(text, CARD.width)[CARD.count])

    read = consume_until(settings, changelog, lambda got: any(count(s) == len(payments) for s in got))
    rows = [decode_row(text, CARD.width) for text in read]
    rows = [row for row in rows if not CARD.has_seen_id(row, "coalesce-warm-up")]  # the card's, in order
    assert rows[-1][CARD.count] == len(payments), rows[-1]
    assert CARD.has_seen_id(rows[-1], "coalesce-19")
    assert len(rows) <= len(payments) // 2, f"{len(rows)} changelog messages for {len(payments)} payments"


def test_a_revoked_partitions_database_is_closed(make_settings, start_worker, tmp_path) -> None:
    """When a second worker joins, the first gives up partitions; their RocksDB databases must be
    closed then (their memtables and block cache freed, their lock released), not left open until
    the garbage collector happens on them. Each worker has its own data folder here, so a database
    the first worker no longer holds opens from the test while the worker still runs."""
    first_settings = make_settings(topic_partitions=2)
    first = start_worker(first_settings)
    warm = [transaction(f"revoke-warm-{i}", 5, card_token=f"tok_revokewarm{i:03d}") for i in range(20)]
    produce(first_settings, first_settings.topic_transactions, [(t["card_token"], t) for t in warm])
    decisions_for(first_settings, {t["transaction_id"] for t in warm})  # every partition's db opened
    card_dbs = sorted(first_settings.data_dir.glob("**/*card-rows-*.db"))
    assert len(card_dbs) == 2, card_dbs

    second = start_worker(
        first_settings.model_copy(update={"worker_web_port": free_port(), "data_dir": tmp_path / "var-2"})
    )
    first.wait_ready()  # again: the second worker's arrival rebalanced the group
    second.wait_ready()
    more = [transaction(f"revoke-more-{i}", 4, card_token=f"tok_revokemore{i:03d}") for i in range(20)]
    produce(first_settings, first_settings.topic_transactions, [(t["card_token"], t) for t in more])
    decisions_for(first_settings, {t["transaction_id"] for t in more})  # both workers hold partitions

    def opens(path) -> bool:
        try:
            rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True)).close()
        except Exception as exc:  # RocksDB: "lock ... Resource temporarily unavailable"
            assert "lock" in str(exc).lower(), exc
            return False
        return True

    released = [path.name for path in card_dbs if opens(path)]
    assert len(released) == 1, f"databases of the first worker free to open: {released}\n{first.log()}"
