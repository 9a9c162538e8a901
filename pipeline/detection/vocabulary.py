"""The words every part of the system shares: the fraud types and the one timestamp parser."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

import numpy as np

FraudType = Literal["unauthorized_transactions", "identity_theft", "malicious_behavior"]
FRAUD_TYPES: tuple[FraudType, ...] = ("unauthorized_transactions", "identity_theft", "malicious_behavior")
Features = dict[str, float]
"""A transaction's features by name."""


class FeatureRows(list[Features]):
    """A batch's feature rows, which also hands them out as float64 matrices (a feature a row lacks
    is 0), reading the rows' dicts once: when every row has the same features, all are read into
    one matrix, and the matrix of any names is a selection of its columns."""

    def __init__(self, rows: Iterable[Features] = ()) -> None:
        super().__init__(rows)
        self._keys: tuple[str, ...] | None = None
        self._base: np.ndarray | None = None
        self._position: dict[str, int] = {}
        self._matrices: dict[tuple[str, ...], np.ndarray] = {}

    @classmethod
    def of(cls, rows: Iterable[Features]) -> FeatureRows:
        return rows if isinstance(rows, FeatureRows) else cls(rows)

    def same_keys(self) -> bool:
        """Whether every row has exactly the features of the first one."""
        if self._keys is None:
            first = self[0].keys() if self else {}.keys()
            uniform = all(len(row) == len(first) and row.keys() == first for row in self)
            self._keys = tuple(self[0]) if uniform and self else ()
        return bool(self._keys) or not self

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
