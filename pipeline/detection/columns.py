"""A batch of transactions as the arrays that entity states read (pipeline/detection/states.py):
event times, amounts and the hashes of the keys, each computed once per batch. Pure, no Kafka."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from pipeline.detection.rows import key_hashes


def _hashes(values: Sequence[Any]) -> np.ndarray:
    """``key_hashes`` of each value; 0 where it is missing or empty."""
    present = [i for i, value in enumerate(values) if value]
    if len(present) == len(values):
        return key_hashes([str(value) for value in values])
    hashes = np.zeros(len(values))
    hashes[present] = key_hashes([str(values[i]) for i in present])
    return hashes


_REMEMBERED: dict[Any, float] = {}
"""The hashes of the cards, merchants, devices and countries seen lately: they come back batch after
batch, and a dict's lookup costs a third of hashing the text again."""
REMEMBERED_MAX = 1 << 20
"""Hashes remembered at most (about 100 MB); past it, the memory starts again empty."""


def _remembered_hashes(values: Sequence[Any]) -> np.ndarray:
    """``_hashes`` of values that come back, remembered across batches."""
    get = _REMEMBERED.get
    try:
        hashes = [get(value) if value else 0.0 for value in values]
    except TypeError:  # a value that cannot be a dict's key (never in a validated transaction)
        return _hashes(values)
    if None in hashes:
        new = [item for item, known in enumerate(hashes) if known is None]
        if len(_REMEMBERED) + len(new) > REMEMBERED_MAX:
            _REMEMBERED.clear()
        for item, value in zip(new, key_hashes([str(values[item]) for item in new]).tolist(), strict=True):
            hashes[item] = _REMEMBERED[values[item]] = value
    return np.array(hashes, dtype=np.float64)


_KEY_FIELDS = {"ids": "transaction_id", "cards": "card_token", "countries": "country",
               "merchants": "merchant_id", "devices": "device_id"}  # fmt: skip


class TransactionColumns:
    """The fields of a batch of transactions that entity states use, as arrays. The hashes of a
    key field are computed when first asked for, once per batch."""

    def __init__(self, txns: Sequence[dict[str, Any]], at: np.ndarray, amount: np.ndarray) -> None:
        self.txns, self.at, self.amount = txns, at, amount
        self._hashes: dict[str, np.ndarray] = {}

    @classmethod
    def of(cls, txns: Sequence[dict[str, Any]], at: Sequence[float]) -> TransactionColumns:
        amount = np.array([float(txn["amount"]) for txn in txns])
        return cls(txns, np.asarray(at, dtype=np.float64), amount)

    def _hashed(self, name: str) -> np.ndarray:
        hashes = self._hashes.get(name)
        if hashes is None:
            values = [txn.get(_KEY_FIELDS[name]) for txn in self.txns]
            hashes = self._hashes[name] = (_hashes if name == "ids" else _remembered_hashes)(values)
        return hashes

    @property
    def ids(self) -> np.ndarray:
        return self._hashed("ids")

    @property
    def cards(self) -> np.ndarray:
        return self._hashed("cards")

    @property
    def countries(self) -> np.ndarray:
        return self._hashed("countries")

    @property
    def merchants(self) -> np.ndarray:
        return self._hashed("merchants")

    @property
    def devices(self) -> np.ndarray:
        return self._hashed("devices")

    @cached_property
    def log_amount(self) -> np.ndarray:
        return np.array([math.log1p(amount) for amount in self.amount.tolist()])
