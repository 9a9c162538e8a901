"""Plain-language names of the features and factors that explain a score: "5.2x this card's 30-day
mean amount", "terminal had 3 confirmed frauds in 7 days". Used by an alert's explanation
(pipeline/detection/explanations.py) and by the model's reason line of a decision
(pipeline/detection/engine.py). Pure: no Kafka, no web, no settings.

The names are built from fixed phrases and numbers formatted with thousands separators, never from
the transaction's text fields, so no identifier or card number can reach them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from pipeline.detection.features import CHANNELS
from pipeline.detection.vocabulary import Features

GROUPS: dict[str, tuple[str, ...]] = {
    "amount": ("amount", "log_amount", "amount_to_card_mean", "amount_zscore", "is_small_amount"),
    "time_of_day": ("hour_sin", "hour_cos"),
    "channel": ("is_digital", *(f"channel_{channel}" for channel in CHANNELS)),
    "seconds_since_prev": ("log_seconds_since_prev",),
    "account_age_days": ("log_account_age_days",),
}
"""Factors made of other features than their own name (the others are one feature each); a factor
of a logarithm is valued in the feature's own unit."""
GROUP_OF = {feature: group for group, features in GROUPS.items() for feature in features}


def factor_value(factor: str, features: Features) -> float:
    """A factor's value: its feature's, the amount's for the amount, the hour (UTC) for the time of
    day, 1 for the channel, seconds and days for the logarithms of them."""
    if factor == "time_of_day":
        angle = math.atan2(features.get("hour_sin", 0.0), features.get("hour_cos", 1.0))
        return (angle * 24 / (2 * math.pi)) % 24
    if factor == "channel":
        return 1.0
    if factor in ("seconds_since_prev", "account_age_days"):
        return math.expm1(min(features.get(GROUPS[factor][0], 0.0), 700.0))
    return float(features.get(factor, 0.0))


Described = tuple[str, float | None]
"""(plain-language name, typical value or None)"""

_WHO = {
    "card": "by this card",
    "customer": "by this customer",
    "terminal": "at this terminal",
    "merchant": "at this merchant",
    "device": "from this device",
}
_WINDOW = {
    "10m": "in 10 minutes",
    "1h": "in the last hour",
    "24h": "in 24 hours",
    "1d": "in the last day",
    "7d": "in 7 days",
    "30d": "in 30 days",
}
_DAYS = {"1h": 1 / 24, "24h": 1.0, "1d": 1.0, "7d": 7.0, "30d": 30.0}
_CHANNEL_WORDS = {
    "card_present": "card present at a terminal",
    "contactless": "contactless payment",
    "ecommerce": "online payment (e-commerce)",
    "mobile_app": "payment in a mobile app",
    "atm": "cash at an ATM",
}
_FLAGS: dict[str, tuple[str, str]] = {
    "is_new_country": ("first payment of this card in this country", "a country this card has paid in"),
    "is_new_merchant": ("first payment of this card at this merchant", "a merchant this card has paid"),
    "is_new_device": ("first payment of this card from this device", "a device this card has used"),
    "customer_is_new_device": ("a device new to this customer's account", "a device this customer has used"),
    "is_foreign": ("card issued in another country than the payment's",
                   "card issued in the payment's country"),
    "is_night": ("at night in the payment's country", "in the daytime in the payment's country"),
    "is_weekend": ("at the weekend", "on a weekday"),
    "contact_changed_24h": ("contact details changed in the last 24 hours",
                            "contact details not changed in 24 hours"),
    "contact_changed_7d": ("contact details changed in the last 7 days",
                           "contact details not changed in 7 days"),
    "shipping_mismatch": ("shipping address differs from billing", "shipping address matches billing"),
}  # fmt: skip


def describe(factor: str, value: float, features: Features) -> Described:
    """The plain-language name of a factor with ``value``, and the typical value its features tell."""
    special = _SPECIAL.get(factor)
    if special is not None:
        return special(value, features)
    if factor in _FLAGS:
        yes, no = _FLAGS[factor]
        return (yes if value >= 0.5 else no), None
    entity, _, rest = factor.partition("_")
    if entity in _WHO:
        described = _entity_window(entity, rest, value, features)
        if described is not None:
            return described
    return f"{factor.replace('_', ' ')}: {value:,.4g}", None


def _entity_window(entity: str, rest: str, value: float, f: Features) -> Described | None:
    """Counts, amounts, means, cards and frauds of an entity over a window."""
    what, _, window = rest.rpartition("_")
    if window not in _WINDOW:
        return None
    who, during = _WHO[entity], _WINDOW[window]
    if what == "count":
        typical, pace = _pace(entity, "count", window, f)
        return _usually(f"{_count(value, 'payment')} {who} {during}", typical, _number, pace), typical
    if what == "amount":
        typical, pace = _pace(entity, "amount", window, f)
        return _usually(f"{_money(value)} spent {who} {during}", typical, _money, pace), typical
    if what == "mean_amount":
        typical = _mean_30d(entity, f) if window != "30d" else None
        name = f"mean amount {_money(value)} {who} {during}"
        return _usually(name, typical, _money, "30-day mean"), typical
    if what == "amount_to_mean":  # customer_amount_to_mean_30d
        return f"{_times(value)} this {entity}'s 30-day mean amount", 1.0
    if what in ("distinct_cards", "small_amount_cards"):
        cards = _count(value, "distinct card" if what == "distinct_cards" else "card")
        small = "" if what == "distinct_cards" else " paying small amounts"
        verb = "was used by" if entity == "device" else "saw"
        return f"{entity} {verb} {cards}{small} {during}", None
    if what == "frauds":
        typical = _scaled_30d(f.get(f"{entity}_frauds_30d"), window)
        name = f"{entity} had {_count(value, 'confirmed fraud')} {during}"
        return _usually(name, typical, _number, "30-day pace"), typical
    if what == "fraud_rate":
        typical = f.get(f"{entity}_fraud_rate_30d") if window != "30d" else None
        name = f"{_percent(value)} of this {entity}'s labelled payments {during} were frauds"
        return _usually(name, typical, _percent, "30-day rate"), typical
    return None


def _pace(entity: str, what: str, window: str, f: Features) -> tuple[float | None, str]:
    """An entity's count or amount over ``window`` at the pace of its longest window: 30 days for a
    card or customer (when its features have the 30-day total), 24 hours for the others; and what
    that pace is called."""
    if entity in ("card", "customer"):
        total = f.get(f"{entity}_{what}_30d")
        if total is None and what == "amount":  # a customer's 30-day amount: mean times count
            count, mean = f.get(f"{entity}_count_30d"), f.get(f"{entity}_mean_amount_30d")
            total = None if count is None or mean is None else count * mean
        return _scaled_30d(total, window), "30-day pace"
    day = f.get(f"{entity}_{what}_24h") if window == "1h" else None
    return (None if day is None else day / 24), "24-hour pace"


def _scaled_30d(total: float | None, window: str) -> float | None:
    if total is None or window not in _DAYS or window == "30d":
        return None
    return total * _DAYS[window] / 30


def _mean_30d(entity: str, f: Features) -> float | None:
    if not f.get(f"{entity}_count_30d"):
        return None
    return f.get(f"{entity}_mean_amount_30d")


def _amount(value: float, f: Features) -> Described:
    mean = _mean_30d("card", f)
    if not mean:
        return f"amount {_money(value)}; no payment by this card in 30 days", None
    ratio = value / mean
    if ratio >= 1.05:
        return f"{_times(ratio)} this card's 30-day mean amount", mean
    if ratio <= 0.95:
        return f"amount {_money(value)} against this card's 30-day mean of {_money(mean)}", mean
    return f"amount {_money(value)}, about this card's 30-day mean", mean


def _since_previous(value: float, f: Features) -> Described:
    if not f.get("card_history_count", 1.0):
        return "first payment of this card", None
    count = f.get("card_count_30d")
    typical = 30 * 86_400 / count if count else None
    name = f"{_duration(value)} since this card's previous payment"
    return _usually(name, typical, _duration, "30-day mean gap"), typical


def _history(value: float, _f: Features) -> Described:
    if value < 1:
        return "no earlier payment by this card", None
    more = " or more" if value >= 1000 else ""
    return f"this card has {_count(value, 'earlier payment')}{more}", None


_SPECIAL: dict[str, Callable[[float, Features], Described]] = {
    "amount": _amount,
    "time_of_day": lambda value, _f: (f"paid at {int(value):02d}:{int(value % 1 * 60):02d} UTC", None),
    "channel": lambda _v, f: (
        next((_CHANNEL_WORDS[c] for c in CHANNELS if f.get(f"channel_{c}")), "the payment's channel"),
        None,
    ),
    "seconds_since_prev": _since_previous,
    "card_history_count": _history,
    "account_age_days": lambda value, _f: (f"account opened {_count(value, 'day')} ago", None),
    "customer_devices_7d": lambda value, _f: (f"customer used {_count(value, 'device')} in 7 days", None),
    "customer_cards": lambda value, _f: (f"customer has {_count(value, 'card')}", None),
}


# --- numbers in words ---------------------------------------------------------------------------------
_HUGE = 1e9
"""From here numbers are written in scientific notation: a name stays short whatever the value."""


def _count(value: float, noun: str) -> str:
    if abs(value) >= _HUGE:
        return f"{value:.3g} {noun}s"
    n = round(value)
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _number(value: float) -> str:
    if abs(value) >= _HUGE:
        return f"{value:.3g}"
    if abs(value) >= 10:
        return f"{value:,.0f}"
    return f"{value:.1f}".removesuffix(".0") if abs(value) >= 1 else f"{value:.2g}"


def _money(value: float) -> str:
    return f"{value:.3g}" if abs(value) >= _HUGE else f"{value:,.2f}"


def _percent(rate: float) -> str:
    return f"{rate * 100:.3g}%" if abs(rate) >= _HUGE else f"{rate:.0%}"


def _times(ratio: float) -> str:
    return f"{_number(ratio)}×" if abs(ratio) >= 100 else f"{ratio:.1f}×"


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{_number(seconds / 86_400)} days" if seconds >= 100 * 86_400 else f"{seconds / 86_400:.1f} days"


def _usually(name: str, typical: float | None, fmt: Callable[[float], str], what: str) -> str:
    """The name, with the typical value and what it is: "(30-day pace 0.7)"."""
    return name if typical is None else f"{name} ({what} {fmt(typical)})"


def plain_signals(names: list[str], features: Features) -> list[str]:
    """The plain-language names of a model's strongest features (a feature of a group, as the
    amount's log, named once as its group), in their order."""
    said: dict[str, str] = {}
    for name in names:
        factor = GROUP_OF.get(name, name)
        value = factor_value(factor, features)
        if factor not in said and math.isfinite(value):
            said[factor] = describe(factor, value, features)[0]
    return list(said.values())
