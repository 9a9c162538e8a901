"""Tables hold entity state rows and write them as their ``encode_row`` text, in the changelog and
in RocksDB (pipeline/worker/record_cache.py): what is written must read back as the same row, and
what is not a row must be refused with a clear error."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.detection.features import ENTITY_STAGES
from pipeline.detection.rows import SMALL_HASH_BATCH, decode_row, encode_row, key_hash, key_hashes
from pipeline.detection.states import CARD, EntityColumns
from pipeline.worker.record_cache import encode_value
from pipeline.worker.tables import as_row
from tests.pipeline.factories import PROPERTY, T0, OneEntity, make_digital_txn, make_txn

COLUMNS = [CARD, *(entity.columns for entity in ENTITY_STAGES)]


@pytest.mark.parametrize("columns", COLUMNS, ids=lambda c: type(c).__name__)
def test_a_row_is_written_as_its_text_and_reads_back_the_same(columns: EntityColumns) -> None:
    entity = OneEntity(columns)
    for i in range(12):
        at = T0 + i * 60
        entity.observe(
            make_digital_txn(at, card_token=f"tok_card{i % 3:05d}", amount=5 + i, device_id="dev-1"), at
        )
    written = encode_value(entity.row)
    assert orjson.loads(written) == encode_row(entity.row)

    restored = as_row(columns, orjson.loads(written))
    assert restored.tobytes() == entity.row.tobytes()
    probe = make_txn(T0 + 900, amount=3.0)
    assert OneEntity(columns, restored).features(probe, T0 + 900) == entity.features(probe, T0 + 900)
    assert as_row(columns, entity.row) is entity.row  # a cached row is used as it is
    assert as_row(columns, None).tobytes() == columns.empty().tobytes()  # a new key


@PROPERTY
@given(cells=st.dictionaries(st.integers(0, 299), st.floats(allow_nan=False), max_size=40))
def test_any_row_round_trips(cells: dict[int, float]) -> None:
    row = np.zeros(300)
    for index, value in cells.items():
        row[index] = value
    assert np.array_equal(decode_row(encode_row(row), 300), row)  # -0.0 reads back as 0.0


@pytest.mark.parametrize(
    "text", ["", "not base64!", encode_row(np.ones(10)), encode_row(np.ones(300))[:-8], '{"count": 1}']
)
def test_what_is_not_a_row_of_the_width_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        decode_row(text, 300)


def test_key_hashes_are_stable_non_zero_and_distinct() -> None:
    """Rows keep hashes: a change of the hash function would forget every entity's history."""
    assert key_hash("tok_card0001abc") == 1705831902360251.0
    assert key_hash("m-00001") == 4144421737028057.0
    keys = [f"tok_{i:012d}" for i in range(20_000)] + ["a", "é", "x" * 300, "tok_000000000001"]
    hashes = key_hashes(keys)
    assert (hashes != 0).all() and (hashes < 2**52).all() and (hashes == np.floor(hashes)).all()
    assert len(set(hashes.tolist())) == len(set(keys))
    assert key_hashes(["b", "a"]).tolist() == [key_hash("b"), key_hash("a")], "independent of the batch"


def test_plain_values_are_written_as_faust_writes_them() -> None:
    assert encode_value("tok_abc") == b'"tok_abc"'
    assert encode_value({"features": {"amount": 1.5}, "at": 3}) == b'{"features":{"amount":1.5},"at":3}'
    with pytest.raises(TypeError):
        encode_value(object())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=12))
def test_small_batches_hash_in_python_as_numpy_does(texts: list[str]) -> None:
    """``key_hashes`` takes Python's integers for a few texts and numpy's arrays for more: the same
    bits either way, for any text (non-ASCII, astral, NUL characters, longer than 256)."""
    in_numpy = key_hashes(texts * (SMALL_HASH_BATCH + 1))[: len(texts)]
    in_python = [key_hash(text) for text in texts]
    assert in_numpy.tolist() == in_python
