"""Reading labelled transaction files (CSV, TSV, JSON lines, Parquet) and mapping their rows to the
transaction contract (schemas/transaction.v1.schema.json)."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.config import FRAUD_TYPES
from pipeline.contracts.json_schemas import load_schema

DEFAULTS: dict[str, Any] = {
    "schema_version": 1,
    "merchant_category": "0000",
    "currency": "EUR",
    "channel": "card_present",
    "country": "ZZ",
    "account_age_days": 365,
    "device_id": None,
    "ip_address": None,
    "hours_since_contact_change": None,
    "shipping_matches_billing": None,
}


class BacktestError(ValueError):
    """The input cannot be read or mapped; the message says which row or column."""


# --- reading -----------------------------------------------------------------------------------
def parse_column_map(pairs: Iterable[str]) -> dict[str, str]:
    """``["transaction_id=TRANSACTION_ID", ...]`` -> {our field: their column}."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        ours, sep, theirs = pair.partition("=")
        if not sep or not ours or not theirs:
            raise BacktestError(f"--map takes field=column, not {pair!r}")
        mapping[ours.strip()] = theirs.strip()
    return mapping


FORMATS = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet")


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a CSV, TSV, JSON-lines (.jsonl/.ndjson, optionally .gz) or Parquet file. The file and
    its format are checked at once, so a wrong path fails here with one clear message."""
    stem = path.name.lower().removesuffix(".gz")
    if not stem.endswith(FORMATS):
        raise BacktestError(f"{path}: unknown format (use .csv, .tsv, .jsonl[.gz] or .parquet)")
    if not path.is_file():
        raise BacktestError(f"{path}: no such file")
    return _rows(path, stem)


def _rows(path: Path, stem: str) -> Iterator[dict[str, Any]]:
    if stem.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise BacktestError("reading Parquet needs pyarrow: pip install pyarrow") from None
        yield from pq.read_table(path).to_pylist()
        return
    opener: Callable[..., Any] = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        if stem.endswith((".csv", ".tsv")):
            yield from csv.DictReader(handle, delimiter="\t" if stem.endswith(".tsv") else ",")
            return
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise BacktestError(f"{path}:{number}: not JSON ({exc})") from None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "t", "fraud")
    return bool(value)


def _iso(value: Any) -> str:
    """An event time in RFC 3339 with offset, from what data sets usually hold."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.isoformat()
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    text = str(value).strip().replace(" ", "T", 1)
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _token(value: Any) -> str:
    """A card token as our schema wants it; other identifiers become ``tok_`` + their letters and digits."""
    text = str(value)
    if text.startswith("tok_") and 8 <= len(text) - 4 <= 64 and text[4:].isalnum():
        return text
    return f"tok_{''.join(ch for ch in text if ch.isalnum())[:64]:0>8}"


def normalise(
    row: Mapping[str, Any], column_map: Mapping[str, str]
) -> tuple[dict[str, Any], bool, str | None]:
    """A data-set row -> (transaction per our schema, is_fraud, fraud type). Missing optional
    fields get neutral defaults; cards identified only by a customer id get a token from it."""

    def get(name: str) -> Any:
        column = column_map.get(name, name)
        value = row.get(column)
        return None if value == "" else value

    txn: dict[str, Any] = dict(DEFAULTS)
    for name in load_schema("transaction")["properties"]:  # every field the contract knows
        value = get(name)
        if value is not None:
            txn[name] = value
    if txn.get("event_time") is None or txn.get("transaction_id") is None or txn.get("amount") is None:
        raise BacktestError("transaction_id, event_time and amount are required (map them with --map)")
    txn["schema_version"] = 1
    txn["transaction_id"] = str(txn["transaction_id"])
    txn["event_time"] = _iso(txn["event_time"])
    txn["amount"] = float(txn["amount"])
    txn["customer_id"] = str(txn.get("customer_id") or txn.get("card_token") or "unknown")
    txn["card_token"] = _token(txn.get("card_token") or txn["customer_id"])
    txn["terminal_id"] = str(txn.get("terminal_id") or txn.get("merchant_id") or "unknown")
    txn["merchant_id"] = str(txn.get("merchant_id") or txn["terminal_id"])
    txn["card_country"] = txn.get("card_country") or txn["country"]
    for name in ("account_age_days",):
        txn[name] = int(float(txn[name]))
    if isinstance(txn.get("shipping_matches_billing"), str):
        txn["shipping_matches_billing"] = _truthy(txn["shipping_matches_billing"])
    if txn.get("hours_since_contact_change") is not None:
        txn["hours_since_contact_change"] = float(txn["hours_since_contact_change"])
    is_fraud = _truthy(get("is_fraud"))
    fraud_type = get("fraud_type")
    fraud_type = fraud_type if is_fraud and fraud_type in FRAUD_TYPES else None
    return txn, is_fraud, fraud_type
