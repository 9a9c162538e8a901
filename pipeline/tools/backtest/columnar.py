"""Mapping a whole file at once, column by column (``map_frame``), with the row mapper's results.

Each field is computed for a whole column: through the row mapper's own steps (``Converter.get``,
``id_of``, ``parse_amount``, ``parse_flag``, the time reader), once per distinct value where values
repeat, and checked against the contract's schema for that field alone (the transaction schema
is the conjunction of its properties' schemas and one rule across channel, device and IP, checked
apart). A row is mapped here only when every one of its fields maps and passes; any other row
(a refusal, an unusual value, a CSV row that does not line up with its header) goes to the row
mapper (``map_row``, the one ``transactions`` uses) in file order, which gives its refusal reason.
So a file maps to the same transactions, refusals (reason, count, example rows, the refused-rows
file) and ``Observed`` counts as row by row (a property test compares them); the transaction
dicts are built at the end, one dict display per row, with their event times as seconds
(``MappedFrame.at``: what ``event_seconds`` gives)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import numpy as np

from pipeline.config import FRAUD_TYPES
from pipeline.contracts.json_schemas import validator
from pipeline.detection.features import event_seconds
from pipeline.detection.vocabulary import parse_timestamp
from pipeline.tools.backtest.convert import _CODES, Converter, Observed, id_of
from pipeline.tools.backtest.encoded import (
    FAIL,
    Enc,
    guard,
    joined_text,
    pairs,
    plain_ids,
    plain_text,
    plain_tokens,
    present,
)
from pipeline.tools.backtest.fieldschema import ACROSS, all_match, valid_for
from pipeline.tools.backtest.formats import parse_amount, parse_flag, text_of
from pipeline.tools.backtest.frame import Frame
from pipeline.tools.backtest.input import as_mapping, map_row
from pipeline.tools.backtest.mapped import MappedFrame, count_observed, transaction
from pipeline.tools.backtest.mapping import ColumnMapping
from pipeline.tools.backtest.refusals import Refusals, Refused

_CONTRACT_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
"""An event time as the contract writes it (ASCII digits, hours, minutes and seconds in range):
the row mapper keeps it as written, and when Python reads it the schema's date-time accepts it."""
_CONTRACT_TIMES = re.compile(f"(?:{_CONTRACT_TIME.pattern}\n)*")
_WITH_OFFSET = "ISO 8601 with offset"


class _Columns:
    """Every field of a frame as an encoded column; ``bad`` marks the rows left to the row mapper,
    ``notes`` what the row mapper would count in ``Observed`` for each row, in its order."""

    def __init__(self, frame: Frame, converter: Converter) -> None:
        self.frame, self.converter = frame, converter
        self.count = frame.count
        self.bad = np.zeros(self.count, dtype=bool)
        if frame.irregular:
            self.bad[list(frame.irregular)] = True
        self.notes: list[tuple[Counter[str], str, np.ndarray]] = []

    # --- helpers --------------------------------------------------------------------------------
    def fail(self, mask: np.ndarray | None) -> None:
        if mask is not None:
            self.bad |= mask

    def take(self, enc: Enc) -> Enc:
        """``enc``, its ``FAIL`` rows marked bad."""
        self.fail(enc.failed())
        return enc

    def note(self, counter: Counter[str], key: str, mask: np.ndarray) -> None:
        self.notes.append((counter, key, mask))

    def got(self, name: str) -> Enc:
        """What ``Converter.get`` reads for field ``name`` in each row (``FAIL`` where it fails)."""
        get, columns = self.converter.get, self.converter.columns[name]
        if len(columns) == 1:
            column = columns[0]
            enc = Enc.of_frame(self.frame, column)
            if name not in self.converter.mapping.values and plain_text(enc.values):
                return enc  # get() gives text without surrounding space, or None, as it is
            return self.take(enc.map(lambda value: guard(lambda v: get({column: v}, name), value)))
        pair = pairs(*(Enc.of_frame(self.frame, column) for column in columns))
        return self.take(
            pair.map(lambda p: guard(lambda v: get(dict(zip(columns, v, strict=True)), name), p))
        )

    def ids(self, name: str, enc: Enc) -> Enc:
        """The values (None: none) as ids of the contract, as ``Converter._id`` maps them."""
        present = [value for value in enc.values if value is not None and value is not FAIL]
        if plain_ids(present) or not present:
            return enc
        tokeniser = self.converter.tokeniser

        def step(value: Any) -> Any:
            if value is None or value is FAIL:
                return (value, None)
            return id_of(value if value.__class__ is str else text_of(value), tokeniser)

        pairs = enc.map(step)
        for kind in ("ids_mapped", "tokenised"):
            if any(item[1] == kind for item in pairs.values):
                self.note(
                    getattr(self.converter.observed, kind), name, pairs.flags(lambda p, k=kind: p[1] == k)
                )
        return pairs.map(lambda p: p[0])

    def defaulted(self, name: str, enc: Enc) -> Enc:
        """The values, the mapping's default where there is none (counted as the row mapper does)."""
        if None in enc.values:
            self.note(self.converter.observed.defaults, name, enc.flags(lambda value: value is None))
            default = self.converter.defaults[name]
            return enc.map(lambda value: default if value is None else value)
        return enc

    def checked(self, name: str, enc: Enc) -> Enc:
        """``enc``, the rows whose value the schema's ``name`` refuses marked bad."""
        if all_match(name, enc.values):
            return enc
        valid = valid_for(name)
        if not all(valid(value) for value in enc.values):
            self.fail(enc.flags(lambda value: not valid(value)))
        return enc

    def read(self, name: str, step: Callable[[Any], Any], default: bool = True) -> Enc:
        """``step`` of each row's value (or the mapping's default), ``FAIL`` rows marked bad."""
        enc = self.got(name)
        if default:
            enc = self.defaulted(name, enc)
        return self.take(enc.map(lambda value: guard(step, value)))

    # --- the fields, in the order the row mapper reads them ---------------------------------------
    def transaction_ids(self) -> Enc:
        converter = self.converter
        if not self.frame.has(converter.columns["transaction_id"][0]):  # the rows are numbered
            self.note(converter.observed.defaults, "transaction_id", np.ones(self.count, dtype=bool))
            numbers = Enc([f"row-{number}" for number in range(1, self.count + 1)], np.arange(self.count))
            return self.ids("transaction_id", numbers)
        if "transaction_id" not in converter.mapping.values:
            raw = Enc.of_frame(self.frame, converter.columns["transaction_id"][0])
            if plain_ids(raw.values):  # read and kept as they are: ids of the contract already
                return raw
        return self.ids("transaction_id", self.take(self.got("transaction_id").map(present)))

    def event_times(self) -> tuple[Enc, Enc]:
        reader, joined = self.converter.time, len(self.converter.columns["event_time"]) == 2
        contract = not joined and reader.fmt is None and reader.unit in ("auto", "iso")
        valid = valid_for("event_time")
        got = None
        if contract and "event_time" not in self.converter.mapping.values:
            got = Enc.of_frame(self.frame, self.converter.columns["event_time"][0])  # get() keeps these
        if got is None or not _CONTRACT_TIMES.fullmatch((joined_text(got.values) or "x") + "\n"):
            got = self.take(self.got("event_time").map(present))
        if contract and _CONTRACT_TIMES.fullmatch((joined_text(got.values) or "x") + "\n"):
            try:  # every time as the contract writes it: kept as it is (the common case)
                seconds = [datetime.fromisoformat(value).timestamp() for value in got.values]
            except ValueError:
                pass
            else:
                self.note(self.converter.observed.time_formats, _WITH_OFFSET, np.ones(self.count, dtype=bool))
                return got, Enc(seconds, got.codes)

        def step(value: Any) -> Any:
            if value is FAIL:
                return FAIL
            if contract and value.__class__ is str and _CONTRACT_TIME.fullmatch(value):
                return value, _WITH_OFFSET, datetime.fromisoformat(value).timestamp()
            text, kind = reader.read(value, joined=joined)
            return (text, kind, parse_timestamp(text)) if valid(text) else FAIL

        read = self.take(got.map(lambda value: guard(step, value)))
        read = read.map(lambda item: ("", "", 0.0) if item is FAIL else item)
        for kind in dict.fromkeys(kind for _, kind, _ in read.values):
            if kind:
                self.note(
                    self.converter.observed.time_formats, kind, read.flags(lambda item, k=kind: item[1] == k)
                )
        return read.map(lambda item: item[0]), read.map(lambda item: item[2])

    def cards_and_customers(self) -> tuple[Enc, Enc]:
        observed, tokeniser = self.converter.observed, self.converter.tokeniser
        pair = pairs(self.got("card_token"), self.got("customer_id"))

        def token(value: Any) -> Any:
            card, customer = value
            source = card if card is not None else customer
            if source is None or source is FAIL or customer is FAIL:
                return FAIL
            return tokeniser.token(source if source.__class__ is str else text_of(source))

        sources = [card if card is not None else customer for card, customer in pair.values]
        if plain_tokens(sources):  # every card is a token already (and every row has a card)
            tokens = pair.map(lambda value: (value[0] if value[0] is not None else value[1], False))
        else:
            tokens = self.take(pair.map(lambda value: guard(token, value)))
        tokens = tokens.map(lambda item: ("tok_none", False) if item is FAIL else item)
        if any(known for _, known in tokens.values):
            self.note(observed.tokenised, "card_token", tokens.flags(lambda item: item[1]))
        if any(card is None for card, _ in pair.values):
            self.note(observed.defaults, "card_token", pair.flags(lambda value: value[0] is None))
        if any(customer is None for _, customer in pair.values):
            self.note(observed.defaults, "customer_id", pair.flags(lambda value: value[1] is None))
        customers = self.ids("customer_id", pair.map(lambda value: value[1]))
        ids = Enc(
            [
                token if customer is None else mine
                for (token, _), customer, mine in zip(
                    tokens.values, (v[1] for v in pair.values), customers.values, strict=True
                )
            ],
            pair.codes,
        )
        return self.checked("card_token", tokens.map(lambda item: item[0])), self.checked("customer_id", ids)

    def merchants_and_terminals(self) -> tuple[Enc, Enc]:
        defaults = self.converter.observed.defaults
        pair = pairs(self.got("merchant_id"), self.got("terminal_id"))
        if any(merchant is None for merchant, _ in pair.values):
            self.note(defaults, "merchant_id", pair.flags(lambda value: value[0] is None))
        if any(terminal is None for _, terminal in pair.values):
            self.note(defaults, "terminal_id", pair.flags(lambda value: value[1] is None))
        merchants = self.ids("merchant_id", pair.map(lambda v: v[0] if v[0] is not None else v[1]))
        terminals = self.ids("terminal_id", pair.map(lambda v: v[1] if v[1] is not None else v[0]))
        return (
            self.checked("merchant_id", merchants.map(lambda m: "unknown" if m is None else m)),
            self.checked("terminal_id", terminals.map(lambda t: "unknown" if t is None else t)),
        )

    def code(self, name: str) -> Enc:
        style = _CODES[name]

        def step(raw: Any) -> Any:
            text = style(text_of(raw))
            return text.zfill(4) if name == "merchant_category" and text.isdigit() else text

        return self.checked(name, self.read(name, step))


def _amount(decimal: str) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if value is None or value is FAIL:
            return FAIL
        amount = parse_amount(value, decimal)
        return amount if 0 <= amount <= 1_000_000 else FAIL  # the schema's minimum and maximum

    return read


def _label(mapping: ColumnMapping) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if value is None or value is FAIL:
            return FAIL
        return parse_flag(value, mapping.fraud_labels, mapping.legit_labels)

    return read


def _optional(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else read(value)


def _columns(
    frame: Frame, converter: Converter
) -> tuple[_Columns, list[dict[str, Any]], list[float], list[Any], list[Any]]:
    """The columns, the transactions of every row (meaningful where not ``bad``), their times in
    seconds, labels and fraud types."""
    cols = _Columns(frame, converter)
    mapping = converter.mapping
    ids = cols.transaction_ids()
    times, at = cols.event_times()
    cards, customers = cols.cards_and_customers()
    merchants, terminals = cols.merchants_and_terminals()
    codes = [cols.code(name) for name in _CODES]
    got = pairs(cols.got("card_country"), codes[3])
    if any(value is None for value, _ in got.values):
        cols.note(converter.observed.defaults, "card_country", got.flags(lambda pair: pair[0] is None))
    card_country = cols.checked(
        "card_country",
        cols.take(
            got.map(lambda pair: pair[1] if pair[0] is None else guard(lambda v: text_of(v).upper(), pair[0]))
        ),
    )
    amounts = cols.read("amount", _amount(mapping.decimal), default=False)
    ages = cols.checked("account_age_days", cols.read("account_age_days", lambda v: int(float(v))))
    devices = cols.checked(
        "device_id", cols.ids("device_id", cols.defaulted("device_id", cols.got("device_id")))
    )
    ips = cols.checked("ip_address", cols.read("ip_address", _optional(text_of)))
    hours = cols.checked(
        "hours_since_contact_change", cols.read("hours_since_contact_change", _optional(float))
    )
    shipping = cols.checked(
        "shipping_matches_billing", cols.read("shipping_matches_billing", _optional(parse_flag))
    )
    frauds = cols.read("is_fraud", _label(mapping), default=False)
    default_kind = converter.defaults.get("fraud_type")

    def named(kind: Any) -> Any:
        kind = kind if kind is not None else default_kind
        return None if kind is None else text_of(kind).lower().replace(" ", "_")

    kinds = cols.got("fraud_type").map(lambda value: guard(named, value))
    fraud_types = pairs(frauds, kinds).map(lambda p: p[1] if p[0] is True and p[1] in FRAUD_TYPES else None)
    # the rule across fields (a digital channel needs a device and an IP), once per combination
    across = pairs(pairs(codes[2], devices), ips).map(
        lambda p: guard(ACROSS, {"channel": p[0][0], "device_id": p[0][1], "ip_address": p[1]})
    )
    cols.take(across)
    columns = (ids, times, cards, customers, merchants, terminals, *codes, card_country, amounts, ages)
    rows = [enc.rows() for enc in (*columns, devices, ips, hours, shipping)]
    txns = list(map(transaction, *rows))
    return cols, txns, at.rows(), frauds.rows(), fraud_types.rows()


def map_frame(
    frame: Frame,
    mapping: ColumnMapping | Mapping[str, str] | None = None,
    refusals: Refusals | None = None,
    *,
    token_key: bytes | None = None,
    observed: Observed | None = None,
) -> MappedFrame:
    """What ``transactions`` (input.py) gives for the frame's rows, mapped column by column:
    the same transactions in the same order, the same refusals in ``refusals`` and the same counts
    in ``observed``; with each transaction's event time in seconds."""
    converter = Converter(as_mapping(mapping), token_key, observed)
    refusals = refusals if refusals is not None else Refusals()
    out = MappedFrame()
    if not frame.count:
        return out
    converter.check_columns(frame.row(0))
    cols, txns, at, frauds, fraud_types = _columns(frame, converter)
    refusals.rows += frame.count
    check = validator("transaction")
    seen: set[str] = set()
    kept = np.zeros(frame.count, dtype=bool)
    slow: list[tuple[int, int, Counter[str], str]] = []
    start = 0
    for end in [*np.flatnonzero(cols.bad).tolist(), frame.count]:
        ids = [txn["transaction_id"] for txn in txns[start:end]]
        if seen.isdisjoint(ids) and len(set(ids)) == len(ids):  # a run of rows mapped as columns
            seen.update(ids)
            kept[start:end] = True
            out.txns += txns[start:end]
            out.is_fraud += frauds[start:end]
            out.fraud_types += fraud_types[start:end]
            out.at += at[start:end]
        else:
            for index in range(start, end):
                if txns[index]["transaction_id"] in seen:
                    refusals.add(index + 1, Refused("transaction_id duplicate"), frame.row(index))
                    continue
                seen.add(txns[index]["transaction_id"])
                kept[index] = True
                out.add(txns[index], frauds[index], fraud_types[index], at[index])
        if end == frame.count:
            break
        row = frame.row(end)  # a row left to the row mapper
        mapped = map_row(converter, check, seen, refusals, row, end + 1)
        if mapped is not None:
            slow.extend((end, order, counter, key) for order, (counter, key) in enumerate(converter.noted()))
            out.add(*mapped, event_seconds(mapped[0]))
        start = end + 1
    count_observed(cols.notes, kept, slow)
    return out
