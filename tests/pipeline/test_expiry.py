"""ExpiryIndex: idle keys leave, active keys stay, per partition."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.detection.expiry import ExpiryIndex
from pipeline.detection.states import CARD, CustomerColumns, DeviceColumns
from tests.pipeline.factories import T0, OneEntity, make_digital_txn, make_txn


def test_idle_keys_expire_and_active_ones_stay() -> None:
    index = ExpiryIndex(ttl_seconds=100)
    index.touch(0, "a", 0)
    index.touch(0, "b", 50)
    index.touch(1, "c", 0)
    index.touch(0, "a", 120)  # a is active again
    assert index.expired(0, now=160) == ["b"]
    assert index.expired(0, now=160) == []
    assert index.expired(1, now=160) == ["c"], "partitions are separate"
    assert index.expired(0, now=221) == ["a"]
    assert len(index) == 0


def test_a_late_event_never_makes_a_key_look_older() -> None:
    index = ExpiryIndex(ttl_seconds=100)
    index.touch(0, "a", 500)
    index.touch(0, "a", 10)
    assert index.expired(0, now=550) == []


def test_limit_bounds_the_work_per_event_and_load_restores_order() -> None:
    index = ExpiryIndex(ttl_seconds=10)
    index.load(3, [("new", 100.0), ("old", 1.0), ("mid", 50.0)])
    assert index.knows(3) and not index.knows(2)
    assert index.expired(3, now=200, limit=2) == ["old", "mid"]
    assert index.expired(3, now=200, limit=2) == ["new"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 1000)), max_size=60), st.integers(0, 2000)
)
def test_never_expires_a_key_active_within_the_ttl(touches: list[tuple[str, int]], now: int) -> None:
    index = ExpiryIndex(ttl_seconds=300)
    last: dict[str, int] = {}
    for key, at in touches:
        index.touch(0, key, at)
        last[key] = max(last.get(key, at), at)
    expired = index.expired(0, now=now, limit=100)
    for key in expired:
        assert last[key] < now - 300
    assert len(index) == len(last) - len(expired), "the others stay known"


def test_last_active_of_every_entity_state() -> None:
    card = OneEntity(CARD)
    assert CARD.last_active(card.row) is None
    card.update(make_txn(T0), T0)
    assert CARD.last_active(card.row) == T0
    device = OneEntity(DeviceColumns())
    assert device.columns.last_active(device.row) is None
    device.update(make_digital_txn(T0 + 60), T0 + 60)
    assert device.columns.last_active(device.row) == T0 + 60
    customer = OneEntity(CustomerColumns())
    assert customer.columns.last_active(customer.row) is None
    customer.update(make_txn(T0), T0)
    assert T0 <= (customer.columns.last_active(customer.row) or 0) <= T0 + 3600
