"""What each entity (card, terminal, merchant, device, customer) keeps of its history, and the
features it gives a transaction: pure, no Kafka, a batch at a time.

An entity's state is one row (pipeline/detection/rows.py); an ``EntityColumns`` knows its layout
and the compiled walk (pipeline/detection/kernels.py) that takes a batch in order: each transaction
is described by its entity's row as it was just before it, then counted in the row (once per id).
pipeline/detection/in_order.py gathers a batch's rows from a store and gives them back.
"""

from __future__ import annotations

from functools import cached_property
from typing import ClassVar

import numpy as np

from pipeline.detection import kernels
from pipeline.detection.columns import TransactionColumns
from pipeline.detection.kernels import COUNT, DESCRIBE, OBSERVE
from pipeline.detection.rows import IdRing, RowLayout, key_hash

MINUTE, HOUR, DAY = kernels.MINUTE, kernels.HOUR, kernels.DAY
SMALL_AMOUNT = kernels.SMALL_AMOUNT
Columns = dict[str, np.ndarray]
"""Features of a batch: one array per feature name."""


class EntityColumns:
    """The state layout of one kind of entity and its walk over a batch."""

    names: ClassVar[tuple[str, ...]]
    layout: RowLayout
    ids: IdRing
    labelled: ClassVar[bool] = False
    """Whether labels count in the state (``record_labels``)."""

    @cached_property
    def width(self) -> int:
        return self.layout.width

    @cached_property
    def params(self) -> np.ndarray:
        """The layout as the walk reads it (offsets, sizes, widths)."""
        return np.array(self._params(), dtype=np.int64)

    def _params(self) -> tuple[int, ...]:
        raise NotImplementedError

    def empty(self) -> np.ndarray:
        return self.layout.empty()

    def walk(
        self, mode: int, matrix: np.ndarray, positions: np.ndarray, known_rows: int, txns: TransactionColumns
    ) -> np.ndarray:
        """The walk over ``matrix[positions[i]]`` for each transaction ``i`` (``kernels.DESCRIBE``,
        ``COUNT`` or ``OBSERVE``); rows from ``known_rows`` on are never counted in (the empty row
        of items without a key). Returns the features, one column per name."""
        raise NotImplementedError

    def observe(
        self, matrix: np.ndarray, positions: np.ndarray, known_rows: int, txns: TransactionColumns
    ) -> np.ndarray:
        """Features of each transaction from its row as it was before it, the row then counting it
        once (a redelivered transaction, whose id the row holds, is not counted again)."""
        return self.walk(OBSERVE, matrix, positions, known_rows, txns)

    def features(self, rows: np.ndarray, txns: TransactionColumns) -> Columns:
        """Features of transaction ``i`` from ``rows[i]``, which stay as they are."""
        out = self.walk(DESCRIBE, rows, np.arange(len(rows)), 0, txns)
        return {name: out[:, column] for column, name in enumerate(self.names)}

    def update(self, rows: np.ndarray, txns: TransactionColumns) -> None:
        """``rows[i]`` counts transaction ``i`` (in place), even when it has counted it before."""
        self.walk(COUNT, rows, np.arange(len(rows)), len(rows), txns)

    def has_seen_id(self, row: np.ndarray, transaction_id: str) -> bool:
        """Whether one row has counted the transaction ``transaction_id``."""
        return bool(kernels.ids_contain(row, self.ids.offset, self.ids.size, key_hash(transaction_id)))

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

    def _params(self) -> tuple[int, ...]:
        return (
            *self.recent.params, *self.day.params, *self.long.params,
            self.count, self.log_mean, self.log_m2, self.last_seen,
            *self.countries.params, *self.merchants.params, *self.devices.params, *self.ids.params,
        )  # fmt: skip

    def walk(
        self, mode: int, matrix: np.ndarray, positions: np.ndarray, known_rows: int, txns: TransactionColumns
    ) -> np.ndarray:
        out = np.empty((len(positions), len(self.names)))
        kernels.walk_card(
            mode, self.params, matrix, positions, known_rows, txns.at, txns.amount, txns.log_amount,
            txns.ids, txns.countries, txns.merchants, txns.devices, out,
        )  # fmt: skip
        return out

    def last_active(self, row: np.ndarray) -> float | None:
        return float(row[self.last_seen]) if row[self.count] > 0 else None


class ActivityColumns(EntityColumns):
    """Recent activity of an entity that many cards use (a terminal, a device): which cards paid
    there and how much. Many distinct cards paying small amounts is card testing. The cards of the
    last 10 minutes are kept, at most MAX_CARDS of them (the distinct-card features saturate
    there, far above any threshold that matters); counts are kept per minute and per hour. A card
    seen up to a minute after the transaction counts (frames of several partitions interleave)."""

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

    @cached_property
    def names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(f"{self.PREFIX}_{name}" for name in self._names())

    def _names(self) -> tuple[str, ...]:
        return ("distinct_cards_10m", "small_amount_cards_10m", "count_1h", "count_24h")

    def _params(self) -> tuple[int, ...]:
        no_ring = (0, 1, 1)
        return (
            *self.cards.params, *self.small_cards.params, *self.hourly.params, *self.daily.params,
            *self.ids.params, 0, *no_ring, *no_ring, self.CARDS_SECONDS,
        )  # fmt: skip

    def walk(
        self, mode: int, matrix: np.ndarray, positions: np.ndarray, known_rows: int, txns: TransactionColumns
    ) -> np.ndarray:
        out = np.empty((len(positions), len(self.names)))
        kernels.walk_activity(
            mode, self.params, matrix, positions, known_rows, txns.at, txns.amount, txns.ids, txns.cards, out
        )
        return out

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

    def _params(self) -> tuple[int, ...]:
        activity = super()._params()
        return (*activity[:13], 1, *self.labels.params, *self.frauds.params, self.CARDS_SECONDS)

    def record_labels(self, rows: np.ndarray, is_fraud: np.ndarray, at: np.ndarray) -> None:
        """Labels became known at ``at``, one for each row's entity (in place)."""
        self.record_labels_at(rows, np.arange(len(rows)), is_fraud, at)

    def record_labels_at(
        self, matrix: np.ndarray, positions: np.ndarray, is_fraud: np.ndarray, at: np.ndarray
    ) -> None:
        """Label ``i`` counts in ``matrix[positions[i]]``, in order (in place)."""
        labels, frauds = np.array(self.labels.params), np.array(self.frauds.params)
        kernels.walk_labels(labels, frauds, matrix, positions, is_fraud.astype(np.bool_), at)


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

    def _params(self) -> tuple[int, ...]:
        return (
            *self.window.params, *self.month.params, *self.devices.params, *self.cards.params,
            self.count, *self.ids.params,
        )  # fmt: skip

    def walk(
        self, mode: int, matrix: np.ndarray, positions: np.ndarray, known_rows: int, txns: TransactionColumns
    ) -> np.ndarray:
        out = np.empty((len(positions), len(self.names)))
        kernels.walk_customer(
            mode, self.params, matrix, positions, known_rows, txns.at, txns.amount, txns.ids, txns.cards,
            txns.devices, out,
        )  # fmt: skip
        return out

    def last_active(self, row: np.ndarray) -> float | None:
        return self.window.last_bucket_end(row)


CARD = CardColumns()
"""The one card layout (its rows are in the card table and every replay)."""


def compile_walks() -> None:
    """Compile every walk (or load it from numba's cache) now, on a batch of one, so that a
    process's first real batch does not wait for the compiler (seconds, the first time): the
    entities' walks and the anomaly trees'."""
    kernels.compile_trees()
    txn = {"transaction_id": "t", "card_token": "c", "country": "GB", "merchant_id": "m", "device_id": "d"}
    txns = TransactionColumns.of([{**txn, "amount": 1.0}], [0.0])
    for columns in (CARD, TerminalColumns(), DeviceColumns(), CustomerColumns()):
        matrix = columns.empty()[None, :]
        columns.observe(matrix, np.zeros(1, dtype=np.intp), 1, txns)
        if isinstance(columns, LabelledActivityColumns):
            columns.record_labels(matrix, np.ones(1, dtype=bool), np.zeros(1))
