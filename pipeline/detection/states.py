"""What each entity (card, terminal, merchant, device, customer) keeps of its history, and the
features it gives a transaction: pure, no Kafka, a batch at a time.

An entity's state is one row (pipeline/detection/rows.py); an ``EntityColumns`` knows its layout.
``features`` describes each transaction of a batch from its entity's row as it was before it;
``update`` then adds the transaction to the row. Both take a matrix of rows (one per transaction,
each entity at most once: pipeline/detection/rounds.py orders a batch where an entity comes back).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cached_property
from typing import ClassVar

import numpy as np

from pipeline.detection.columns import TransactionColumns
from pipeline.detection.rows import IdRing, RowLayout, key_hashes

MINUTE, HOUR, DAY = 60, 3600, 86400
SMALL_AMOUNT = 3.0
Columns = dict[str, np.ndarray]
"""Features of a batch: one array per feature name."""


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.divide(total, count, out=np.zeros_like(total), where=count != 0)


def _each(function: Callable[[float], float], values: np.ndarray) -> np.ndarray:
    """``function`` (from ``math``: the same last bit as everywhere else) of each value."""
    return np.array([function(value) for value in values.tolist()])


class EntityColumns:
    """The state layout of one kind of entity and its batch features and updates."""

    names: ClassVar[tuple[str, ...]]
    layout: RowLayout
    ids: IdRing
    labelled: ClassVar[bool] = False
    """Whether labels count in the state (``label_features``, ``record_labels``)."""

    @cached_property
    def width(self) -> int:
        return self.layout.width

    def empty(self) -> np.ndarray:
        return self.layout.empty()

    def has_seen(self, rows: np.ndarray, txns: TransactionColumns) -> np.ndarray:
        """Whether each row already counted its transaction (a redelivery)."""
        return self.ids.contains(rows, txns.ids)

    def has_seen_id(self, row: np.ndarray, transaction_id: str) -> bool:
        """Whether one row has counted the transaction ``transaction_id``."""
        return bool(self.ids.contains(row[None, :], key_hashes([transaction_id]))[0])

    def features(self, rows: np.ndarray, txns: TransactionColumns) -> Columns:
        raise NotImplementedError

    def label_features(self, rows: np.ndarray, txns: TransactionColumns) -> Columns:
        """The features that only labels change, not transactions (none by default): computed once
        per batch, whatever the order of its transactions."""
        return {}

    def update(self, rows: np.ndarray, txns: TransactionColumns) -> None:
        raise NotImplementedError

    def last_active(self, row: np.ndarray) -> float | None:
        """When the entity last saw a transaction (event time), None when never."""
        raise NotImplementedError


class CardColumns(EntityColumns):
    """What a card has done so far: windows, amount statistics, and what it has seen."""

    MAX_MERCHANTS, MAX_DEVICES, MAX_COUNTRIES, MAX_RECENT_IDS = 64, 16, 16, 32
    names = (
        "card_history_count", "card_count_1h", "card_count_24h", "card_amount_24h", "card_count_7d",
        "card_count_30d", "card_amount_30d", "card_amount_7d", "card_mean_amount_24h",
        "card_mean_amount_7d", "card_mean_amount_30d", "amount_zscore", "amount_to_card_mean",
        "log_seconds_since_prev", "is_new_country", "is_new_merchant", "is_new_device",
    )  # fmt: skip

    def __init__(self) -> None:
        layout = self.layout = RowLayout()
        self.recent = layout.ring(5 * MINUTE, HOUR)
        self.day = layout.ring(HOUR, DAY)
        self.long = layout.ring(DAY, 30 * DAY)
        self.count, self.log_mean, self.log_m2, self.last_seen = (layout.scalar() for _ in range(4))
        self.countries = layout.slots(self.MAX_COUNTRIES, timed=False, ordered=True)
        self.merchants = layout.slots(self.MAX_MERCHANTS, timed=False, ordered=True)
        self.devices = layout.slots(self.MAX_DEVICES, timed=False, ordered=True)
        self.ids = IdRing.of(layout, self.MAX_RECENT_IDS)

    def features(self, rows: np.ndarray, txns: TransactionColumns) -> Columns:
        at, amount = txns.at, txns.amount
        count = rows[:, self.count]
        count_24h, sum_24h = self.day.totals(rows, at, DAY)
        count_7d, sum_7d = self.long.totals(rows, at, 7 * DAY)
        count_30d, sum_30d = self.long.totals(rows, at, 30 * DAY)
        known = count >= 2
        std = np.sqrt(np.divide(rows[:, self.log_m2], count - 1, out=np.zeros(len(rows)), where=known))
        zscore = np.where(known, (txns.log_amount - rows[:, self.log_mean]) / np.maximum(std, 0.25), 0.0)
        typical = np.maximum(_each(math.expm1, rows[:, self.log_mean]), 1.0)
        ratio = np.where(known, amount / typical, 1.0)
        seen = count > 0
        since_prev = np.where(seen, at - rows[:, self.last_seen], 30.0 * DAY)
        has_device = txns.devices != 0.0
        return {
            "card_history_count": np.minimum(count, 1000.0),
            "card_count_1h": self.recent.count(rows, at, HOUR),
            "card_count_24h": count_24h,
            "card_amount_24h": sum_24h,
            "card_count_7d": count_7d,
            "card_count_30d": count_30d,
            "card_amount_30d": sum_30d,
            "card_amount_7d": sum_7d,
            "card_mean_amount_24h": _mean(sum_24h, count_24h),
            "card_mean_amount_7d": _mean(sum_7d, count_7d),
            "card_mean_amount_30d": _mean(sum_30d, count_30d),
            "amount_zscore": np.clip(zscore, -10.0, 10.0),
            "amount_to_card_mean": np.minimum(ratio, 1000.0),
            "log_seconds_since_prev": _each(math.log1p, np.maximum(since_prev, 0.0)),
            "is_new_country": (seen & ~self.countries.contains(rows, txns.countries)).astype(np.float64),
            "is_new_merchant": (seen & ~self.merchants.contains(rows, txns.merchants)).astype(np.float64),
            "is_new_device": (has_device & ~self.devices.contains(rows, txns.devices)).astype(np.float64),
        }

    def update(self, rows: np.ndarray, txns: TransactionColumns) -> None:
        at, amount = txns.at, txns.amount
        self.recent.add(rows, at, amount)
        self.day.add(rows, at, amount)
        self.long.add(rows, at, amount)
        seen = rows[:, self.count] > 0
        count = rows[:, self.count] = rows[:, self.count] + 1.0
        delta = txns.log_amount - rows[:, self.log_mean]
        mean = rows[:, self.log_mean] = rows[:, self.log_mean] + delta / count
        rows[:, self.log_m2] += delta * (txns.log_amount - mean)
        rows[:, self.last_seen] = np.where(seen, np.maximum(at, rows[:, self.last_seen]), at)
        self.countries.remember(rows, txns.countries, order=count)
        self.merchants.remember(rows, txns.merchants, order=count)
        with_device = np.flatnonzero(txns.devices != 0.0)
        if len(with_device):
            some = rows[with_device]
            self.devices.remember(some, txns.devices[with_device], order=count[with_device])
            rows[with_device] = some
        self.ids.add(rows, txns.ids)

    def last_active(self, row: np.ndarray) -> float | None:
        return float(row[self.last_seen]) if row[self.count] > 0 else None


class ActivityColumns(EntityColumns):
    """Recent activity of an entity that many cards use (a terminal, a device): which cards paid
    there and how much. Many distinct cards paying small amounts is card testing. The cards of the
    last 10 minutes are kept, at most MAX_CARDS of them (the distinct-card features saturate
    there, far above any threshold that matters); counts are kept per minute and per hour."""

    PREFIX: ClassVar[str] = "entity"
    MAX_CARDS: ClassVar[int] = 64
    CARDS_SECONDS: ClassVar[int] = 10 * MINUTE
    MAX_RECENT_IDS: ClassVar[int] = 32

    def __init__(self) -> None:
        layout = self.layout = RowLayout()
        self.cards = layout.slots(self.MAX_CARDS, timed=True, ordered=False)  # card -> last seen
        self.small_cards = layout.slots(self.MAX_CARDS, timed=True, ordered=False)  # -> last small payment
        self.hourly = layout.ring(MINUTE, HOUR)
        self.daily = layout.ring(HOUR, DAY)
        self.ids = IdRing.of(layout, self.MAX_RECENT_IDS)

    @property
    def names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(f"{self.PREFIX}_{name}" for name in self._names())

    def _names(self) -> tuple[str, ...]:
        return ("distinct_cards_10m", "small_amount_cards_10m", "count_1h", "count_24h")

    def features(self, rows: np.ndarray, txns: TransactionColumns) -> Columns:
        at, prefix = txns.at, self.PREFIX
        # a card seen up to a minute after the transaction counts (frames of several partitions interleave)
        since, until = at - self.CARDS_SECONDS, at + MINUTE
        return {
            f"{prefix}_distinct_cards_10m": self.cards.seen_between(rows, since, until).astype(np.float64),
            f"{prefix}_small_amount_cards_10m": self.small_cards.seen_between(rows, since, until).astype(
                np.float64
            ),
            f"{prefix}_count_1h": self.hourly.count(rows, at, HOUR),
            f"{prefix}_count_24h": self.daily.count(rows, at, DAY),
        }

    def update(self, rows: np.ndarray, txns: TransactionColumns) -> None:
        at, horizon = txns.at, txns.at - self.CARDS_SECONDS
        self.cards.forget_before(rows, horizon)
        self.cards.remember(rows, txns.cards, when=at)
        small = np.flatnonzero(txns.amount < SMALL_AMOUNT)
        if len(small):
            some = rows[small]
            self.small_cards.forget_before(some, horizon[small])
            self.small_cards.remember(some, txns.cards[small], when=at[small])
            rows[small] = some
        self.hourly.add(rows, at, txns.amount)
        self.daily.add(rows, at, txns.amount)
        self.ids.add(rows, txns.ids)

    def last_active(self, row: np.ndarray) -> float | None:
        return self.cards.latest(row) or self.daily.last_bucket_end(row)


class LabelledActivityColumns(ActivityColumns):
    """Activity plus the confirmed-fraud count and rate over 1, 7 and 30 days, from labels already
    known: a label is recorded when it arrives, so no future label ever leaks into a score (a day
    is a calendar day in UTC: the windows slide a day at a time)."""

    labelled = True

    def __init__(self) -> None:
        super().__init__()
        self.labels = self.layout.ring(DAY, 30 * DAY)
        self.frauds = self.layout.ring(DAY, 30 * DAY)

    def _names(self) -> tuple[str, ...]:
        rates = (f"{kind}_{days}d" for days in (1, 7, 30) for kind in ("fraud_rate", "frauds"))
        return (*super()._names(), *rates)

    def label_features(self, rows: np.ndarray, txns: TransactionColumns) -> Columns:
        features: Columns = {}
        for days in (1, 7, 30):
            labelled = self.labels.count(rows, txns.at, days * DAY)
            frauds = self.frauds.count(rows, txns.at, days * DAY)
            features[f"{self.PREFIX}_fraud_rate_{days}d"] = _mean(frauds, labelled)
            features[f"{self.PREFIX}_frauds_{days}d"] = frauds
        return features

    def record_labels(self, rows: np.ndarray, is_fraud: np.ndarray, at: np.ndarray) -> None:
        """Labels became known at ``at``, one for each row's entity (in place)."""
        self.labels.add(rows, at, np.ones(len(rows)))
        frauds = np.flatnonzero(is_fraud)
        if len(frauds):
            some = rows[frauds]
            self.frauds.add(some, at[frauds], np.ones(len(frauds)))
            rows[frauds] = some


class TerminalColumns(LabelledActivityColumns):
    """A terminal's recent activity (card testing) and confirmed-fraud rate (a compromised terminal)."""

    PREFIX = "terminal"


class MerchantColumns(LabelledActivityColumns):
    """A merchant's activity over all its terminals and its confirmed-fraud rate."""

    PREFIX = "merchant"


class DeviceColumns(ActivityColumns):
    """A device's recent activity: a bot tries many cards from one device."""

    PREFIX = "device"


class CustomerColumns(EntityColumns):
    """A customer's (account's) activity across all their cards and devices."""

    MAX_DEVICES, MAX_CARDS, MAX_RECENT_IDS = 16, 8, 32
    names = (
        "customer_count_24h", "customer_amount_24h", "customer_count_7d", "customer_devices_7d",
        "customer_is_new_device", "customer_cards", "customer_count_30d", "customer_mean_amount_24h",
        "customer_mean_amount_7d", "customer_mean_amount_30d", "customer_amount_to_mean_30d",
    )  # fmt: skip

    def __init__(self) -> None:
        layout = self.layout = RowLayout()
        self.window = layout.ring(HOUR, DAY)
        self.month = layout.ring(DAY, 30 * DAY)
        self.devices = layout.slots(self.MAX_DEVICES, timed=True, ordered=True)
        self.cards = layout.slots(self.MAX_CARDS, timed=False, ordered=True)
        self.count = layout.scalar()
        self.ids = IdRing.of(layout, self.MAX_RECENT_IDS)

    def features(self, rows: np.ndarray, txns: TransactionColumns) -> Columns:
        at = txns.at
        count_24h, amount_24h = self.window.totals(rows, at, DAY)
        count_7d, amount_7d = self.month.totals(rows, at, 7 * DAY)
        count_30d, amount_30d = self.month.totals(rows, at, 30 * DAY)
        mean_30d = _mean(amount_30d, count_30d)
        recent = (self.devices.keys(rows) != 0.0) & (at[:, None] - self.devices.when(rows) <= 7 * DAY)
        new_device = (txns.devices != 0.0) & (rows[:, self.count] > 0)
        new_device &= ~self.devices.contains(rows, txns.devices)
        to_mean = np.divide(txns.amount, mean_30d, out=np.ones(len(rows)), where=mean_30d != 0)
        return {
            "customer_count_24h": count_24h,
            "customer_amount_24h": amount_24h,
            "customer_count_7d": count_7d,
            "customer_devices_7d": recent.sum(axis=1).astype(np.float64),
            "customer_is_new_device": new_device.astype(np.float64),
            "customer_cards": self.cards.occupied(rows).astype(np.float64),
            "customer_count_30d": count_30d,
            "customer_mean_amount_24h": _mean(amount_24h, count_24h),
            "customer_mean_amount_7d": _mean(amount_7d, count_7d),
            "customer_mean_amount_30d": mean_30d,
            "customer_amount_to_mean_30d": np.where(mean_30d != 0, np.minimum(to_mean, 1000.0), 1.0),
        }

    def update(self, rows: np.ndarray, txns: TransactionColumns) -> None:
        at = txns.at
        self.window.add(rows, at, txns.amount)
        self.month.add(rows, at, txns.amount)
        count = rows[:, self.count] = rows[:, self.count] + 1.0
        with_device = np.flatnonzero(txns.devices != 0.0)
        if len(with_device):
            some = rows[with_device]
            self.devices.remember(some, txns.devices[with_device], at[with_device], count[with_device])
            rows[with_device] = some
        self.cards.remember(rows, txns.cards, order=count)
        self.ids.add(rows, txns.ids)

    def last_active(self, row: np.ndarray) -> float | None:
        return self.window.last_bucket_end(row)


CARD = CardColumns()
"""The one card layout (its rows are in the card table and every replay)."""
