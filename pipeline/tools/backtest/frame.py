"""A whole input file held as columns (``Frame``), for the columnar mapper (columnar.py).

``read_frame(path)`` reads the same files as ``read_rows`` (input.py) and gives the same values:
a CSV through ``csv.reader`` as lists (``csv.DictReader`` is that reader plus a dict per row), JSON
lines through the same loop as ``read_rows``, Parquet as Arrow columns. ``row(i)`` rebuilds the
row exactly as ``read_rows`` yields it, for the rows the columnar mapper hands to the row mapper
and for the refused-rows file. Rows whose columns do not line up with the header (a short or
long CSV row, a JSON line that is not an object) are ``irregular``: they always take the row
mapper."""

from __future__ import annotations

import contextlib
import csv
import gzip
import itertools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.tools.backtest.input import _delimiter, _rows, read_rows
from pipeline.tools.backtest.refusals import BacktestError


class Frame:
    """The rows of a file as columns: ``column(name)`` (None where a row has no such key),
    ``row(i)`` (the row as ``read_rows`` gives it), ``count``, ``irregular`` (row indices)."""

    count: int
    irregular: frozenset[int] = frozenset()

    def column(self, name: str) -> Sequence[Any]:
        raise NotImplementedError

    def row(self, index: int) -> Mapping[str, Any]:
        raise NotImplementedError

    def has(self, name: str) -> bool:
        """Whether any row has the key ``name``."""
        raise NotImplementedError


class RowsFrame(Frame):
    """Rows that are dicts already (JSON lines, or rows given by a caller)."""

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self.rows = rows if isinstance(rows, list) else list(rows)
        self.count = len(self.rows)
        self.irregular = frozenset(i for i, row in enumerate(self.rows) if not isinstance(row, Mapping))
        self._dicts = all(row.__class__ is dict for row in self.rows)
        self._columns: dict[str, Sequence[Any]] | None = None

    def column(self, name: str) -> Sequence[Any]:
        if self.irregular:
            return [row.get(name) if isinstance(row, Mapping) else None for row in self.rows]
        if not self._dicts:
            return [row.get(name) for row in self.rows]
        if self._columns is None:  # every key of the first row at once, if every row has them
            self._columns = {}
            names = list(self.rows[0]) if self.rows else []
            if len(names) > 1:
                with contextlib.suppress(KeyError):
                    cells = zip(*map(operator.itemgetter(*names), self.rows), strict=True)
                    self._columns = dict(zip(names, cells, strict=True))
        column = self._columns.get(name)
        if column is not None:
            return column
        return list(map(dict.get, self.rows, itertools.repeat(name)))

    def row(self, index: int) -> Mapping[str, Any]:
        return self.rows[index]

    def has(self, name: str) -> bool:
        return any(name in row for row in self.rows if isinstance(row, Mapping))


class CsvFrame(Frame):
    """A CSV file's rows as ``csv.reader`` lists under its header: ``row(i)`` is what
    ``csv.DictReader`` makes of it (a duplicated header name keeps the later cell, a short row's
    missing cells are None, a long row's extra cells a list under the key None)."""

    def __init__(self, names: list[str], rows: list[list[str]]) -> None:
        self.names, self.rows, self.count = names, rows, len(rows)
        width = len(names)
        self.irregular = frozenset(i for i, row in enumerate(rows) if len(row) != width)
        self._index = {name: position for position, name in enumerate(names)}  # the later one wins
        self._columns: list[tuple[str, ...]] | None = None

    def column(self, name: str) -> Sequence[Any]:
        position = self._index.get(name)
        if position is None:
            return [None] * self.count
        if self.irregular:
            return [row[position] if len(row) > position else None for row in self.rows]
        if self._columns is None:
            self._columns = list(zip(*self.rows, strict=True)) if self.rows else []
        return self._columns[position] if self._columns else ()

    def row(self, index: int) -> Mapping[str, Any]:
        row, names = self.rows[index], self.names
        out: dict[Any, Any] = dict(zip(names, row, strict=False))
        if len(names) < len(row):
            out[None] = row[len(names) :]
        elif len(names) > len(row):
            for name in names[len(row) :]:
                out[name] = None
        return out

    def has(self, name: str) -> bool:
        return name in self._index


class ArrowFrame(Frame):
    """A Parquet file read as an Arrow table."""

    def __init__(self, table: Any) -> None:
        self.table, self.count = table, table.num_rows
        self._columns: dict[str, list[Any]] = {}

    def column(self, name: str) -> Sequence[Any]:
        if name not in self.table.column_names:
            return [None] * self.count
        values = self._columns.get(name)
        if values is None:
            values = self._columns[name] = self.table.column(name).to_pylist()
        return values

    def row(self, index: int) -> Mapping[str, Any]:
        return self.table.slice(index, 1).to_pylist()[0]

    def has(self, name: str) -> bool:
        return name in self.table.column_names


def read_frame(path: Path) -> Frame:
    """The whole file at ``path`` as a Frame; the same checks and errors as ``read_rows``."""
    read_rows(path)  # the format and the path, checked at once (it reads nothing yet)
    stem = path.name.lower().removesuffix(".gz")
    if stem.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise BacktestError("reading Parquet needs pyarrow: pip install pyarrow") from None
        return ArrowFrame(pq.ParquetFile(path).read())
    if not stem.endswith((".csv", ".tsv")):
        return RowsFrame(list(_rows(path, stem)))
    opener: Callable[..., Any] = gzip.open if path.name.lower().endswith(".gz") else open
    simple = _simple_csv(path, stem, opener)
    if simple is not None:
        return simple
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        header = handle.readline()
        delimiter = "\t" if stem.endswith(".tsv") else _delimiter(header)
        reader = csv.reader(itertools.chain([header], handle), delimiter=delimiter)
        names = next(reader, None)
        if names is None:
            return RowsFrame([])
        return CsvFrame(names, [row for row in reader if row])


def _simple_csv(path: Path, stem: str, opener: Callable[..., Any]) -> Frame | None:
    """A CSV file without quotes, NUL characters or carriage returns (but before a line feed),
    whose header names differ and whose every line has as many cells as the header (or none), read
    by Arrow's CSV reader:
    in such a file a row is its line split at the delimiter, as ``csv.reader`` splits it too.
    None for any other file (``csv.reader`` reads it)."""
    with opener(path, "rb") as handle:
        data = handle.read()
    data = data.removeprefix(b"\xef\xbb\xbf")  # what utf-8-sig drops
    if not data or b'"' in data or b"\x00" in data or data.count(b"\r") != data.count(b"\r\n"):
        return None
    try:
        header = data[: data.index(b"\n")].removesuffix(b"\r").decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    delimiter = "\t" if stem.endswith(".tsv") else _delimiter(header)
    names = header.split(delimiter)
    if len(set(names)) != len(names) or not all(names):
        return None
    import pyarrow as pa
    from pyarrow import csv as arrow_csv

    try:
        table = arrow_csv.read_csv(
            pa.py_buffer(data),
            read_options=arrow_csv.ReadOptions(use_threads=False),
            parse_options=arrow_csv.ParseOptions(delimiter=delimiter, ignore_empty_lines=True),
            convert_options=arrow_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, ValueError):  # a line of another width, or not UTF-8
        return None
    if table.column_names != names:
        return None
    return ArrowFrame(table)
