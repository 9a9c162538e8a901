"""Reading labelled transaction files (CSV, TSV, JSON lines, Parquet) and mapping their rows to the
transaction contract (schemas/transaction.v1.schema.json).

``transactions(rows, mapping, refusals)`` yields every row that maps to a valid transaction as
(transaction, is_fraud, fraud_type), checked against the contract, and counts the others in
``refusals`` by reason. How values are read is in formats.py, the mapping in mapping.py, one row's
conversion in convert.py, refusals in refusals.py, the run's summary and dry run in summary.py."""

from __future__ import annotations

import csv
import gzip
import itertools
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from pipeline.contracts.json_schemas import SchemaViolation, validator
from pipeline.tools.backtest.convert import Converter, Mapped, Observed, card_columns
from pipeline.tools.backtest.mapping import (
    DEFAULTS,
    ColumnMapping,
    build_mapping,
    parse_column_map,
    with_options,
)
from pipeline.tools.backtest.refusals import BacktestError, Refusals, Refused, schema_reason

__all__ = [
    "DEFAULTS",
    "BacktestError",
    "ColumnMapping",
    "Converter",
    "Mapped",
    "Observed",
    "Refusals",
    "Refused",
    "build_mapping",
    "card_columns",
    "normalise",
    "parse_column_map",
    "read_rows",
    "transactions",
]


# --- reading -----------------------------------------------------------------------------------
FORMATS = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet")


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a CSV (comma, semicolon, tab or pipe separated: told from the header), TSV,
    JSON-lines (.jsonl/.ndjson, optionally .gz) or Parquet file, read lazily. The file and its
    format are checked at once, so a wrong path fails here with one clear message."""
    stem = path.name.lower().removesuffix(".gz")
    if not stem.endswith(FORMATS):
        raise BacktestError(f"{path}: unknown format (use .csv, .tsv, .jsonl[.gz] or .parquet)")
    if not path.is_file():
        raise BacktestError(f"{path}: no such file")
    return _rows(path, stem)


def _delimiter(header: str) -> str:
    counts = {mark: header.count(mark) for mark in (",", ";", "\t", "|")}
    best = max(counts, key=lambda mark: counts[mark])
    return best if counts[best] > counts[","] else ","


def _rows(path: Path, stem: str) -> Iterator[dict[str, Any]]:
    if stem.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise BacktestError("reading Parquet needs pyarrow: pip install pyarrow") from None
        for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
            yield from batch.to_pylist()
        return
    opener: Callable[..., Any] = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        if stem.endswith((".csv", ".tsv")):
            header = handle.readline()
            delimiter = "\t" if stem.endswith(".tsv") else _delimiter(header)
            yield from csv.DictReader(itertools.chain([header], handle), delimiter=delimiter)
            return
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise BacktestError(f"{path}:{number}: not JSON ({exc})") from None


def transactions(
    rows: Iterable[Mapping[str, Any]],
    mapping: ColumnMapping | Mapping[str, str] | None = None,
    refusals: Refusals | None = None,
    *,
    token_key: bytes | None = None,
    observed: Observed | None = None,
) -> Iterator[Mapped]:
    """Every row that maps to a transaction the contract accepts, as (transaction, is_fraud,
    fraud_type), in file order; every other row is counted in ``refusals`` by reason (the schema's
    included) and skipped, a repeated transaction_id too. Row numbers count data rows from 1.
    Card numbers are tokenised with ``token_key`` (None: a random key, ``observed.random_key``).
    Raises BacktestError at the first row if a mapped or required column is missing."""
    converter = Converter(as_mapping(mapping), token_key, observed)
    refusals = refusals if refusals is not None else Refusals()
    check = validator("transaction")
    seen: set[str] = set()
    for number, row in enumerate(rows, 1):
        if number == 1:
            converter.check_columns(row)
        refusals.rows += 1
        mapped = map_row(converter, check, seen, refusals, row, number)
        if mapped is not None:
            converter.commit()
            yield mapped


def map_row(
    converter: Converter,
    check: Callable[[Any], Any],
    seen: set[str],
    refusals: Refusals,
    row: Mapping[str, Any],
    number: int,
) -> Mapped | None:
    """One row mapped and checked against the contract (``check``) and the ids ``seen`` so far
    (the row's id is added to them); None, counted in ``refusals``, if it is refused. The
    converter's observations of a mapped row wait for ``converter.commit()``."""
    try:
        txn, is_fraud, fraud_type = converter.convert(row, number)
        try:
            check(txn)
        except SchemaViolation as exc:
            raise schema_reason(exc) from None
        if txn["transaction_id"] in seen:
            raise Refused("transaction_id duplicate")
    except Refused as refusal:
        refusals.add(number, refusal, row)
        return None
    seen.add(txn["transaction_id"])
    return txn, is_fraud, fraud_type


def as_mapping(mapping: ColumnMapping | Mapping[str, str] | None) -> ColumnMapping:
    if isinstance(mapping, ColumnMapping):
        return mapping
    return with_options(ColumnMapping(), pairs=mapping or {})


_converters: dict[tuple[tuple[str, str], ...], Converter] = {}


def normalise(
    row: Mapping[str, Any], column_map: ColumnMapping | Mapping[str, str] | None = None
) -> tuple[dict[str, Any], bool, str | None]:
    """A data-set row -> (transaction per our schema, is_fraud, fraud type), not yet checked against
    the schema; raises Refused (a BacktestError) naming the reason class. With a plain column map,
    card numbers are tokenised with a key drawn once per process."""
    if isinstance(column_map, ColumnMapping):
        if not _last or _last[0] is not column_map:
            _last[:] = [column_map, Converter(column_map, _process_key())]
        return _last[1].convert(row, 0)
    key = tuple(sorted((column_map or {}).items()))
    converter = _converters.get(key)
    if converter is None:
        converter = _converters[key] = Converter(as_mapping(dict(key)), _process_key())
    return converter.convert(row, 0)


_PROCESS_KEY: list[bytes] = []
_last: list[Any] = []  # [the ColumnMapping last given to normalise, its Converter]


def _process_key() -> bytes:
    if not _PROCESS_KEY:
        _PROCESS_KEY.append(secrets.token_bytes(32))
    return _PROCESS_KEY[0]
