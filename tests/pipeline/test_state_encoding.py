"""Tables hold entity state objects and write them as their ``to_state()`` JSON, in the changelog
and in RocksDB (pipeline/worker/record_cache.py): what is written must read back as the same state."""

from __future__ import annotations

import orjson
import pytest

from pipeline.detection.features import ENTITY_STAGES, observe
from pipeline.detection.states import CardState
from pipeline.worker.record_cache import encode_value
from pipeline.worker.tables import as_state
from tests.pipeline.factories import T0, make_digital_txn, make_txn

STATE_TYPES = [CardState, *(entity.state_type for entity in ENTITY_STAGES)]


@pytest.mark.parametrize("state_type", STATE_TYPES, ids=lambda t: t.__name__)
def test_a_state_is_written_as_its_to_state_and_reads_back_the_same(state_type) -> None:
    state = state_type()
    for i in range(12):
        at = T0 + i * 60
        txn = make_digital_txn(at, card_token=f"tok_card{i % 3:05d}", amount=5 + i, device_id="dev-1")
        observe(state, txn, at)
    written = encode_value(state)
    assert orjson.loads(written) == orjson.loads(orjson.dumps(state.to_state()))

    restored = as_state(state_type, orjson.loads(written))
    probe = make_txn(T0 + 900, amount=3.0)
    assert restored.features(probe, T0 + 900) == state.features(probe, T0 + 900)
    assert as_state(state_type, state) is state  # a cached object is used as it is


def test_plain_values_are_written_as_faust_writes_them() -> None:
    assert encode_value("tok_abc") == b'"tok_abc"'
    assert encode_value({"features": {"amount": 1.5}, "at": 3}) == b'{"features":{"amount":1.5},"at":3}'
    with pytest.raises(TypeError):
        encode_value(object())
