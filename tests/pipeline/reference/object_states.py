"""The reference for pipeline/detection/states.py: each entity's state as a plain Python object,
one transaction at a time (``features`` from the state as it was before it, then ``update``).

The pipeline computes the same features on rows, a batch at a time; tests compare both on long
streams (tests/pipeline/test_state_columns.py). This was the pipeline's own implementation until
the rows replaced it; it stays as the readable statement of what each feature means."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pipeline.detection.vocabulary import Features
from tests.pipeline.reference.bucketed_window import BucketedWindow

MINUTE, HOUR, DAY = 60, 3600, 86400
SMALL_AMOUNT = 3.0


def _mean(total: float, count: float) -> float:
    return total / count if count else 0.0


def _remember(seen: dict[str, float], key: str, at: float, limit: int) -> None:
    """Mark ``key`` as seen at ``at``, keeping the ``limit`` most recently seen keys."""
    seen.pop(key, None)
    seen[key] = at
    if len(seen) > limit:
        del seen[next(iter(seen))]


@dataclass
class CardState:
    """What a card has done so far: windows, amount statistics, and what it has seen."""

    short: BucketedWindow = field(default_factory=lambda: BucketedWindow(5 * MINUTE, HOUR))
    day: BucketedWindow = field(default_factory=lambda: BucketedWindow(HOUR, DAY))
    long: BucketedWindow = field(default_factory=lambda: BucketedWindow(DAY, 30 * DAY))
    count: int = 0
    log_amount_mean: float = 0.0
    log_amount_m2: float = 0.0
    last_seen: float | None = None
    countries: dict[str, float] = field(default_factory=dict)
    merchants: dict[str, float] = field(default_factory=dict)
    devices: dict[str, float] = field(default_factory=dict)
    recent_ids: list[str] = field(default_factory=list)

    MAX_MERCHANTS = 64
    MAX_DEVICES = 16
    MAX_COUNTRIES = 16
    MAX_RECENT_IDS = 32

    def has_seen(self, transaction_id: str) -> bool:
        return transaction_id in self.recent_ids

    def features(self, txn: dict[str, Any], at: float) -> Features:
        """Features of ``txn`` given this card's history (not including ``txn``)."""
        amount = float(txn["amount"])
        log_amount = math.log1p(amount)
        count_1h, _ = self.short.totals(at, HOUR)
        count_24h, sum_24h = self.day.totals(at, DAY)
        count_7d, sum_7d = self.long.totals(at, 7 * DAY)
        count_30d, sum_30d = self.long.totals(at, 30 * DAY)
        if self.count >= 2:
            std = math.sqrt(self.log_amount_m2 / (self.count - 1))
            zscore = (log_amount - self.log_amount_mean) / max(std, 0.25)
            ratio = amount / max(math.expm1(self.log_amount_mean), 1.0)
        else:
            zscore, ratio = 0.0, 1.0
        since_prev = at - self.last_seen if self.last_seen is not None else 30 * DAY
        device = txn.get("device_id")
        return {
            "card_history_count": float(min(self.count, 1000)),
            "card_count_1h": count_1h,
            "card_count_24h": count_24h,
            "card_amount_24h": sum_24h,
            "card_count_7d": count_7d,
            "card_count_30d": count_30d,
            "card_amount_30d": sum_30d,
            "card_amount_7d": sum_7d,
            "card_mean_amount_24h": _mean(sum_24h, count_24h),
            "card_mean_amount_7d": _mean(sum_7d, count_7d),
            "card_mean_amount_30d": _mean(sum_30d, count_30d),
            "amount_zscore": max(-10.0, min(zscore, 10.0)),
            "amount_to_card_mean": min(ratio, 1000.0),
            "log_seconds_since_prev": math.log1p(max(since_prev, 0.0)),
            "is_new_country": float(self.count > 0 and txn["country"] not in self.countries),
            "is_new_merchant": float(self.count > 0 and txn["merchant_id"] not in self.merchants),
            "is_new_device": float(device is not None and device not in self.devices),
        }

    def update(self, txn: dict[str, Any], at: float) -> None:
        """Add ``txn`` to the history."""
        amount = float(txn["amount"])
        self.short.add(at, amount)
        self.day.add(at, amount)
        self.long.add(at, amount)
        self.count += 1
        log_amount = math.log1p(amount)
        delta = log_amount - self.log_amount_mean
        self.log_amount_mean += delta / self.count
        self.log_amount_m2 += delta * (log_amount - self.log_amount_mean)
        self.last_seen = max(at, self.last_seen or at)
        _remember(self.countries, txn["country"], at, self.MAX_COUNTRIES)
        _remember(self.merchants, txn["merchant_id"], at, self.MAX_MERCHANTS)
        if txn.get("device_id"):
            _remember(self.devices, txn["device_id"], at, self.MAX_DEVICES)
        self.recent_ids.append(txn["transaction_id"])
        del self.recent_ids[: -self.MAX_RECENT_IDS]


@dataclass
class ActivityState:
    """Recent activity of an entity that many cards use (a terminal, a device): which cards paid
    there and how much. Many distinct cards paying small amounts is card testing.

    Every update and every feature costs O(1) amortised, whatever the entity's traffic: the cards
    of the last 10 minutes are kept in the order they were last seen (so the stale ones are
    dropped from the front), at most MAX_CARDS of them (the distinct-card features saturate
    there, far above any threshold that matters); counts are kept per minute and per hour."""

    cards: OrderedDict[str, float] = field(default_factory=OrderedDict)  # card -> last seen, oldest first
    small_cards: OrderedDict[str, float] = field(default_factory=OrderedDict)  # card -> last small payment
    hourly: BucketedWindow = field(default_factory=lambda: BucketedWindow(MINUTE, HOUR))
    daily: BucketedWindow = field(default_factory=lambda: BucketedWindow(HOUR, DAY))
    recent_ids: list[str] = field(default_factory=list)

    PREFIX: ClassVar[str] = "entity"
    MAX_CARDS: ClassVar[int] = 64
    CARDS_SECONDS: ClassVar[int] = 10 * MINUTE
    MAX_RECENT_IDS: ClassVar[int] = 32

    def has_seen(self, transaction_id: str) -> bool:
        return transaction_id in self.recent_ids

    def features(self, txn: dict[str, Any], at: float) -> Features:
        count_1h = self.hourly.count(at, HOUR)
        count_24h = self.daily.count(at, DAY)
        prefix = self.PREFIX
        return {
            f"{prefix}_distinct_cards_10m": float(_seen_since(self.cards, at - self.CARDS_SECONDS, at)),
            f"{prefix}_small_amount_cards_10m": float(
                _seen_since(self.small_cards, at - self.CARDS_SECONDS, at)
            ),
            f"{prefix}_count_1h": count_1h,
            f"{prefix}_count_24h": count_24h,
        }

    def update(self, txn: dict[str, Any], at: float) -> None:
        card, amount = txn["card_token"], float(txn["amount"])
        _see(self.cards, card, at, at - self.CARDS_SECONDS, self.MAX_CARDS)
        if amount < SMALL_AMOUNT:
            _see(self.small_cards, card, at, at - self.CARDS_SECONDS, self.MAX_CARDS)
        self.hourly.add(at, amount)
        self.daily.add(at, amount)
        self.recent_ids.append(txn["transaction_id"])
        del self.recent_ids[: -self.MAX_RECENT_IDS]


def _see(seen: OrderedDict[str, float], key: str, at: float, horizon: float, limit: int) -> None:
    """Mark ``key`` seen at ``at`` (moved to the end: newest last), then drop from the front the
    keys last seen before ``horizon`` and any beyond ``limit``."""
    newest = seen[next(reversed(seen))] if seen else at
    previous = seen.pop(key, None)
    seen[key] = when = at if previous is None else max(previous, at)
    if when < newest - MINUTE:  # far out of order (rare): restore the time order; a little out of
        # order (frames from several partitions interleave) is fine: it only delays pruning
        ordered = sorted(seen.items(), key=lambda item: item[1])
        seen.clear()
        seen.update(ordered)
    while len(seen) > limit or seen[next(iter(seen))] < horizon:
        seen.popitem(last=False)


def _seen_since(seen: OrderedDict[str, float], since: float, at: float) -> int:
    """How many keys were last seen in [since, at + 1 min]: the stale ones are at the front and
    the ones from later events (out of order) at the end, so both ends are counted off lazily."""
    count = len(seen)
    for _, when in seen.items():
        if when >= since:
            break
        count -= 1
    for when in reversed(seen.values()):
        if when <= at + MINUTE or count == 0:
            break
        count -= 1
    return max(count, 0)


@dataclass
class LabelledActivityState(ActivityState):
    """Activity plus the confirmed-fraud count and rate over 1, 7 and 30 days, from labels already
    known: a label is recorded when it arrives, so no future label ever leaks into a score (a day
    is a calendar day in UTC: the windows slide a day at a time)."""

    labelled: BucketedWindow = field(default_factory=lambda: BucketedWindow(DAY, 30 * DAY))
    frauds: BucketedWindow = field(default_factory=lambda: BucketedWindow(DAY, 30 * DAY))

    def features(self, txn: dict[str, Any], at: float) -> Features:
        features = super().features(txn, at)
        for days in (1, 7, 30):
            labelled = self.labelled.count(at, days * DAY)
            frauds = self.frauds.count(at, days * DAY)
            features[f"{self.PREFIX}_fraud_rate_{days}d"] = frauds / labelled if labelled else 0.0
            features[f"{self.PREFIX}_frauds_{days}d"] = frauds
        return features

    def record_label(self, is_fraud: bool, at: float) -> None:
        """A label became known at ``at`` for a transaction of this entity."""
        self.labelled.add(at, 1.0)
        if is_fraud:
            self.frauds.add(at, 1.0)


@dataclass
class TerminalState(LabelledActivityState):
    """A terminal's recent activity (card testing) and confirmed-fraud rate (a compromised terminal)."""

    PREFIX: ClassVar[str] = "terminal"


@dataclass
class MerchantState(LabelledActivityState):
    """A merchant's activity over all its terminals and its confirmed-fraud rate."""

    PREFIX: ClassVar[str] = "merchant"


@dataclass
class DeviceState(ActivityState):
    """A device's recent activity: a bot tries many cards from one device."""

    PREFIX: ClassVar[str] = "device"


@dataclass
class CustomerState:
    """A customer's (account's) activity across all their cards and devices."""

    window: BucketedWindow = field(default_factory=lambda: BucketedWindow(HOUR, DAY))
    month: BucketedWindow = field(default_factory=lambda: BucketedWindow(DAY, 30 * DAY))
    devices: dict[str, float] = field(default_factory=dict)
    cards: dict[str, float] = field(default_factory=dict)
    count: int = 0
    recent_ids: list[str] = field(default_factory=list)

    MAX_DEVICES: ClassVar[int] = 16
    MAX_CARDS: ClassVar[int] = 8
    MAX_RECENT_IDS: ClassVar[int] = 32

    def has_seen(self, transaction_id: str) -> bool:
        return transaction_id in self.recent_ids

    def features(self, txn: dict[str, Any], at: float) -> Features:
        count_24h, amount_24h = self.window.totals(at, DAY)
        count_7d, amount_7d = self.month.totals(at, 7 * DAY)
        count_30d, amount_30d = self.month.totals(at, 30 * DAY)
        mean_30d = _mean(amount_30d, count_30d)
        device = txn.get("device_id")
        devices_7d = sum(1 for seen in self.devices.values() if at - seen <= 7 * DAY)
        return {
            "customer_count_24h": count_24h,
            "customer_amount_24h": amount_24h,
            "customer_count_7d": count_7d,
            "customer_devices_7d": float(devices_7d),
            "customer_is_new_device": float(
                device is not None and self.count > 0 and device not in self.devices
            ),
            "customer_cards": float(len(self.cards)),
            "customer_count_30d": count_30d,
            "customer_mean_amount_24h": _mean(amount_24h, count_24h),
            "customer_mean_amount_7d": _mean(amount_7d, count_7d),
            "customer_mean_amount_30d": mean_30d,
            "customer_amount_to_mean_30d": min(float(txn["amount"]) / mean_30d, 1000.0) if mean_30d else 1.0,
        }

    def update(self, txn: dict[str, Any], at: float) -> None:
        self.window.add(at, float(txn["amount"]))
        self.month.add(at, float(txn["amount"]))
        self.count += 1
        if txn.get("device_id"):
            _remember(self.devices, txn["device_id"], at, self.MAX_DEVICES)
        _remember(self.cards, txn["card_token"], at, self.MAX_CARDS)
        self.recent_ids.append(txn["transaction_id"])
        del self.recent_ids[: -self.MAX_RECENT_IDS]


EntityState = CardState | ActivityState | CustomerState
