"""pipeline/tools/backtest input: foreign labelled files as they come (issue 21).

Times in every usual format, free-form ids, card numbers tokenised, labels and amounts as data sets
write them, refusals counted by reason, the mapping file and the dry run. Small files made here."""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import REPO_ROOT, Settings
from pipeline.contracts.json_schemas import validator
from pipeline.contracts.validation import find_card_numbers, luhn_valid, text_has_card_number
from pipeline.tools.backtest import (
    BacktestError,
    ColumnMapping,
    Observed,
    Refusals,
    Refused,
    RefusedWriter,
    build_mapping,
    card_columns,
    card_warnings,
    describe,
    load_mapping,
    normalise,
    preview,
    preview_lines,
    read_rows,
    transactions,
)
from pipeline.tools.backtest.formats import (
    CardTokeniser,
    TimeReader,
    parse_amount,
    parse_flag,
    parse_fraction,
    stable_id,
    unkeyed_token,
    zone,
)
from pipeline.tools.backtest.mapping import mapping_from

KEY = b"test-key-0123456789"
ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
TOKEN = re.compile(r"^tok_[A-Za-z0-9]{8,64}$")
MAPPINGS = REPO_ROOT / "docs" / "mappings"


def _pan(prefix: str) -> str:
    """A Luhn-valid 16-digit card number starting with ``prefix``."""
    body = prefix.ljust(15, "0")[:15]
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


PANS = [_pan("4111"), _pan("5500"), _pan("4012888")]


def _row(**overrides: Any) -> dict[str, Any]:
    """A foreign row with our field names, as strings (as a CSV reads)."""
    row = {
        "transaction_id": "t1",
        "event_time": "2024-03-01T10:00:00+00:00",
        "card_token": "tok_card0001abc",
        "amount": "12.5",
        "is_fraud": "0",
    }
    row.update(overrides)
    return row


def _map(
    rows: list[dict[str, Any]], mapping: ColumnMapping | None = None, **kwargs: Any
) -> tuple[list[tuple[dict[str, Any], bool, str | None]], Refusals, Observed]:
    refusals, observed = Refusals(), Observed()
    mapped = list(transactions(rows, mapping, refusals, token_key=KEY, observed=observed, **kwargs))
    return mapped, refusals, observed


def _write_csv(path: Path, rows: list[dict[str, Any]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


# --- (1) times --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected", "kind"),
    [
        ("2024-03-01T10:00:00+01:00", "2024-03-01T10:00:00+01:00", "ISO 8601 with offset"),
        ("2024-03-01T09:00:00Z", "2024-03-01T09:00:00Z", "ISO 8601 with offset"),  # kept as written
        ("2024-03-01T09:00:00.5+00:00", "2024-03-01T09:00:00.5+00:00", "ISO 8601 with offset"),
        ("2024-03-01 09:00:00+00:00", "2024-03-01T09:00:00+00:00", "ISO 8601 with offset"),
        ("2024-03-01t09:00:00z", "2024-03-01T09:00:00+00:00", "ISO 8601 with offset"),
        ("2024-03-01T10:00:00.250", "2024-03-01T10:00:00.250000+01:00", "ISO 8601 without offset"),
        ("2024-03-01 10:00:00", "2024-03-01T10:00:00+01:00", "YYYY-MM-DD HH:MM:SS"),
        ("2024-07-01 10:00:00", "2024-07-01T10:00:00+02:00", "YYYY-MM-DD HH:MM:SS"),  # summer time
        (1709283600, "2024-03-01T10:00:00+01:00", "epoch seconds"),
        ("1709283600", "2024-03-01T10:00:00+01:00", "epoch seconds"),
        ("1709283600.5", "2024-03-01T10:00:00.500000+01:00", "epoch seconds"),
        (1709283600123, "2024-03-01T10:00:00.123000+01:00", "epoch milliseconds"),
        ("1709283600123", "2024-03-01T10:00:00.123000+01:00", "epoch milliseconds"),
        (datetime(2024, 3, 1, 10), "2024-03-01T10:00:00+01:00", "datetime values"),
        (datetime(2024, 3, 1, 9, tzinfo=UTC), "2024-03-01T09:00:00+00:00", "datetime values"),
        ("20240301", "2024-03-01T00:00:00+01:00", "ISO 8601 without offset"),
    ],
)
def test_time_formats(value: Any, expected: str, kind: str) -> None:
    assert TimeReader(zone("Europe/Berlin")).read(value) == (expected, kind)


def test_epoch_unit_stated_in_the_mapping() -> None:
    assert TimeReader(UTC, "s").read("31") == ("1970-01-01T00:00:31+00:00", "epoch seconds")
    assert TimeReader(UTC, "ms").read("1709283600") == (
        "1970-01-20T18:48:03.600000+00:00",
        "epoch milliseconds",
    )
    with pytest.raises(ValueError, match="neither epoch seconds nor milliseconds"):
        TimeReader(UTC).read("31")  # too small to tell: say the unit


def test_strptime_format_and_fixed_offset() -> None:
    reader = TimeReader(zone("+05:30"), fmt="%d/%m/%Y %H:%M")
    assert reader.read("01/03/2024 10:00") == ("2024-03-01T10:00:00+05:30", "format %d/%m/%Y %H:%M")


def test_unknown_timezone_is_an_error() -> None:
    with pytest.raises(BacktestError, match="unknown timezone 'Mars/Olympus'"):
        build_mapping(timezone="Mars/Olympus")


def test_date_and_time_columns(tmp_path: Path) -> None:
    rows = [
        _row(trans_date="2024-03-01", trans_time="10:00:00"),
        _row(transaction_id="t2", trans_date="2024-03-02", trans_time="23:59:59"),
    ]
    for row in rows:
        del row["event_time"]
    mapping = build_mapping(pairs=["event_time=trans_date+trans_time"], timezone="America/New_York")
    mapped, _, observed = _map(rows, mapping)
    assert [txn["event_time"] for txn, _, _ in mapped] == [
        "2024-03-01T10:00:00-05:00",
        "2024-03-02T23:59:59-05:00",
    ]
    assert observed.time_formats == {"date + time columns": 2}
    lines = describe(mapping, observed)
    assert "event_time: date + time columns 2; naive times read in America/New_York" in lines
    # The same pair from a mapping file, as a list
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"columns": {"event_time": ["trans_date", "trans_time"]}}))
    assert load_mapping(path).columns["event_time"] == ("trans_date", "trans_time")


def test_times_of_every_format_in_one_file_are_all_valid_rfc3339() -> None:
    values = [
        "2024-03-01T10:00:00+01:00",
        "2024-03-01 10:00:00",
        1709283600,
        "1709283600123",
        "2024-03-01T10:00",
    ]
    rows = [_row(transaction_id=f"t{i}", event_time=value) for i, value in enumerate(values)]
    mapped, refusals, observed = _map(rows)
    assert refusals.refused == 0 and len(mapped) == len(values)
    assert sum(observed.time_formats.values()) == len(values)
    assert set(observed.time_formats) == {
        "ISO 8601 with offset",
        "YYYY-MM-DD HH:MM:SS",
        "epoch seconds",
        "epoch milliseconds",
        "ISO 8601 without offset",
    }


# --- (2) ids and card numbers -----------------------------------------------------------------
def test_stable_ids() -> None:
    assert stable_id("m-00042") == "m-00042"  # allowed: unchanged
    mapped = stable_id("fraud_Rippin, Kub and Mann")
    assert mapped.startswith("fraud_Rippin_Kub_and_Mann.") and ID.match(mapped)
    assert stable_id("fraud_Rippin, Kub and Mann") == mapped  # equal stays equal
    # different stays different, even where the slugs agree
    variants = ["a b", "a  b", "a,b", "a_b", "a-b", "A B", "Café Müller", "Cafe Muller", "x" * 65, "x" * 66]
    assert len({stable_id(v) for v in variants}) == len(variants)
    for value in [*variants, "€€€", "名前", " ", "a" * 500]:
        assert ID.match(stable_id(value)), value
    assert stable_id("Café Müller").startswith("Cafe_Muller.")


def test_free_form_ids_are_mapped_and_counted_per_field() -> None:
    rows = [
        _row(
            transaction_id="order 1", merchant_id="Bäckerei Müller", terminal_id="till 1", customer_id="c 1"
        ),
        _row(
            transaction_id="order 2", merchant_id="Bäckerei Müller", terminal_id="till 2", customer_id="c-2"
        ),
    ]
    mapped, refusals, observed = _map(rows)
    assert refusals.refused == 0
    (first, _, _), (second, _, _) = mapped
    assert first["merchant_id"] == second["merchant_id"] == stable_id("Bäckerei Müller")
    assert first["terminal_id"] != second["terminal_id"]
    assert second["customer_id"] == "c-2"
    assert observed.ids_mapped == {"transaction_id": 2, "merchant_id": 2, "terminal_id": 2, "customer_id": 1}
    line = next(line for line in describe(ColumnMapping(), observed) if line.startswith("ids mapped"))
    assert "transaction_id 2" in line and "customer_id 1" in line


def test_card_numbers_are_tokenised_with_the_key_and_never_kept() -> None:
    rows = [
        _row(transaction_id="a", card_token=PANS[0]),
        _row(transaction_id="b", card_token=f"{PANS[0][:4]} {PANS[0][4:8]} {PANS[0][8:12]} {PANS[0][12:]}"),
        _row(transaction_id="c", card_token=PANS[1]),
        _row(transaction_id="d", card_token=int(PANS[2])),  # a number in JSON or Parquet
        _row(transaction_id="e", card_token="60416207185"),  # 11 digits in the card column
    ]
    mapped, refusals, observed = _map(rows)
    assert refusals.refused == 0
    tokens = [txn["card_token"] for txn, _, _ in mapped]
    assert all(TOKEN.match(token) and len(token) == 36 for token in tokens)
    assert tokens[0] == tokens[1] != tokens[2]  # the same card however it is written
    assert len(set(tokens)) == 4
    assert observed.tokenised == {"card_token": 5}
    again, _, _ = _map(rows)
    assert [txn["card_token"] for txn, _, _ in again] == tokens  # the same key: the same tokens
    other = list(transactions(rows, None, Refusals(), token_key=b"another key"))
    assert all(a[0]["card_token"] != b[0]["card_token"] for a, b in zip(mapped, other, strict=True))
    text = repr(mapped)
    assert not any(pan in text for pan in PANS) and not find_card_numbers(text.encode())
    for txn, _, _ in mapped:
        assert txn["customer_id"] == txn["card_token"]  # no customer column: the card


def test_card_numbers_in_other_id_fields_are_tokenised_too() -> None:
    mapped, _, observed = _map([_row(customer_id=PANS[0], card_token=PANS[0], transaction_id=f"x-{PANS[1]}")])
    txn = mapped[0][0]
    assert txn["customer_id"] == txn["card_token"]  # the same number: the same token
    assert not text_has_card_number(txn["transaction_id"]) and ID.match(txn["transaction_id"])
    assert observed.tokenised == {"card_token": 1, "customer_id": 1, "transaction_id": 1}


def test_tokens_never_look_like_card_numbers() -> None:
    tokeniser = CardTokeniser(KEY)
    for number in range(2000):  # hex digests would hold Luhn-valid digit runs now and then
        token = tokeniser.keyed(str(4_000_000_000_000_000 + number))
        assert not text_has_card_number(token) and TOKEN.match(token)
        assert not text_has_card_number(stable_id(f"name {number}"))


def test_card_from_the_customer_when_the_file_has_no_card_column() -> None:
    rows = [
        _row(customer_id="3"),
        _row(transaction_id="t2", customer_id="03"),
        _row(transaction_id="t3", customer_id="3"),
    ]
    for row in rows:
        del row["card_token"]
    mapped, _, observed = _map(rows)
    cards = [txn["card_token"] for txn, _, _ in mapped]
    assert cards[0] == cards[2] == unkeyed_token("3") != cards[1]  # "3" and "03" stay two cards
    assert all(TOKEN.match(card) for card in cards)
    assert [txn["customer_id"] for txn, _, _ in mapped] == ["3", "03", "3"]
    assert observed.defaults["card_token"] == 3


def test_random_key_warning() -> None:
    observed = Observed()
    list(transactions([_row(card_token=PANS[0])], None, Refusals(), observed=observed))
    assert observed.random_key
    (warning,) = card_warnings(observed)
    assert "never stored or printed in clear" in warning and "not stable across runs" in warning
    assert "FRAUD_BACKTEST_TOKEN_KEY" in warning
    keyed = Observed()
    list(transactions([_row(card_token=PANS[0])], None, Refusals(), observed=keyed, token_key=KEY))
    assert "not stable" not in card_warnings(keyed)[0]
    assert card_warnings(Observed()) == []  # no card numbers, nothing to say


def test_token_key_setting() -> None:
    assert Settings().backtest_token_key is None
    assert Settings(backtest_token_key="s3cret").backtest_token_key.get_secret_value() == "s3cret"  # type: ignore[union-attr]


# --- (3) labels and amounts -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True), ("0", False), (1, True), (0, False), (1.0, True), ("1.0", True), (True, True),
        ("true", True), ("FALSE", False), ("Yes", True), ("no", False), ("FRAUD", True), ("legit", False),
        (" True ", True),
    ],
)  # fmt: skip
def test_labels(value: Any, expected: bool) -> None:
    assert parse_flag(value) is expected
    mapped, refusals, _ = _map([_row(is_fraud=value)])
    assert refusals.refused == 0 and mapped[0][1] is expected


@pytest.mark.parametrize("value", ["maybe", "2", "y", "-1", "fraudulent"])
def test_other_labels_are_refused(value: str) -> None:
    _, refusals, _ = _map([_row(is_fraud=value)])
    assert refusals.counts == {"is_fraud unreadable": 1}


def test_labels_from_the_mapping_file() -> None:
    mapping = mapping_from({"labels": {"fraud": ["Chargeback"], "legit": ["settled", "OK"]}})
    mapped, refusals, _ = _map(
        [
            _row(is_fraud="chargeback"),
            _row(transaction_id="t2", is_fraud="Settled"),
            _row(transaction_id="t3", is_fraud="1"),
        ],
        mapping,
    )
    assert [fraud for _, fraud, _ in mapped] == [True, False, True] and refusals.refused == 0
    with pytest.raises(BacktestError, match="both fraud and legit"):
        mapping_from({"labels": {"fraud": ["x"], "legit": ["X"]}})


@pytest.mark.parametrize(
    ("value", "decimal", "expected"),
    [
        ("12.5", ".", 12.5), ("1,234.50", ".", 1234.5), ("$12.00", ".", 12.0), ("12 USD", ".", 12.0),
        (42, ".", 42.0), ("0", ".", 0.0), ("12,50", ",", 12.5), ("1.234,50", ",", 1234.5),
        ("€ 1.234,50", ",", 1234.5), ("12,50 €", ",", 12.5), ("1 234,5", ",", 1234.5), ("-3,5", ",", -3.5),
        ("CHF 1'234.05", ".", 1234.05), ("12", ",", 12.0),
    ],
)  # fmt: skip
def test_amounts(value: Any, decimal: str, expected: float) -> None:
    assert parse_amount(value, decimal) == expected


@pytest.mark.parametrize(
    ("value", "decimal"),
    [("12,50", "."), ("12.50", ","), ("abc", "."), ("nan", "."), ("inf", "."), ("1.2.3", ".")],
)
def test_unreadable_amounts(value: str, decimal: str) -> None:
    with pytest.raises(ValueError):
        parse_amount(value, decimal)


def test_decimal_comma_option_and_zero_amounts() -> None:
    rows = [
        _row(amount="12,50 €"),
        _row(transaction_id="t2", amount="0,00"),
        _row(transaction_id="t3", amount="1.000,00"),
    ]
    mapped, refusals, _ = _map(rows, build_mapping(decimal=","))
    assert [txn["amount"] for txn, _, _ in mapped] == [12.5, 0.0, 1000.0] and refusals.refused == 0
    _, refusals, _ = _map(rows)  # without --decimal , a decimal comma is refused, not misread
    assert refusals.counts == {"amount unreadable": 3}


def test_zero_amount_passes_the_contract_and_negative_does_not() -> None:
    check = validator("transaction")
    mapped, refusals, _ = _map([_row(amount="0"), _row(transaction_id="t2", amount="-1")])
    check(mapped[0][0])
    assert mapped[0][0]["amount"] == 0.0
    assert refusals.counts == {"schema: amount below minimum": 1}


# --- (4) refusals -----------------------------------------------------------------------------
BAD_ROWS: list[tuple[dict[str, Any], str]] = [
    (_row(transaction_id=""), "transaction_id missing"),
    (_row(event_time=""), "event_time missing"),
    (_row(event_time="yesterday-ish"), "event_time unreadable"),
    (_row(event_time="31"), "event_time unreadable"),
    (_row(amount=""), "amount missing"),
    (_row(amount="twelve"), "amount unreadable"),
    (_row(is_fraud=""), "is_fraud missing"),
    (_row(is_fraud="perhaps"), "is_fraud unreadable"),
    (_row(card_token=""), "card_token missing"),
    (_row(account_age_days="old"), "account_age_days unreadable"),
    (_row(hours_since_contact_change="soon"), "hours_since_contact_change unreadable"),
    (_row(shipping_matches_billing="sometimes"), "shipping_matches_billing unreadable"),
    (_row(amount="-5"), "schema: amount below minimum"),
    (_row(amount="2000000"), "schema: amount above maximum"),
    (_row(currency="XXX"), "schema: currency not an allowed value"),
    (_row(channel="fax"), "schema: channel not an allowed value"),
    (_row(country="Germany"), "schema: country malformed"),
    (_row(merchant_category="grocery"), "schema: merchant_category malformed"),
    (_row(account_age_days="-3"), "schema: account_age_days below minimum"),
    (_row(channel="ecommerce"), "schema: device_id missing"),
    (_row(channel="ecommerce", device_id="d1", ip_address="999.1.1.1"), "schema: ip_address malformed"),
]


@pytest.mark.parametrize(("row", "reason"), BAD_ROWS, ids=[reason for _, reason in BAD_ROWS])
def test_each_refusal_reason(row: dict[str, Any], reason: str) -> None:
    good = [_row(transaction_id=f"g{i}") for i in range(3)]
    mapped, refusals, _ = _map(
        [good[0], {**row, "transaction_id": row["transaction_id"] and "bad"}, *good[1:]]
    )
    assert refusals.counts == {reason: 1}
    assert refusals.examples == {reason: [2]}
    assert refusals.rows == 4 and [txn["transaction_id"] for txn, _, _ in mapped] == ["g0", "g1", "g2"]


def test_repeated_transaction_id_is_refused() -> None:
    _, refusals, _ = _map([_row(), _row(), _row(transaction_id="t2"), _row()])
    assert refusals.counts == {"transaction_id duplicate": 2} and refusals.examples[
        "transaction_id duplicate"
    ] == [2, 4]


def test_refusals_by_reason_with_three_example_rows() -> None:
    rows = [
        _row(transaction_id=f"t{i}", event_time="never" if i % 2 else "2024-03-01T10:00:00Z")
        for i in range(1, 21)
    ]
    rows[3]["amount"] = "-1"
    _, refusals, _ = _map(rows)
    assert refusals.counts == {"event_time unreadable": 10, "schema: amount below minimum": 1}
    assert refusals.examples["event_time unreadable"] == [1, 3, 5]
    lines = refusals.lines()
    assert lines[0] == "refused: 11 of 20 rows (55.00 %)"
    assert re.fullmatch(r"  event_time unreadable\s+10  rows 1, 3, 5, \.\.\.", lines[1]), lines[1]
    assert re.fullmatch(r"  schema: amount below minimum\s+1  row 4", lines[2]), lines[2]
    assert len(lines) == 3  # one line per reason, never per value


def test_max_refused() -> None:
    assert parse_fraction("1%") == 0.01 and parse_fraction("0.05") == 0.05 and parse_fraction("100%") == 1
    for bad in ("5", "abc", "-1%", "101%"):
        with pytest.raises(ValueError):
            parse_fraction(bad)
    refusals = Refusals()
    list(transactions([_row(transaction_id=f"t{i}") for i in range(99)] + [_row(amount="x")], None, refusals))
    refusals.check(0.01)  # exactly 1 %: goes on
    with pytest.raises(
        BacktestError,
        match=r"(?s)1\.00 % of the rows refused.*nothing was replayed.*amount unreadable\s+1  row 100",
    ):
        refusals.check(0.005)
    everything = Refusals()
    list(transactions([_row(amount="x")], None, everything))
    with pytest.raises(BacktestError, match=r"100\.00 % of the rows refused"):
        everything.check(1.0)  # nothing left to replay
    with pytest.raises(BacktestError, match="no rows"):
        Refusals().check(1.0)


def test_refused_rows_file_has_row_reason_and_no_card_number(tmp_path: Path) -> None:
    rows = [
        {"id": "1", "when": "2024-03-01 10:00:00", "pan": PANS[0], "amt": "5", "label": "0", "note": ""},
        {"id": "2", "when": "bad", "pan": PANS[1], "amt": "5", "label": "0", "note": f"card {PANS[2]}"},
        {
            "id": "3",
            "when": "2024-03-01 10:00:00",
            "pan": PANS[0],
            "amt": "-5",
            "label": "1",
            "note": "",
            "extra": "x",
        },
    ]
    mapping = build_mapping(
        pairs=["transaction_id=id", "event_time=when", "card_token=pan", "amount=amt", "is_fraud=label"]
    )
    path = tmp_path / "out" / "refused.csv"
    refusals = Refusals()
    with RefusedWriter(path, CardTokeniser(KEY), card_columns(mapping)) as writer:
        refusals.sink = writer
        mapped = list(transactions(rows, mapping, refusals, token_key=KEY))
    text = path.read_text(encoding="utf-8")
    table = list(csv.DictReader(text.splitlines()))
    assert [(r["row"], r["reason"]) for r in table] == [
        ("2", "event_time unreadable"),
        ("3", "schema: amount below minimum"),
    ]
    assert table[0]["pan"] == CardTokeniser(KEY).token(PANS[1])[0]  # the card's token, as in the scores
    assert table[1]["pan"] == mapped[0][0]["card_token"]
    assert table[0]["note"] == f"card ************{PANS[2][-4:]}"
    assert table[1]["more"] == '{"extra":"x"}'
    assert not any(pan in text for pan in PANS) and not find_card_numbers(text.encode())


def test_missing_mapped_column_fails_at_once_naming_it() -> None:
    with pytest.raises(
        BacktestError, match=r"no column TX_DATETIME \(event_time\).*its columns: transaction_id"
    ):
        list(transactions([_row()], build_mapping(pairs=["event_time=TX_DATETIME"])))
    row = _row()
    del row["amount"]
    with pytest.raises(BacktestError, match=r"no column amount \(map it: --map amount=COLUMN\)"):
        list(transactions([row]))
    del row["card_token"]
    with pytest.raises(BacktestError, match="card_token or customer_id"):
        list(transactions([row]))


def test_rows_without_a_transaction_id_column_are_numbered() -> None:
    rows = [_row(), _row()]
    for row in rows:
        del row["transaction_id"]
    mapped, _, observed = _map(rows)
    assert [txn["transaction_id"] for txn, _, _ in mapped] == ["row-1", "row-2"]
    assert observed.defaults["transaction_id"] == 2


# --- (6) the mapping file and defaults --------------------------------------------------------
def test_defaults_for_missing_fields_are_used_and_printed() -> None:
    mapped, _, observed = _map([_row()])
    txn = mapped[0][0]
    assert txn["customer_id"] == txn["card_token"]
    assert txn["merchant_id"] == txn["terminal_id"] == "unknown"
    assert (txn["merchant_category"], txn["currency"], txn["channel"]) == ("0000", "EUR", "card_present")
    assert txn["country"] == txn["card_country"] == "ZZ" and txn["account_age_days"] == 365
    validator("transaction")(txn)
    lines = describe(ColumnMapping(), observed)
    defaults = next(line for line in lines if line.startswith("defaults: "))
    for text in ("customer_id = card_token (1 row)", "country = ZZ (1 row)", "channel = card_present"):
        assert text in defaults
    assert "null (no value in the file): device_id, ip_address" in "\n".join(lines)
    merchant_only, _, _ = _map([_row(merchant_id="m1")])
    assert merchant_only[0][0]["terminal_id"] == "m1"  # the terminal is the merchant
    terminal_only, _, _ = _map([_row(terminal_id="t1")])
    assert terminal_only[0][0]["merchant_id"] == "t1"


def test_mapping_file_holds_everything_and_map_pairs_override_it(tmp_path: Path) -> None:
    path = tmp_path / "cols.yaml"
    path.write_text(
        """
columns:
  transaction_id: ref
  event_time: day+clock
  card_token: pan
  amount: sum
  is_fraud: verdict
  merchant_category: kind
timezone: Europe/Paris
time_unit: auto
decimal: ","
labels: {fraud: [chargeback], legit: [ok]}
values: {merchant_category: {food: "5812", "*": "5999"}}
defaults: {currency: CHF, country: CH}
""",
        encoding="utf-8",
    )
    mapping = build_mapping(path, ["amount=total"])
    row = {"ref": "r1", "day": "2024-03-01", "clock": "10:00", "pan": PANS[0], "sum": "9,99", "total": "1,5",
           "verdict": "Chargeback", "kind": "food"}  # fmt: skip
    mapped, refusals, _ = _map([row, {**row, "ref": "r2", "kind": "shoes", "verdict": "ok"}], mapping)
    assert refusals.refused == 0
    (first, fraud, _), (second, legit, _) = mapped
    assert first["event_time"] == "2024-03-01T10:00:00+01:00" and first["amount"] == 1.5
    assert (first["merchant_category"], second["merchant_category"]) == ("5812", "5999")
    assert (first["currency"], first["country"], first["card_country"]) == ("CHF", "CH", "CH")
    assert fraud is True and legit is False
    assert mapping.source == str(path)
    assert build_mapping(path, timezone="UTC", decimal=".").timezone == "UTC"  # options override the file


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"colums": {}}, "unknown key"),
        ({"columns": {"amout": "x"}}, "unknown field 'amout'"),
        ({"columns": {"amount": "a+b"}}, "only event_time takes two columns"),
        ({"columns": {"event_time": ["a", "b", "c"]}}, "a date and a time column"),
        ({"time_unit": "hours"}, "time_unit"),
        ({"decimal": ";"}, "decimal"),
        ({"timezone": "Nowhere/Land"}, "unknown timezone"),
        (yaml.safe_load("timezone: +2:00"), 'quote it, e.g. "+02:00"'),  # YAML: the number 120
        ({"defaults": {"amount": 1}}, "'amount' takes no default"),
        ({"defaults": {"customer_id": "x"}}, "without a column it is card_token"),
        ({"labels": {"maybe": ["x"]}}, "labels"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_mapping_file_errors(content: Any, message: str) -> None:
    with pytest.raises(BacktestError, match=re.escape(message)):
        mapping_from(content, "cols.yaml")


def test_map_pairs() -> None:
    with pytest.raises(BacktestError, match="field=column"):
        build_mapping(pairs=["event_time"])
    mapping = build_mapping(pairs=["event_time=trans_date+trans_time", "amount=amt"])
    assert mapping.columns == {"event_time": ("trans_date", "trans_time"), "amount": ("amt",)}


SPARKOV = [
    *("trans_date_trans_time", "cc_num", "merchant", "category", "amt", "first", "last", "gender", "street"),
    *("city", "state", "zip", "lat", "long", "city_pop", "job", "dob", "trans_num", "unix_time", "merch_lat"),
    *("merch_long", "is_fraud"),
]
HANDBOOK = [
    *("TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_TIME_SECONDS"),
    *("TX_TIME_DAYS", "TX_FRAUD", "TX_FRAUD_SCENARIO"),
]


def _sparkov_rows(count: int) -> Iterator[dict[str, str]]:
    for i in range(count):
        yield {
            "": str(i), "trans_date_trans_time": f"2019-01-01 00:{i // 60 % 60:02d}:{i % 60:02d}",
            "cc_num": PANS[i % 3], "merchant": ["fraud_Rippin, Kub and Mann", "fraud_Lind-Buckridge"][i % 2],
            "category": ["grocery_pos", "misc_net", "unheard_of"][i % 3], "amt": f"{i % 50 + 0.5:.2f}",
            "first": "Jennifer", "last": "Banks", "gender": "F", "street": "561 Perry Cove",
            "city": "Moravian Falls", "state": "NC", "zip": "28654", "lat": "36.0788", "long": "-81.1781",
            "city_pop": "3495",
            "job": "Psychologist, counselling", "dob": "1988-03-09", "trans_num": f"{i:032x}",
            "unix_time": str(1325376018 + i), "merch_lat": "36.011293", "merch_long": "-82.048315",
            "is_fraud": "1" if i % 10 == 0 else "0",
        }  # fmt: skip


def test_sparkov_mapping_file(tmp_path: Path) -> None:
    mapping = load_mapping(MAPPINGS / "sparkov.yaml")
    used = {column for columns in mapping.columns.values() for column in columns}
    assert used <= set(SPARKOV)
    rows = list(_sparkov_rows(40))
    assert set(rows[0]) - {""} == set(SPARKOV)
    path = _write_csv(tmp_path / "fraudTest.csv", rows)
    mapped, refusals, observed = _map(list(read_rows(path)), mapping)
    assert refusals.refused == 0 and len(mapped) == 40
    txn, fraud, _ = mapped[0]
    assert fraud is True and txn["currency"] == "USD" and txn["country"] == "US"
    assert txn["merchant_id"] == stable_id("fraud_Rippin, Kub and Mann") == txn["terminal_id"]
    assert [m[0]["merchant_category"] for m in mapped[:3]] == ["5411", "5999", "0000"]
    assert observed.tokenised == {"card_token": 40} and observed.ids_mapped["merchant_id"] == 20
    assert not any(pan in repr(mapped) for pan in PANS)


def test_handbook_mapping_file(tmp_path: Path) -> None:
    mapping = load_mapping(MAPPINGS / "fraud-detection-handbook.yaml")
    used = {column for columns in mapping.columns.values() for column in columns}
    assert used <= set(HANDBOOK)
    rows = [
        dict(zip(HANDBOOK, [str(i), f"2018-04-01 00:00:{i:02d}", str(i % 4), str(i % 7), "57.16", str(i), "0",
                            "1" if i % 4 else "0", str(i % 4)], strict=True))
        for i in range(12)
    ]  # fmt: skip
    mapped, refusals, _ = _map(rows, mapping)
    assert refusals.refused == 0
    kinds = [(fraud, kind) for _, fraud, kind in mapped[:4]]
    assert kinds == [
        (False, None),
        (True, "unauthorized_transactions"),
        (True, "malicious_behavior"),
        (True, "unauthorized_transactions"),
    ]
    txn = mapped[1][0]
    assert txn["customer_id"] == "1" and txn["card_token"] == unkeyed_token("1") and txn["merchant_id"] == "1"
    assert txn["event_time"] == "2018-04-01T00:00:01+00:00"


def test_mapping_files_in_docs_are_all_loadable() -> None:
    files = sorted(MAPPINGS.glob("*.yaml"))
    assert [path.name for path in files] == ["fraud-detection-handbook.yaml", "sparkov.yaml"]
    for path in files:
        load_mapping(path)


# --- (5) dry run ------------------------------------------------------------------------------
def test_dry_run_reads_only_the_first_rows_and_shows_three() -> None:
    consumed = itertools.count()

    def rows() -> Iterator[dict[str, str]]:
        for row in _sparkov_rows(5000):
            next(consumed)
            if row[""] == "7":
                row["amt"] = "lots"
            yield row

    mapping = load_mapping(MAPPINGS / "sparkov.yaml")
    shown = preview(rows(), mapping, limit=1000)
    assert next(consumed) <= 1001  # 1000 read, at most one more pulled
    assert shown.refusals.rows == 1000 and shown.accepted == 999 and len(shown.examples) == 3
    lines = preview_lines(shown, mapping, 0.01)
    text = "\n".join(lines)
    assert lines[0] == "dry run: 1,000 rows read, 999 would be replayed; nothing was replayed"
    assert "event_time: YYYY-MM-DD HH:MM:SS 999; naive times read in UTC" in lines
    assert "amounts: decimal mark '.'" in lines
    assert "ids mapped to <slug>.<hash>" in text and "merchant_id" in text
    assert "card numbers tokenised to tok_<HMAC-SHA256>: card_token 999" in text
    assert sum(line.startswith("example: {") for line in lines) == 3
    assert re.search(r"amount unreadable\s+1  row 8", text)
    assert "would stop" not in text
    assert not any(pan in text for pan in PANS) and not find_card_numbers(text.encode())
    strict = preview_lines(preview(_sparkov_rows(10), mapping), mapping, 0.0)
    assert not any(line.startswith("would stop") for line in strict)
    bad = preview_lines(preview(rows(), mapping, limit=10), mapping, 0.05)
    assert bad[-1].startswith("would stop: 10.00 % refused")


# --- reading and the old entry point ----------------------------------------------------------
def test_read_rows_semicolons_and_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes("\ufeffid;amount\n1;12,50\n".encode())
    assert list(read_rows(path)) == [{"id": "1", "amount": "12,50"}]
    commas = _write_csv(tmp_path / "plain.csv", [{"a": "x;y", "b": "2"}])
    assert list(read_rows(commas)) == [{"a": "x;y", "b": "2"}]


def test_parquet_times_ids_and_missing_values(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"transaction_id": 1, "event_time": datetime(2024, 3, 1, 10), "customer_id": 7.0, "amount": 3.5,
         "is_fraud": 1, "device_id": None},
        {"transaction_id": 2, "event_time": datetime(2024, 3, 1, 11), "customer_id": 8.0, "amount": 0.0,
         "is_fraud": 0, "device_id": float("nan")},
    ]  # fmt: skip
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    mapped, refusals, observed = _map(list(read_rows(path)))
    assert refusals.refused == 0
    assert [(t["transaction_id"], t["customer_id"], t["device_id"]) for t, _, _ in mapped] == [
        ("1", "7", None),
        ("2", "8", None),
    ]
    assert observed.time_formats == {"datetime values": 2}


def test_transactions_in_the_contract_pass_unchanged() -> None:
    from tests.pipeline.factories import T0, make_digital_txn, make_txn

    rows = [make_txn(T0, transaction_id="a"), make_digital_txn(T0 + 1.5, transaction_id="b")]
    mapped, refusals, observed = _map([{**row, "is_fraud": False} for row in rows])
    assert [txn for txn, _, _ in mapped] == rows and refusals.refused == 0
    assert not observed.ids_mapped and not observed.tokenised


def test_normalise_still_maps_one_row() -> None:
    txn, is_fraud, fraud_type = normalise(_row(is_fraud="fraud", fraud_type="Identity Theft"), {})
    assert is_fraud and fraud_type == "identity_theft" and txn["transaction_id"] == "t1"
    with pytest.raises(Refused, match="event_time unreadable") as caught:
        normalise(_row(event_time="soon"), {})
    assert isinstance(caught.value, ValueError) and caught.value.reason == "event_time unreadable"
    columns = {
        "transaction_id": "id",
        "event_time": "when",
        "card_token": "c",
        "amount": "a",
        "is_fraud": "f",
    }
    mapped = normalise({"id": "x y", "when": 1709283600, "c": PANS[0], "a": "1", "f": "no"}, columns)
    assert TOKEN.match(mapped[0]["card_token"]) and mapped[0]["transaction_id"] == stable_id("x y")
    assert normalise(mapped[0] | {"is_fraud": False}, {})[0] == mapped[0]  # a mapped row maps to itself
