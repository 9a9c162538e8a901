"""The entities a transaction's features come from, and its own features: pure, no Kafka.

Each entity (card, terminal, merchant, device, customer) keeps its state as one row
(pipeline/detection/states.py) that the worker stores in a Faust table. A transaction's features
come from the row as it was *before* the transaction (so a transaction never describes itself);
the row then counts it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.detection.columns import TransactionColumns
from pipeline.detection.states import (
    CARD,
    DAY,
    HOUR,
    SMALL_AMOUNT,
    CustomerColumns,
    DeviceColumns,
    EntityColumns,
    MerchantColumns,
    TerminalColumns,
)
from pipeline.detection.vocabulary import Features, parse_timestamp

CHANNELS = ("card_present", "contactless", "ecommerce", "mobile_app", "atm")
DIGITAL_CHANNELS = frozenset({"ecommerce", "mobile_app"})


def event_seconds(transaction: dict[str, Any]) -> float:
    """Event time of a (validated) transaction in seconds since the epoch."""
    return parse_timestamp(transaction["event_time"])


KEY_SEPARATOR = "|"
"""Joins an entity's key to the key of the entity it belongs to (no id may contain it: schemas/):
a terminal's key is ``<merchant>|<terminal>``."""


@dataclass(frozen=True)
class Entity:
    """An entity whose history gives features: its name, the transaction field that names it, its
    state's columns, and ``within``: the field of the entity it belongs to, when its name is only unique there
    (a terminal within its merchant). Its key then names both, and its state can live with that
    entity's (the pipeline keeps a terminal's state on its merchant's partition)."""

    name: str
    field: str
    columns: EntityColumns
    within: str | None = None

    def key(self, txn: dict[str, Any]) -> str | None:
        """The key of this entity in ``txn`` (a transaction or a decision), None when it has none."""
        value = txn.get(self.field)
        if not value:
            return None
        return f"{txn[self.within]}{KEY_SEPARATOR}{value}" if self.within else str(value)

    def keys(self, txns: Sequence[dict[str, Any]]) -> list[str | None]:
        """``key`` of each transaction of a batch, a column at a time."""
        field = self.field
        values = [txn.get(field) for txn in txns]
        if self.within:
            within = self.within
            return [
                f"{txn[within]}{KEY_SEPARATOR}{value}" if value else None
                for txn, value in zip(txns, values, strict=True)
            ]
        return [(value if type(value) is str else str(value)) if value else None for value in values]

    @property
    def owner_field(self) -> str:
        """The field of the entity this one belongs to (``within``), or its own field."""
        return self.within or self.field


# The entities a transaction's features come from before it is scored on its card, in order. The
# worker keeps each entity's state on the partitions of its owner (pipeline/worker/topics.py);
# offline replays keep them in one process (pipeline/detection/detector.py).
ENTITY_STAGES: tuple[Entity, ...] = (
    Entity("terminal", "terminal_id", TerminalColumns(), within="merchant_id"),
    Entity("merchant", "merchant_id", MerchantColumns()),
    Entity("device", "device_id", DeviceColumns()),
    Entity("customer", "customer_id", CustomerColumns()),
)


UTC_OFFSET_HOURS: dict[str, float] = {
    "GB": 0, "IE": 0, "PT": 0, "IS": 0, "MA": 0, "SN": 0, "GH": 0,
    "DE": 1, "FR": 1, "NL": 1, "BE": 1, "ES": 1, "IT": 1, "AT": 1, "PL": 1, "SE": 1, "DK": 1, "CZ": 1,
    "CH": 1, "NO": 1, "HU": 1, "SK": 1, "SI": 1, "HR": 1, "RS": 1, "LU": 1, "NG": 1, "DZ": 1, "TN": 1,
    "RO": 2, "GR": 2, "FI": 2, "BG": 2, "UA": 2, "EE": 2, "LV": 2, "LT": 2, "IL": 2, "EG": 2, "ZA": 2,
    "RU": 3, "TR": 3, "SA": 3, "KE": 3, "AE": 4, "IN": 5.5, "PK": 5, "BD": 6, "TH": 7, "VN": 7,
    "ID": 7, "CN": 8, "SG": 8, "HK": 8, "PH": 8, "MY": 8, "TW": 8, "JP": 9, "KR": 9, "AU": 10,
    "NZ": 12, "US": -5, "CA": -5, "MX": -6, "BR": -3, "AR": -3, "CL": -4, "CO": -5, "PE": -5,
}  # fmt: skip
"""Standard offsets from UTC by country (the capital's, without daylight saving time): the
transaction's local time of day and week when it carries no time zone; UTC when the country is unknown."""


def local_time_features(country: str, at: float) -> Features:
    """Night (00:00-05:59) and weekend in the local time of the transaction's country."""
    local = at + UTC_OFFSET_HOURS.get(country, 0.0) * HOUR
    hour = (local % DAY) / HOUR
    weekday = int(local // DAY + 3) % 7  # 1970-01-01 was a Thursday: 0 is Monday
    return {"is_night": float(hour < 6), "is_weekend": float(weekday >= 5)}


def transaction_features(txn: dict[str, Any], at: float) -> Features:
    """Features of the transaction itself (no history)."""
    amount = float(txn["amount"])
    hour = (at % DAY) / HOUR
    contact_hours = txn.get("hours_since_contact_change")
    features: Features = {
        "amount": amount,
        "log_amount": math.log1p(amount),
        "is_small_amount": float(amount < SMALL_AMOUNT),
        "is_digital": float(txn["channel"] in DIGITAL_CHANNELS),
        "is_foreign": float(txn["country"] != txn["card_country"]),
        "log_account_age_days": math.log1p(txn["account_age_days"]),
        "contact_changed_24h": float(contact_hours is not None and contact_hours <= 24),
        "contact_changed_7d": float(contact_hours is not None and contact_hours <= 168),
        "shipping_mismatch": float(txn.get("shipping_matches_billing") is False),
        "hour_sin": math.sin(2 * math.pi * hour / 24),
        "hour_cos": math.cos(2 * math.pi * hour / 24),
        **local_time_features(txn["country"], at),
    }
    for channel in CHANNELS:
        features[f"channel_{channel}"] = float(txn["channel"] == channel)
    return features


def transaction_feature_matrix(
    txns: Sequence[dict[str, Any]], at: Sequence[float], columns: TransactionColumns | None = None
) -> tuple[tuple[str, ...], np.ndarray]:
    """``transaction_features`` of a batch as (names, one (transactions, names) matrix): the same
    names in the same order, and the same values to the bit (numpy's elementwise float arithmetic
    and comparisons are IEEE's, as Python's; the logarithms and the sine and cosine are Python's
    ``math``, per value). ``columns``: the batch's ``TransactionColumns``, when the caller has them
    (their amounts and their logarithms are these)."""
    size = len(txns)
    if columns is None:
        amount = np.array([float(txn["amount"]) for txn in txns], dtype=np.float64)
        log_amount = [math.log1p(value) for value in amount.tolist()]
    else:
        amount, log_amount = columns.amount, columns.log_amount
    moments = np.asarray(at, dtype=np.float64).reshape(size)
    channel_of = _CHANNEL_INDEX
    channels = np.array([channel_of.get(txn["channel"], -1) for txn in txns], dtype=np.int64)
    countries = [txn["country"] for txn in txns]
    contact = [txn.get("hours_since_contact_change") for txn in txns]
    offsets = [UTC_OFFSET_HOURS.get(country, 0.0) * HOUR for country in countries]
    hours = (moments % DAY) / HOUR
    angles = (2 * math.pi) * hours / 24
    local = moments + np.array(offsets, dtype=np.float64)
    matrix = np.empty((size, len(_OWN_NAMES)), dtype=np.float64)
    matrix[:, 0] = amount
    matrix[:, 1] = log_amount
    matrix[:, 2] = amount < SMALL_AMOUNT
    matrix[:, 3] = (channels == _CHANNEL_INDEX["ecommerce"]) | (channels == _CHANNEL_INDEX["mobile_app"])
    matrix[:, 4] = [txn["country"] != txn["card_country"] for txn in txns]
    matrix[:, 5] = [math.log1p(txn["account_age_days"]) for txn in txns]
    matrix[:, 6] = [hours_ is not None and hours_ <= 24 for hours_ in contact]
    matrix[:, 7] = [hours_ is not None and hours_ <= 168 for hours_ in contact]
    matrix[:, 8] = [txn.get("shipping_matches_billing") is False for txn in txns]
    matrix[:, 9] = [math.sin(angle) for angle in angles.tolist()]
    matrix[:, 10] = [math.cos(angle) for angle in angles.tolist()]
    matrix[:, 11] = (local % DAY) / HOUR < 6
    matrix[:, 12] = (np.floor_divide(local, DAY) + 3).astype(np.int64) % 7 >= 5
    matrix[:, 13:] = channels[:, None] == np.arange(len(CHANNELS))
    return _OWN_NAMES, matrix


_OWN_NAMES: tuple[str, ...] = tuple(
    transaction_features(
        {"amount": 1, "channel": "atm", "account_age_days": 1, "country": "DE", "card_country": "DE"}, 0.0
    )
)
"""The names of a transaction's own features, in their order."""
_CHANNEL_INDEX = {channel: index for index, channel in enumerate(CHANNELS)}

FEATURE_NAMES: tuple[str, ...] = tuple(
    sorted(
        {
            *transaction_features(
                {"amount": 1, "channel": "atm", "account_age_days": 1, "country": "DE", "card_country": "DE"},
                0.0,
            ),
            *CARD.names,
            *(name for entity in ENTITY_STAGES for name in entity.columns.names),
        }
    )
)
