"""The columnar mapper (``map_frame``) against the row mapper (``transactions``): on valid and fuzzed
rows, under several mappings, read from rows, CSV and Parquet files, the two give the same
transactions (keys in the same order), the same event times, the same refusals (reason, count,
example rows, rows handed to the refused-rows sink, in order) and the same observations. And the
scores file, written without ``csv.writer`` where no cell needs quoting, is byte for byte its."""

from __future__ import annotations

import csv
import math
import random
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.detection.features import event_seconds
from pipeline.tools.backtest import Observed, Refusals, build_mapping, read_rows, transactions
from pipeline.tools.backtest.columnar import map_frame
from pipeline.tools.backtest.frame import RowsFrame, read_frame
from pipeline.tools.backtest.mapping import ColumnMapping, mapping_from
from pipeline.tools.backtest.report import SCORES_COLUMNS, ScoredTransaction, write_scores
from tests.pipeline.factories import PROPERTY, T0, iso, make_txn

KEY = b"columnar-test-key"

# Values a foreign file may hold, valid or not, for any field.
ODD: list[Any] = [
    None, "", " ", "  x  ", "abc def", "ABC", "de", "DE", "d\u00e9", "0", "1", "-1", "1.5", "-0.0", 0, 1, 2,
    -3, 1.0, 0.0, -0.0, 2.5, float("nan"), float("inf"), True, False, "true", "FALSE", "yes", "fraud",
    "legit",
    "1,234.50", "1.234,50", "\u20ac 12,50", "12 USD", "2000000", "5411", "411", "12345", "\u0665\u0664",
    "4111 1111 1111 1111", "4111111111111111", "card 4111-1111-1111-1111", "12345678901", "tok_abcdefgh",
    "tok_x", "x" * 70, "a\nb", "2024-03-01T10:00:00Z", "2024-03-01t10:00:00z", "2024-03-01 10:00:00",
    "2024-02-30T10:00:00Z", "2024-02-29T10:00:00.123456+05:30", "1900-02-29T00:00:00Z",
    "2000-02-29T00:00:00Z", "2024-03-01T10:00:00+05:60", "2024-03-01T10:00:00+00:99",
    "2024-03-01T24:00:00Z", "2024-03-01T10:00:60Z", "2024-03-01T10:00:00+24:00", "2024-03-01T10:00:00+23:59",
    "0000-01-01T00:00:00Z", "2024-03-01T10:00:00", "1709287200", "1709287200000", 1709287200, 1709287200.5,
    "20240301", "never", "ecommerce", "mobile_app", "atm", "fax", "EUR", "usd", "XXX", "203.0.113.7",
    "999.1.1.1", "::1", "unauthorized_transactions", "Identity Theft", "malicious behavior", "other",
    [1, 2], {"a": 1}, Decimal("1.0"), Decimal("1.00"), datetime(2024, 3, 1, 10, tzinfo=UTC),
    datetime(2024, 3, 1, 11, tzinfo=timezone(timedelta(hours=1))), datetime(2024, 3, 1, 10), date(2024, 3, 1),
]  # fmt: skip
FIELDS = [
    "transaction_id", "event_time", "card_token", "customer_id", "merchant_id", "terminal_id",
    "merchant_category", "amount", "currency", "channel", "country", "card_country", "device_id",
    "ip_address", "account_age_days", "hours_since_contact_change", "shipping_matches_billing",
    "is_fraud", "fraud_type",
]  # fmt: skip


def _valid_row(rng: random.Random, number: int) -> dict[str, Any]:
    at = T0 + number * 37.5
    txn = make_txn(
        at,
        transaction_id=f"tx-{number % 900:05d}",  # some ids repeat
        card_token=f"tok_card{rng.randrange(40):04d}",
        customer_id=f"cust-{rng.randrange(30)}",
        channel=rng.choice(["card_present", "ecommerce", "contactless"]),
        device_id=rng.choice([None, "dev-1", "dev-2"]),
        ip_address=rng.choice([None, "203.0.113.7"]),
        amount=round(rng.uniform(0, 500), 2),
    )
    if txn["channel"] == "ecommerce":
        txn["device_id"], txn["ip_address"] = "dev-9", "198.51.100.1"
    txn["event_time"] = rng.choice([iso(at), iso(at).replace("+00:00", "Z"), iso(at)[:19] + "+02:00"])
    is_fraud = rng.random() < 0.2
    return {**txn, "is_fraud": is_fraud, "fraud_type": "identity_theft" if is_fraud else None}


def _rows(seed: int, count: int = 1500, odd: float = 0.02) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for number in range(count):
        row = _valid_row(rng, number)
        for name in FIELDS:
            if rng.random() < odd:
                row[name] = rng.choice(ODD)
        if odd and rng.random() < 0.01:
            del row[rng.choice(FIELDS)]
        rows.append(row)
    return rows


def _same(actual: Any, expected: Any) -> bool:
    """Equal, with NaN equal to NaN, -0.0 apart from 0.0 and the types compared too."""
    if isinstance(expected, float) and isinstance(actual, float):
        return (math.isnan(actual) and math.isnan(expected)) or (
            actual == expected and math.copysign(1, actual) == math.copysign(1, expected)
        )
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and list(actual) == list(expected)
            and all(_same(actual[k], expected[k]) for k in expected)
        )
    if isinstance(expected, list | tuple):
        return len(actual) == len(expected) and all(
            _same(a, e) for a, e in zip(actual, expected, strict=True)
        )
    return type(actual) is type(expected) and actual == expected


def _compare(rows_by_row: Any, frame: Any, mapping: ColumnMapping | None = None) -> tuple[int, int]:
    """Both mappers on the same input; returns (rows mapped, rows refused)."""
    sunk: list[list[Any]] = [[], []]
    expected_refusals, actual_refusals = Refusals(), Refusals()
    expected_refusals.sink = lambda number, refusal, row: sunk[0].append((number, refusal.reason, dict(row)))
    actual_refusals.sink = lambda number, refusal, row: sunk[1].append((number, refusal.reason, dict(row)))
    expected_observed, actual_observed = Observed(), Observed()
    expected = list(
        transactions(rows_by_row, mapping, expected_refusals, token_key=KEY, observed=expected_observed)
    )
    actual = map_frame(frame, mapping, actual_refusals, token_key=KEY, observed=actual_observed)
    assert _same(list(actual), expected)
    assert _same(actual.at, [event_seconds(txn) for txn, _, _ in expected])
    assert actual_refusals.rows == expected_refusals.rows
    assert list(actual_refusals.counts.items()) == list(expected_refusals.counts.items())
    assert actual_refusals.examples == expected_refusals.examples
    assert _same(sunk[1], sunk[0])
    for name in ("time_formats", "ids_mapped", "tokenised", "defaults"):
        mine, theirs = getattr(actual_observed, name), getattr(expected_observed, name)
        assert list(mine.items()) == list(theirs.items()), name
    return len(expected), expected_refusals.refused


MAPPINGS: dict[str, Any] = {
    "defaults": None,
    "renamed": {"transaction_id": "id", "amount": "amt", "event_time": "when"},
    "options": mapping_from(
        {
            "timezone": "Europe/Berlin",
            "decimal": ",",
            "labels": {"fraud": ["chargeback"], "legit": ["settled"]},
            "values": {
                "merchant_category": {"grocery": "5411", "*": "0000"},
                "channel": {"web": "ecommerce"},
            },
            "defaults": {"currency": "USD", "country": "NL", "device_id": "dev-default"},
        }
    ),
    "epoch ms": mapping_from({"time_unit": "ms"}),
}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", list(MAPPINGS))
def test_fuzzed_rows_map_alike(seed: int, name: str) -> None:
    rows = _rows(seed)
    if name == "renamed":
        for row in rows:
            for ours, theirs in MAPPINGS[name].items():
                if ours in row:
                    row[theirs] = row.pop(ours)
    mapping = MAPPINGS[name]
    mapped, refused = _compare(rows, RowsFrame(rows), mapping)
    if name in ("defaults", "renamed"):
        assert mapped > 500 and refused > 100  # both kinds of rows are exercised


def test_valid_rows_map_alike_and_repeated_ids_are_refused() -> None:
    rows = _rows(7, odd=0.0)
    mapped, refused = _compare(rows, RowsFrame(rows))
    assert mapped == len({row["transaction_id"] for row in rows}) == 900
    assert refused == len(rows) - 900  # the repeated ids


def test_rows_without_ids_or_cards_and_with_a_date_and_a_time_column() -> None:
    rows = []
    for number, row in enumerate(_rows(11, count=400)):
        row.pop("transaction_id", None)
        row.pop("card_token", None)
        when = str(row.pop("event_time", ""))
        row["day"], row["time"] = when[:10], when[11:19]
        if number % 50 == 0:
            row["day"] = ""
        rows.append(row)
    mapping = build_mapping(None, ["event_time=day+time"])
    _compare(rows, RowsFrame(rows), mapping)


@given(
    st.lists(
        st.fixed_dictionaries({}, optional={name: st.sampled_from(ODD[:-6]) for name in FIELDS}),
        max_size=30,
    )
)
@PROPERTY
def test_any_rows_map_alike(odd_rows: list[dict[str, Any]]) -> None:
    rng = random.Random(len(odd_rows))
    rows = [{**_valid_row(rng, number), **odd} for number, odd in enumerate(odd_rows)]
    _compare(rows, RowsFrame(rows))


def _write_csv(path: Path, rows: list[dict[str, Any]], **options: Any) -> None:
    names = list(dict.fromkeys(name for row in rows for name in row))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=names, **options)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: ("" if v is None else v) for k, v in row.items() if isinstance(v, str | int | float)}
            )


@pytest.mark.parametrize("kind", ["plain", "quoted", "ragged", "semicolons"])
def test_csv_files_map_alike(tmp_path: Path, kind: str) -> None:
    rows = _rows(3, count=800)
    path = tmp_path / "rows.csv"
    if kind == "semicolons":
        _write_csv(path, rows, delimiter=";", lineterminator="\n")
    else:
        _write_csv(path, rows, quoting=csv.QUOTE_ALL if kind == "quoted" else csv.QUOTE_MINIMAL)
    if kind == "ragged":
        lines = path.read_text(encoding="utf-8").split("\n")
        lines[5] += ",extra"
        lines[9] = lines[9].rsplit(",", 2)[0]
        lines.insert(12, "")
        path.write_text("\n".join(lines), encoding="utf-8")
    _compare(read_rows(path), read_frame(path))


def test_simulator_csv_is_read_by_arrow_and_maps_alike(tmp_path: Path) -> None:
    rows = _rows(5, count=600, odd=0.0)
    for row in rows:
        row["is_fraud"] = int(row["is_fraud"])
    path = tmp_path / "sim.csv"
    _write_csv(path, rows)
    frame = read_frame(path)
    assert type(frame).__name__ == "ArrowFrame"
    _compare(read_rows(path), frame)


def test_parquet_maps_alike(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = _rows(9, count=600)
    table = {
        name: [row.get(name) if isinstance(row.get(name), str) else None for row in rows] for name in FIELDS
    }
    table["amount"] = [row["amount"] if isinstance(row.get("amount"), float) else None for row in rows]
    table["event_time"] = [datetime.fromtimestamp(T0 + i * 60.0, UTC) for i in range(len(rows))]
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table(table), path)
    _compare(read_rows(path), read_frame(path))


def test_scores_file_is_what_csv_writer_writes(tmp_path: Path) -> None:
    rng = random.Random(1)
    cells = ["tx-1", "b,c", 'q"x', "l\nm", "r\rs", " sp", "sp ", "", "d\u00e9"]
    scored = [
        ScoredTransaction(
            *(rng.choice(cells) for _ in range(4)),
            rng.random(),
            rng.random(),
            rng.choice([None, "identity_theft", "y,z"]),
            rng.choice(["allow", "review"]),
            rng.choice([True, False]),
            rng.choice([None, "identity_theft", ""]),
        )
        for _ in range(3000)
    ]
    with (tmp_path / "expected.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(SCORES_COLUMNS)
        for s in scored:
            writer.writerow(
                [
                    *(s.transaction_id, s.event_time, s.card_token, s.customer_id),
                    *(f"{s.score:.6f}", f"{s.model_score:.6f}", s.fraud_type or "", s.decision),
                    *(int(s.is_fraud), s.true_fraud_type or ""),
                ]
            )
    write_scores(tmp_path / "scores.csv", scored)
    assert (tmp_path / "scores.csv").read_bytes() == (tmp_path / "expected.csv").read_bytes()
