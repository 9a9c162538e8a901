"""Mapping one row of a foreign file to the transaction contract: the ``Converter`` reads each field
from its column(s) with the formats of formats.py, maps free-form ids, tokenises card numbers,
fills defaults, and raises Refused with the reason class when a row cannot be mapped; ``Observed``
counts what it found (time formats, ids mapped, card numbers tokenised, defaults used)."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import FRAUD_TYPES
from pipeline.contracts.validation import find_card_numbers
from pipeline.tools.backtest.formats import (
    ID_PATTERN,
    CardTokeniser,
    TimeReader,
    may_hold_card_number,
    parse_amount,
    parse_flag,
    stable_id,
    text_of,
    zone,
)
from pipeline.tools.backtest.mapping import FIELDS, REQUIRED, ColumnMapping
from pipeline.tools.backtest.refusals import BacktestError, Refused

Mapped = tuple[dict[str, Any], bool, str | None]
"""(transaction per the contract, is fraud, fraud type or None)"""

_ID_FIELDS = ("transaction_id", "customer_id", "merchant_id", "terminal_id", "device_id")
_CODES = {"merchant_category": str, "currency": str.upper, "channel": str.lower, "country": str.upper}


@dataclass
class Observed:
    """What a run found: the time formats read, per field the values mapped to the id form or
    tokenised as card numbers, and the defaults used (rows per field)."""

    time_formats: Counter[str] = field(default_factory=Counter)
    ids_mapped: Counter[str] = field(default_factory=Counter)
    tokenised: Counter[str] = field(default_factory=Counter)
    defaults: Counter[str] = field(default_factory=Counter)
    random_key: bool = False


def _empty(value: Any) -> bool:
    return (
        value is None
        or value == ""
        or (isinstance(value, float) and value != value)
        or (isinstance(value, str) and not value.strip())
    )


def id_of(text: str, tokeniser: CardTokeniser) -> tuple[str, str | None]:
    """``text`` as an id of the contract and what was done to it: (itself, None), (its
    ``<slug>.<hash>`` form, ``"ids_mapped"``) or (the token of the card number it holds,
    ``"tokenised"``); the second names the ``Observed`` counter that counts it."""
    if may_hold_card_number(text) and find_card_numbers(text.encode()):
        return tokeniser.keyed(text), "tokenised"
    if ID_PATTERN.fullmatch(text):
        return text, None
    return stable_id(text), "ids_mapped"


def card_columns(mapping: ColumnMapping) -> frozenset[str]:
    """Columns whose values become card tokens (the card's, and the customer's it may stand for)."""
    return frozenset((*mapping.column("card_token"), *mapping.column("customer_id")))


class Converter:
    """Maps one row at a time (``convert``); raises Refused with the reason class."""

    def __init__(
        self, mapping: ColumnMapping, token_key: bytes | None = None, observed: Observed | None = None
    ) -> None:
        self.mapping = mapping
        self.observed = observed if observed is not None else Observed()
        if token_key is None:
            token_key = secrets.token_bytes(32)
            self.observed.random_key = True
        self.tokeniser = CardTokeniser(token_key)
        self.time = TimeReader(zone(mapping.timezone), mapping.time_unit, mapping.time_format)
        self.columns = {name: mapping.column(name) for name in FIELDS}
        self._single = {name: columns[0] for name, columns in self.columns.items() if len(columns) == 1}
        self.defaults = mapping.defaults
        self._ids: dict[str, dict[str, tuple[str, Counter[str] | None]]] = {name: {} for name in _ID_FIELDS}
        self._cards: dict[str, tuple[str, bool]] = {}
        self._notes: list[tuple[Counter[str], str]] = []  # this row's observations, until it is kept

    def check_columns(self, row: Mapping[str, Any]) -> None:
        """Fail at once, naming the columns, when the first row lacks an explicitly mapped column or
        a required field, or has neither a card nor a customer column."""
        have = set(row)
        missing = [
            f"{column} ({name})"
            for name, columns in self.mapping.columns.items()
            for column in columns
            if column not in have
        ]
        missing += [
            f"{name} (map it: --map {name}=COLUMN)"
            for name in REQUIRED
            if name not in self.mapping.columns and name not in have
        ]
        if not have & card_columns(self.mapping):
            missing.append("card_token or customer_id (map one: --map card_token=COLUMN)")
        if missing:
            shown = ", ".join(str(name) for name in list(row)[:40])
            raise BacktestError(f"no column {'; '.join(missing)} in the file; its columns: {shown}")

    def get(self, row: Mapping[str, Any], name: str) -> Any:
        """The value of field ``name`` in ``row`` after the mapping's value translation; None if empty."""
        column = self._single.get(name)
        if column is not None:
            value = row.get(column)
        else:
            parts = [row.get(column) for column in self.columns[name]]
            value = None if any(_empty(part) for part in parts) else " ".join(map(text_of, parts))
        if value is None or value == "":
            return None
        if value.__class__ is str:
            if value[0].isspace() or value[-1].isspace():
                value = value.strip()
                if not value:
                    return None
        elif value.__class__ is float and value != value:  # NaN: a missing value in Parquet
            return None
        table = self.mapping.values.get(name)
        if table is not None:
            value = table.get(text_of(value), table.get("*", value))
            if _empty(value):
                return None
        return value

    def _id(self, name: str, value: Any) -> str:
        """The value as an id of the contract: itself, its ``<slug>.<hash>`` form, or the token of
        the card number it holds; counted per field in ``observed``."""
        text = value if value.__class__ is str else text_of(value)
        cache = self._ids[name]
        known = cache.get(text)
        if known is None:
            mapped, kind = id_of(text, self.tokeniser)
            known = (mapped, getattr(self.observed, kind) if kind else None)
            if name != "transaction_id":  # the others repeat: keep what they map to
                if len(cache) >= 1 << 17:
                    cache.clear()
                cache[text] = known
        if known[1] is not None:
            self._notes.append((known[1], name))
        return known[0]

    def _card(self, value: Any) -> str:
        """The card token of a card (or customer) value; card numbers counted in ``observed``."""
        text = value if value.__class__ is str else text_of(value)
        known = self._cards.get(text)
        if known is None:
            if len(self._cards) >= 1 << 17:
                self._cards.clear()
            known = self._cards[text] = self.tokeniser.token(text)
        if known[1]:
            self._notes.append((self.observed.tokenised, "card_token"))
        return known[0]

    def _default(self, name: str) -> Any:
        self._notes.append((self.observed.defaults, name))
        return self.defaults[name]

    def noted(self) -> list[tuple[Counter[str], str]]:
        """The last row's observations, uncounted, in the order they were made (and forgotten)."""
        notes = list(self._notes)
        self._notes.clear()
        return notes

    def commit(self) -> None:
        """Count the last row's observations (ids mapped, defaults, ...): it was kept."""
        for counter, name in self._notes:
            counter[name] += 1
        self._notes.clear()

    def convert(self, row: Mapping[str, Any], number: int) -> Mapped:
        """The row as (transaction, is fraud, fraud type); raises Refused. What it observed is
        counted by ``commit``, once the row is kept."""
        self._notes.clear()
        get = self.get
        txn: dict[str, Any] = {"schema_version": 1}
        raw = get(row, "transaction_id")
        if raw is None:
            if self.columns["transaction_id"][0] in row:
                raise Refused("transaction_id missing")
            self._notes.append((self.observed.defaults, "transaction_id"))
            raw = f"row-{number}"
        txn["transaction_id"] = self._id("transaction_id", raw)

        raw = get(row, "event_time")
        if raw is None:
            raise Refused("event_time missing")
        try:
            txn["event_time"], kind = self.time.read(raw, joined=len(self.columns["event_time"]) == 2)
        except (ValueError, TypeError, OverflowError, OSError) as exc:
            raise Refused("event_time unreadable", str(exc)) from None
        self._notes.append((self.observed.time_formats, kind))

        card, customer = get(row, "card_token"), get(row, "customer_id")
        if card is None and customer is None:
            raise Refused("card_token missing", "neither a card nor a customer")
        token = self._card(card if card is not None else customer)
        if card is None:
            self._notes.append((self.observed.defaults, "card_token"))
        txn["card_token"] = token
        if customer is None:
            self._notes.append((self.observed.defaults, "customer_id"))
            txn["customer_id"] = token
        else:
            txn["customer_id"] = self._id("customer_id", customer)
        merchant, terminal = get(row, "merchant_id"), get(row, "terminal_id")
        if merchant is None:
            self._notes.append((self.observed.defaults, "merchant_id"))
        if terminal is None:
            self._notes.append((self.observed.defaults, "terminal_id"))
        merchant, terminal = (
            merchant if merchant is not None else terminal,
            terminal if terminal is not None else merchant,
        )
        txn["merchant_id"] = self._id("merchant_id", merchant) if merchant is not None else "unknown"
        txn["terminal_id"] = self._id("terminal_id", terminal) if terminal is not None else "unknown"

        for name, style in _CODES.items():
            raw = get(row, name)
            text = style(text_of(raw if raw is not None else self._default(name)))
            txn[name] = text.zfill(4) if name == "merchant_category" and text.isdigit() else text
        raw = get(row, "card_country")
        if raw is None:
            self._notes.append((self.observed.defaults, "card_country"))
        txn["card_country"] = text_of(raw).upper() if raw is not None else txn["country"]

        raw = get(row, "amount")
        if raw is None:
            raise Refused("amount missing")
        try:
            txn["amount"] = parse_amount(raw, self.mapping.decimal)
        except ValueError as exc:
            raise Refused("amount unreadable", str(exc)) from None
        self._optional(row, txn)

        raw = get(row, "is_fraud")
        if raw is None:
            raise Refused("is_fraud missing")
        try:
            is_fraud = parse_flag(raw, self.mapping.fraud_labels, self.mapping.legit_labels)
        except ValueError as exc:
            raise Refused("is_fraud unreadable", str(exc)) from None
        kind = get(row, "fraud_type")
        if kind is None:
            kind = self.defaults.get("fraud_type")
        fraud_type = text_of(kind).lower().replace(" ", "_") if kind is not None else None
        return txn, is_fraud, fraud_type if is_fraud and fraud_type in FRAUD_TYPES else None

    def _optional(self, row: Mapping[str, Any], txn: dict[str, Any]) -> None:
        """account_age_days, device_id, ip_address, hours_since_contact_change, shipping_matches_billing."""
        get = self.get
        raw = get(row, "account_age_days")
        try:
            txn["account_age_days"] = int(
                float(raw if raw is not None else self._default("account_age_days"))
            )
        except (ValueError, TypeError, OverflowError):
            raise Refused("account_age_days unreadable") from None
        raw = get(row, "device_id")
        raw = raw if raw is not None else self._default("device_id")
        txn["device_id"] = None if raw is None else self._id("device_id", raw)
        raw = get(row, "ip_address")
        raw = raw if raw is not None else self._default("ip_address")
        txn["ip_address"] = None if raw is None else text_of(raw)
        raw = get(row, "hours_since_contact_change")
        raw = raw if raw is not None else self._default("hours_since_contact_change")
        try:
            txn["hours_since_contact_change"] = None if raw is None else float(raw)
        except (ValueError, TypeError):
            raise Refused("hours_since_contact_change unreadable") from None
        raw = get(row, "shipping_matches_billing")
        raw = raw if raw is not None else self._default("shipping_matches_billing")
        try:
            txn["shipping_matches_billing"] = None if raw is None else parse_flag(raw)
        except ValueError:
            raise Refused("shipping_matches_billing unreadable") from None
