"""Small builders shared by the unit tests of the pure core (no Kafka)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings

from pipeline.detection.columns import TransactionColumns
from pipeline.detection.features import FEATURE_NAMES, event_seconds, transaction_features
from pipeline.detection.rows import decode_row, encode_row
from pipeline.detection.states import EntityColumns, LabelledActivityColumns

# One Hypothesis profile for the pure tests: enough examples to find edge cases, no deadline
# (CI machines stall), and no example database written into the repository.
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# 2026-06-01 is a Monday; midnight UTC, so bucket and hour arithmetic in the tests is exact.
T0 = datetime(2026, 6, 1, tzinfo=UTC).timestamp()


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


_counter = iter(range(1, 10**9))


def make_txn(at: float = T0, **overrides: Any) -> dict[str, Any]:
    """A valid card-present transaction at ``at``; keyword arguments replace fields."""
    txn: dict[str, Any] = {
        "schema_version": 1,
        "transaction_id": f"tx-test-{next(_counter):08d}",
        "event_time": iso(at),
        "card_token": "tok_card0001abc",
        "customer_id": "cust-000001",
        "merchant_id": "m-00001",
        "terminal_id": "t-00001-1",
        "merchant_category": "5411",
        "amount": 20.0,
        "currency": "EUR",
        "channel": "card_present",
        "country": "DE",
        "card_country": "DE",
        "device_id": None,
        "ip_address": None,
        "account_age_days": 400,
        "hours_since_contact_change": None,
        "shipping_matches_billing": None,
    }
    txn.update(overrides)
    return txn


def make_digital_txn(at: float = T0, **overrides: Any) -> dict[str, Any]:
    """A valid e-commerce transaction (device and IP present)."""
    values: dict[str, Any] = {
        "channel": "ecommerce",
        "terminal_id": "t-00001-web",
        "device_id": "dev-0000000001",
        "ip_address": "203.0.113.7",
        "shipping_matches_billing": True,
    }
    values.update(overrides)
    return make_txn(at, **values)


def features_for(txn: dict[str, Any], at: float = T0, **overrides: float) -> dict[str, float]:
    """Every feature name: the transaction's own features, history features 0, then overrides."""
    features = dict.fromkeys(FEATURE_NAMES, 0.0)
    features.update(transaction_features(txn, at))
    unknown = set(overrides) - set(FEATURE_NAMES)
    assert not unknown, f"not feature names: {unknown}"
    features.update(overrides)
    return features


class OneEntity:
    """One entity's state row behind the one-transaction API of the reference objects
    (tests/pipeline/reference/object_states.py), so that tests read like a story; the work is the
    pipeline's batch code on a batch of one."""

    def __init__(self, columns: EntityColumns, row: np.ndarray | None = None) -> None:
        self.columns = columns
        self.row = columns.empty() if row is None else row

    def features(self, txn: dict[str, Any], at: float) -> dict[str, float]:
        rows, txns = self.row[None, :].copy(), TransactionColumns.of([txn], [at])
        columns = self.columns.features(rows, txns)
        return {name: float(values[0]) for name, values in columns.items()}

    def update(self, txn: dict[str, Any], at: float) -> None:
        rows = self.row[None, :].copy()
        self.columns.update(rows, TransactionColumns.of([txn], [at]))
        self.row = rows[0]

    def observe(self, txn: dict[str, Any], at: float | None = None) -> dict[str, float]:
        """Features before the transaction, then the row counts it once (what the pipeline does)."""
        at = event_seconds(txn) if at is None else at
        features = self.features(txn, at)
        if not self.has_seen(txn["transaction_id"]):
            self.update(txn, at)
        return features

    def has_seen(self, transaction_id: str) -> bool:
        return self.columns.has_seen_id(self.row, transaction_id)

    def record_label(self, is_fraud: bool, at: float) -> None:
        assert isinstance(self.columns, LabelledActivityColumns)
        rows = self.row[None, :].copy()
        self.columns.record_labels(rows, np.array([is_fraud]), np.array([at]))
        self.row = rows[0]

    def stored(self) -> str:
        """The row as a table stores it."""
        return encode_row(self.row)

    def restored(self) -> OneEntity:
        """The entity read back from what a table stored."""
        return OneEntity(self.columns, decode_row(self.stored(), self.columns.width))
