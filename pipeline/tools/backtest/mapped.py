"""The columnar mapper's result: the mapped rows of a file as transactions, labels and times,
and the count of what was observed in them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.tools.backtest.convert import Mapped


@dataclass
class MappedFrame:
    """The rows of a file that map to transactions, in file order: the transactions, their
    labels and their event times in seconds since the epoch."""

    txns: list[dict[str, Any]] = field(default_factory=list)
    is_fraud: list[bool] = field(default_factory=list)
    fraud_types: list[str | None] = field(default_factory=list)
    at: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.txns)

    def __iter__(self) -> Iterator[Mapped]:
        return iter(zip(self.txns, self.is_fraud, self.fraud_types, strict=True))

    def add(self, txn: dict[str, Any], is_fraud: bool, fraud_type: str | None, at: float) -> None:
        self.txns.append(txn)
        self.is_fraud.append(is_fraud)
        self.fraud_types.append(fraud_type)
        self.at.append(at)


def transaction(
    tid: str,
    when: str,
    card: str,
    customer: str,
    merchant: str,
    terminal: str,
    mcc: str,
    currency: str,
    channel: str,
    country: str,
    card_country: str,
    amount: float,
    age: int,
    device: str | None,
    ip: str | None,
    hours: float | None,
    shipping: bool | None,
) -> dict[str, Any]:
    """A transaction with the row mapper's keys in its order."""
    return {
        "schema_version": 1,
        "transaction_id": tid,
        "event_time": when,
        "card_token": card,
        "customer_id": customer,
        "merchant_id": merchant,
        "terminal_id": terminal,
        "merchant_category": mcc,
        "currency": currency,
        "channel": channel,
        "country": country,
        "card_country": card_country,
        "amount": amount,
        "account_age_days": age,
        "device_id": device,
        "ip_address": ip,
        "hours_since_contact_change": hours,
        "shipping_matches_billing": shipping,
    }


def count_observed(
    notes: list[tuple[Counter[str], str, np.ndarray]],
    kept: np.ndarray,
    slow: list[tuple[int, int, Counter[str], str]],
) -> None:
    """Count the kept rows' observations: those of the rows mapped as columns (``notes``, in the
    order the row mapper makes them within a row) and those of the rows the row mapper mapped
    (``slow``: row, order within it, counter, key). Each key enters its counter in the order the
    row mapper would have met it first, so the summary lists them in the same order."""
    first: dict[tuple[int, str], list[Any]] = {}  # (counter, key) -> [row, order, counter, key, count]

    def meet(counter: Counter[str], key: str, row: int, order: int, count: int) -> None:
        item = first.get((id(counter), key))
        if item is None:
            first[(id(counter), key)] = [row, order, counter, key, count]
            return
        if (row, order) < (item[0], item[1]):
            item[0], item[1] = row, order
        item[4] += count

    for order, (counter, key, mask) in enumerate(notes):
        hits = mask & kept
        total = int(hits.sum())
        if total:
            meet(counter, key, int(hits.argmax()), order, total)
    for row, order, counter, key in slow:
        meet(counter, key, row, order, 1)
    for _, _, counter, key, count in sorted(first.values(), key=lambda item: (item[0], item[1])):
        counter[key] += count
