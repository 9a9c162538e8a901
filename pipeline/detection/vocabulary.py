"""The words every part of the system shares: the fraud types and the one timestamp parser."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Literal, overload

import numpy as np

FraudType = Literal["unauthorized_transactions", "identity_theft", "malicious_behavior"]
FRAUD_TYPES: tuple[FraudType, ...] = ("unauthorized_transactions", "identity_theft", "malicious_behavior")
Features = dict[str, float]
"""A transaction's features by name."""


class FeatureRows(Sequence[Features]):
    """A batch's feature rows, handed out as dicts or as float64 matrices (a feature a row lacks is
    0). Made from dicts (read once into a matrix when every row has the same features, the matrix of
    any names then a selection of its columns) or from a matrix (``of_matrix``: the scoring path,
    whose rows become dicts only when one is asked for)."""

    def __init__(self, rows: Iterable[Features] = ()) -> None:
        self._rows: list[Features | None] = list(rows)
        self._keys: tuple[str, ...] | None = None
        self._base: np.ndarray | None = None
        self._position: dict[str, int] = {}
        self._matrices: dict[tuple[str, ...], np.ndarray] = {}

    @classmethod
    def of(cls, rows: Iterable[Features]) -> FeatureRows:
        return rows if isinstance(rows, FeatureRows) else cls(rows)

    @classmethod
    def of_matrix(cls, names: tuple[str, ...], matrix: np.ndarray) -> FeatureRows:
        """Rows of the features ``names`` (the columns of ``matrix``, in that order)."""
        rows = cls()
        rows._rows = [None] * len(matrix)
        rows._keys = names if len(matrix) else ()
        rows._base = np.asarray(matrix, dtype=np.float64).reshape(len(matrix), len(names))
        rows._position = {name: i for i, name in enumerate(names)}
        return rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Features: ...

    @overload
    def __getitem__(self, index: slice) -> FeatureRows: ...

    def __getitem__(self, index: int | slice) -> Features | FeatureRows:
        if isinstance(index, slice):
            return self.take(range(len(self))[index])
        row = self._rows[index]
        if row is None:  # a row of the matrix, as a dict the first time it is asked for
            assert self._base is not None and self._keys is not None
            row = self._rows[index] = dict(zip(self._keys, self._base[index].tolist(), strict=True))
        return row

    def __iter__(self) -> Iterator[Features]:
        if self._base is None:
            return iter(self._rows)  # type: ignore[arg-type]  # made from dicts: no None
        return (self[i] for i in range(len(self)))

    def replace(self, index: int, row: Features) -> None:
        """Hand ``row`` out for ``index`` from now on (the same features, e.g. with an explanation)."""
        self._rows[index] = row

    def take(self, indices: Sequence[int]) -> FeatureRows:
        """The rows at ``indices``, in that order (their matrix a selection of this one's rows)."""
        if self._base is not None and self._keys is not None and self._keys:
            taken = FeatureRows.of_matrix(self._keys, self._base[list(indices)])
            taken._rows = [self._rows[i] for i in indices]
            return taken
        return FeatureRows(self[i] for i in indices)

    def same_keys(self) -> bool:
        """Whether every row has exactly the features of the first one."""
        if self._keys is None:
            first = self[0].keys() if self else {}.keys()
            uniform = all(len(row) == len(first) and row.keys() == first for row in self)
            self._keys = tuple(self[0]) if uniform and self else ()
        return bool(self._keys) or not self

    @property
    def names(self) -> tuple[str, ...] | None:
        """The features every row has, in the first row's order; None when the rows differ."""
        if self.same_keys():
            return self._keys or ()
        return None if any(len(row) for row in self) else ()

    def matrix(self, names: tuple[str, ...]) -> np.ndarray:
        """The (rows, names) matrix; built once per names."""
        matrix = self._matrices.get(names)
        if matrix is not None:
            return matrix
        if self.same_keys() and self:
            keys = self._keys or ()
            if self._base is None:
                self._base = np.array([[row[key] for key in keys] for row in self], dtype=np.float64)
                self._position = {key: i for i, key in enumerate(keys)}
            position = self._position
            at = [position.get(name, -1) for name in names]
            matrix = self._base[:, [i if i >= 0 else 0 for i in at]] if at else np.zeros((len(self), 0))
            missing = [j for j, i in enumerate(at) if i < 0]
            if missing:
                matrix[:, missing] = 0.0
        else:
            matrix = np.array([[row.get(name, 0.0) for name in names] for row in self], dtype=np.float64)
            matrix = matrix.reshape(len(self), len(names))
        self._matrices[names] = matrix
        return matrix


FRAUD_TYPE_NAMES: dict[str, str] = {
    "unauthorized_transactions": "Unauthorized Transactions",
    "identity_theft": "Identity Theft",
    "malicious_behavior": "Malicious Behavior",
}


def parse_timestamp(value: str) -> float:
    """Seconds since the epoch of an RFC 3339 date-time, including what Python's parser refuses:
    a lower-case ``t``/``z`` and a leap second (``23:59:60`` reads as the next second). Raises
    ValueError for anything else, a time without a UTC offset included (it names no instant)."""
    text = value.upper()
    leap = text[17:19] == "60" and text[16] == ":"
    if leap:
        text = text[:17] + "59" + text[19:]
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp has no UTC offset: {value[:40]!r}")
    return moment.timestamp() + (1.0 if leap else 0.0)
