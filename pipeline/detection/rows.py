"""Entity state as fixed-width numpy rows, and the batch operations on them: pure, no Kafka.

An entity's state (a card, a terminal, a customer ...) is one float64 row laid out by a
``RowLayout``: scalars, ``Ring``s (counts and amount sums in time buckets: sliding windows) and
``KeySlots`` (a bounded set of keys, hashed, with when and in which order each was last seen). A
batch's rows are gathered into one matrix, and every operation takes the whole matrix at once.

Rows are stored as ``encode_row`` text: the non-zero cells only, so a quiet entity costs a few
hundred bytes whatever its width.
"""

from __future__ import annotations

import base64
import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.detection import kernels

EMPTY_BUCKET = -(2.0**52)
"""The newest bucket of a ring that has seen nothing (every bucket it could hold is then expired)."""
_HASH_WEIGHTS = np.random.default_rng(20261206).integers(1, 2**63, size=256, dtype=np.uint64) * 2 + 1
"""Fixed forever: rows keep the hashes (one odd 64-bit weight per character position)."""


_WEIGHTS = [int(weight) for weight in _HASH_WEIGHTS]
_UINT64 = (1 << 64) - 1
SMALL_HASH_BATCH = 4
"""Up to this many texts are hashed in Python (and remembered: cards, merchants and countries come
back): numpy's fixed cost per call (30-80 us for the ten calls of one hash) is more than Python's
integer arithmetic below it (about 10 us per new text; 11 against 30 us for one, 55 against 19 for
eight, measured on a loaded machine)."""


def key_hashes(texts: Sequence[str]) -> np.ndarray:
    """A stable, non-zero 52-bit hash of each text, as floats (exact in float64): the same in every
    process and version, since rows keep them. Zero marks an empty slot. Texts longer than 256
    characters hash their first 256."""
    if not texts:
        return np.zeros(0)
    if len(texts) <= SMALL_HASH_BATCH:
        return np.array([_key_hash_in_python(text) for text in texts], dtype=np.float64)
    codes = np.array(texts, dtype="U").view(np.uint32).reshape(len(texts), -1)[:, :256].astype(np.uint64)
    mixed = (codes * _HASH_WEIGHTS[: codes.shape[1]]).sum(axis=1, dtype=np.uint64)
    mixed ^= mixed >> np.uint64(31)
    mixed *= np.uint64(0x9E3779B97F4A7C15)
    mixed ^= mixed >> np.uint64(29)
    return ((mixed >> np.uint64(12)) | np.uint64(1)).astype(np.float64)


def key_hash(text: str) -> float:
    """``key_hashes`` of one text."""
    return _key_hash_in_python(text)


@functools.lru_cache(maxsize=65_536)
def _key_hash_in_python(text: str) -> float:
    """``key_hashes``' arithmetic on Python integers, bit for bit: numpy's uint64 products and sum
    wrap modulo 2**64, as the mask does here (a character past a text's end, or a trailing NUL that
    numpy drops, adds 0 either way)."""
    mixed = sum(ord(char) * weight for char, weight in zip(text[:256], _WEIGHTS, strict=False)) & _UINT64
    mixed ^= mixed >> 31
    mixed = (mixed * 0x9E3779B97F4A7C15) & _UINT64
    mixed ^= mixed >> 29
    return float((mixed >> 12) | 1)


class RowLayout:
    """Hands out the cells of a row: ``scalar()``, ``ring(...)``, ``slots(...)``, in order."""

    def __init__(self) -> None:
        self.width = 0
        self._initial: dict[int, float] = {}

    def cells(self, count: int) -> int:
        """The offset of ``count`` more cells."""
        offset, self.width = self.width, self.width + count
        return offset

    def scalar(self) -> int:
        return self.cells(1)

    def ring(self, width: int, horizon: int) -> Ring:
        if width <= 0 or horizon < width or horizon % width:
            raise ValueError("horizon must be a positive multiple of width")
        if horizon // width > kernels.SCRATCH:
            raise ValueError(f"a ring holds at most {kernels.SCRATCH} buckets")
        ring = Ring(width, horizon, self.cells(1 + 2 * (horizon // width)))
        self._initial[ring.offset] = EMPTY_BUCKET
        return ring

    def slots(self, size: int, *, timed: bool, ordered: bool) -> KeySlots:
        return KeySlots(size, self.cells(size * (1 + timed + ordered)), timed, ordered)

    def empty(self) -> np.ndarray:
        """The row of an entity that has seen nothing."""
        row = np.zeros(self.width)
        for offset, value in self._initial.items():
            row[offset] = value
        return row


@dataclass(frozen=True)
class Ring:
    """Counts and amount sums in buckets of ``width`` seconds kept for ``horizon`` seconds: a window
    of ``W`` seconds at time ``now`` covers the buckets in ``(bucket(now) - W // width,
    bucket(now)]``, whole buckets, so it slides a bucket at a time. Cells: the newest bucket's
    index, then a count and a sum per slot; bucket ``b`` lives in slot ``b mod size``."""

    width: int
    horizon: int
    offset: int

    @property
    def size(self) -> int:
        return self.horizon // self.width

    def count(self, rows: np.ndarray, now: np.ndarray, window: int) -> np.ndarray:
        """Events in the window of ``window`` seconds ending at ``now``, per row."""
        return self.totals(rows, now, window)[0]

    def totals(self, rows: np.ndarray, now: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
        """(count, amount sum) in the window of ``window`` seconds ending at ``now``, per row, one row
        at a time (the walks of pipeline/detection/kernels.py read the rings inside their loop)."""
        if window % self.width or window > self.horizon:
            raise ValueError(f"window {window}s must be a multiple of {self.width}s up to {self.horizon}s")
        scratch = np.empty(self.size)
        counts = [
            kernels.ring_window(row, *self.params, t, window, 1, scratch)
            for row, t in zip(rows, now.tolist(), strict=True)
        ]
        sums = [
            kernels.ring_window(row, *self.params, t, window, 1 + self.size, scratch)
            for row, t in zip(rows, now.tolist(), strict=True)
        ]
        return np.array(counts, dtype=np.float64), np.array(sums, dtype=np.float64)

    def add(self, rows: np.ndarray, at: np.ndarray, amount: np.ndarray) -> None:
        """One event of ``amount`` at ``at`` per row (in place). An event older than every bucket
        kept is dropped; a newer bucket expires the ones that leave the horizon."""
        for row, t, value in zip(rows, at.tolist(), amount.tolist(), strict=True):
            kernels.ring_add(row, *self.params, t, value)

    @property
    def params(self) -> tuple[int, int, int]:
        """Where a walk finds the ring: (offset, slot count, bucket width)."""
        return self.offset, self.size, self.width

    def last_bucket_end(self, row: np.ndarray) -> float | None:
        """The end (seconds) of the newest bucket of one row, None when empty."""
        newest = float(row[self.offset])
        return None if newest == EMPTY_BUCKET else (newest + 1) * self.width


@dataclass(frozen=True)
class KeySlots:
    """At most ``size`` keys (``key_hash``es; 0 is an empty slot), each with when it was last seen
    (``timed``) or a number that orders the insertions (``ordered``), or both. When full, a new key
    takes the slot of the first inserted (``ordered``) or else of the least recently seen."""

    size: int
    offset: int
    timed: bool
    ordered: bool

    @property
    def params(self) -> tuple[int, int]:
        """Where a walk finds the slots: (offset, size)."""
        return self.offset, self.size

    def latest(self, row: np.ndarray) -> float | None:
        """When one row last saw any key, None when it holds none."""
        held = row[self.offset : self.offset + self.size] != 0.0
        seen = row[self.offset + self.size : self.offset + 2 * self.size]
        return float(seen[held].max()) if held.any() else None


@dataclass(frozen=True)
class IdRing:
    """The last ``size`` transaction ids (hashed) an entity counted: a redelivered transaction is
    not counted twice. The ``position`` scalar counts the ids written."""

    size: int
    offset: int
    position: int

    @classmethod
    def of(cls, layout: RowLayout, size: int) -> IdRing:
        return cls(size, layout.cells(size), layout.scalar())

    @property
    def params(self) -> tuple[int, int, int]:
        """Where a walk finds the ring: (offset, size, the cell counting the ids written)."""
        return self.offset, self.size, self.position


_HEADER = struct.Struct("<HH")  # row width, cells stored


def encode_row(row: np.ndarray) -> str:
    """A row as compact text (base64 of its non-zero cells), for a table and its changelog."""
    cells = np.flatnonzero(row)
    header = _HEADER.pack(len(row), len(cells))
    packed = header + cells.astype("<u2").tobytes() + row[cells].astype("<f8").tobytes()
    return base64.b64encode(packed).decode("ascii")


def decode_row(text: str, width: int) -> np.ndarray:
    """The row ``encode_row`` wrote; ValueError when it is not a row of ``width`` cells."""
    packed = base64.b64decode(text, validate=True)
    if len(packed) < _HEADER.size:
        raise ValueError(f"not a state row ({len(packed)} bytes)")
    stored_width, count = _HEADER.unpack_from(packed)
    if stored_width != width or len(packed) != _HEADER.size + 10 * count:
        raise ValueError(f"not a state row of {width} cells (width {stored_width}, {len(packed)} bytes)")
    cells = np.frombuffer(packed, "<u2", count, _HEADER.size).astype(np.intp)
    row = np.zeros(width)
    row[cells] = np.frombuffer(packed, "<f8", count, _HEADER.size + 2 * count)
    return row


class RowStore(Protocol):
    """Where a batch's state rows come from and go back to (a dict for a replay, the worker's tables)."""

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        """A copy of the rows of ``keys`` (distinct), an empty row for a key not seen before."""
        ...

    def keep(self, keys: Sequence[str], rows: np.ndarray) -> None:
        """``rows`` are the new rows of ``keys``."""
        ...


class MatrixRows:
    """Every key's row in one growing matrix, for offline replays: a batch's rows are gathered and
    written back with one indexing operation each, or walked where they are (``walked``). The
    matrix's last row is always an empty row that no key owns."""

    def __init__(self, empty: np.ndarray) -> None:
        self._empty = empty
        self._index: dict[str, int] = {}
        self._matrix = np.tile(empty, (257, 1))
        self._filled = 0

    def __len__(self) -> int:
        return len(self._index)

    def _positions(self, keys: Sequence[str]) -> np.ndarray:
        index = self._index
        positions = [index.setdefault(key, len(index)) for key in keys]
        self._grow()
        return np.array(positions, dtype=np.intp)

    def _known_first(self, keys: Sequence[str | None]) -> list[int]:
        """The position of each key's row (-2 for a missing or empty key); a new key gets the next
        free one, in order of first appearance. Known keys are looked up first in one pass (a dict's
        ``get``: half the cost of ``setdefault`` with the count of keys for each), new ones after."""
        index = self._index
        get = index.get
        positions = [get(key, -1) if key else -2 for key in keys]
        if -1 in positions:
            setdefault = index.setdefault
            for item, position in enumerate(positions):
                if position == -1:
                    positions[item] = setdefault(keys[item], len(index))  # type: ignore[arg-type]
        return positions

    def _grow(self) -> None:
        """Room for every key indexed and the empty row after them (new keys' rows are empty).
        Rows past the keys' are filled only when a key takes them (``_filled`` counts the rows
        that are), so growing copies the rows in use and writes nothing else."""
        used = len(self._index)
        if used >= len(self._matrix) - 1:
            grown = np.empty((2 * used + 1, len(self._empty)))
            grown[: self._filled] = self._matrix[: self._filled]
            self._matrix = grown
            self._matrix[-1] = self._empty
        if used > self._filled:
            self._matrix[self._filled : used] = self._empty
            self._filled = used

    def walked(self, keys: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray, int]:
        """The whole matrix, the row of each of ``keys`` in it (repeated or not; a new key gets an
        empty row) and the index of the empty row no key owns, which is also where the keys' rows
        end: a missing or empty key's row. The rows of ``keys`` are the matrix's, to be changed in
        place; the empty row is to be read only. One pass over the keys for a whole batch."""
        positions = self._known_first(keys)
        self._grow()
        empty = len(self._matrix) - 1
        slots = np.array(positions, dtype=np.intp)
        slots[slots < 0] = empty
        return self._matrix, slots, empty

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        positions = self._positions(keys)  # first: it may grow the matrix
        return self._matrix[positions]

    def keep(self, keys: Sequence[str], rows: np.ndarray) -> None:
        positions = self._positions(keys)
        self._matrix[positions] = rows

    def row(self, key: str) -> np.ndarray | None:
        """The row of ``key`` (a view), None when it has none."""
        position = self._index.get(key)
        return None if position is None else self._matrix[position]
