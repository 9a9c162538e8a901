"""The verdicts store: the latest analyst verdict on each transaction, from ``label.v1`` records.

``Verdict`` is the analyst's verdict on an alert as the monitor keeps it; labels of other sources
(chargebacks, settlements, the simulator) are not kept. Pure and thread-safe: every public method
takes the store's lock (one writer thread, many readers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.state.records import AddResult, InvalidRecordError, VersionedStore, record_time, require_id
from pipeline.config import FRAUD_TYPES, Settings


@dataclass(frozen=True, slots=True)
class Verdict:
    """An analyst's verdict on one transaction, from a ``label.v1`` record with source ``analyst``."""

    transaction_id: str
    card_token: str
    is_fraud: bool
    fraud_type: str | None
    analyst: str
    labelled_at: datetime
    comment: str | None = None

    @property
    def outcome(self) -> str:
        """'fraud' or 'legitimate'."""
        return "fraud" if self.is_fraud else "legitimate"


def verdict_from_label(record: Mapping[str, Any]) -> Verdict | None:
    """The analyst verdict in a label record; None for labels from other sources.

    Raises InvalidRecordError when a field the monitor needs is missing or invalid.
    """
    if not isinstance(record, Mapping):
        raise InvalidRecordError("label: expected a JSON object")
    if record.get("source") != "analyst":
        return None
    transaction_id = require_id(record, "transaction_id")
    card_token = require_id(record, "card_token")
    is_fraud = record.get("is_fraud")
    if not isinstance(is_fraud, bool):
        raise InvalidRecordError(f"is_fraud: expected a boolean, got {is_fraud!r}")
    fraud_type = record.get("fraud_type")
    if fraud_type is not None and fraud_type not in FRAUD_TYPES:
        raise InvalidRecordError(f"fraud_type: expected one of {FRAUD_TYPES} or null, got {fraud_type!r}")
    analyst = record.get("analyst")
    if not isinstance(analyst, str) or not analyst:
        raise InvalidRecordError("analyst: an analyst verdict names its analyst")
    comment = record.get("comment")
    return Verdict(
        transaction_id=transaction_id,
        card_token=card_token,
        is_fraud=is_fraud,
        fraud_type=fraud_type if is_fraud else None,
        analyst=analyst,
        labelled_at=record_time(record.get("labelled_at"), "labelled_at"),
        comment=comment if isinstance(comment, str) and comment else None,
    )


class VerdictStore(VersionedStore):
    """The latest analyst verdict per transaction id, at most ``max_verdicts`` (oldest dropped first).

    Labels of other sources (chargebacks, settlements, the simulator) are not kept.
    """

    def __init__(self, max_verdicts: int = 100_000) -> None:
        if max_verdicts < 1:
            raise ValueError("max_verdicts must be at least 1")
        self._max = max_verdicts
        super().__init__()
        self._verdicts: dict[str, Verdict] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> VerdictStore:
        """A store keeping ten verdicts per alert the monitor keeps."""
        return cls(10 * settings.monitor_max_alerts)

    def _count(self) -> int:
        return len(self._verdicts)

    def add(self, record: Mapping[str, Any]) -> AddResult:
        """Keep the verdict of one label record (a decoded ``label.v1`` message)."""
        verdict = verdict_from_label(record)
        if verdict is None:
            return "other_source"
        with self._lock:
            known = self._verdicts.get(verdict.transaction_id)
            if known == verdict:
                return "duplicate"
            if known is not None and known.labelled_at > verdict.labelled_at:
                return "too_old"
            self._verdicts.pop(verdict.transaction_id, None)  # re-inserted: newest last
            self._verdicts[verdict.transaction_id] = verdict
            while len(self._verdicts) > self._max:
                del self._verdicts[next(iter(self._verdicts))]
            self._version += 1
            return "added"

    def get(self, transaction_id: str) -> Verdict | None:
        """The latest verdict on ``transaction_id``, or None."""
        with self._lock:
            return self._verdicts.get(transaction_id)

    def snapshot(self) -> dict[str, Verdict]:
        """All kept verdicts by transaction id."""
        with self._lock:
            return dict(self._verdicts)
