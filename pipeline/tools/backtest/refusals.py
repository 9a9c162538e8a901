"""Refused rows: counted by reason class, with example row numbers, optionally written to a CSV file
(card numbers masked), and a limit above which a backtest stops before it replays anything."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import orjson

from pipeline.contracts.json_schemas import SchemaViolation
from pipeline.contracts.validation import find_card_numbers, mask_card_numbers
from pipeline.tools.backtest.formats import CardTokeniser, may_hold_card_number, text_of

EXAMPLES = 3
"""Row numbers shown per reason."""

_RULES = {
    "minimum": "below minimum",
    "exclusiveMinimum": "below minimum",
    "maximum": "above maximum",
    "exclusiveMaximum": "above maximum",
    "enum": "not an allowed value",
    "pattern": "malformed",
    "format": "malformed",
    "type": "wrong type",
    "const": "wrong value",
    "maxLength": "too long",
    "anyOf": "malformed",
    "required": "missing",
    "additionalProperties": "unknown field",
}


class BacktestError(ValueError):
    """The input cannot be read or mapped; the message says which row or column."""


class Refused(BacktestError):
    """One row cannot be mapped: ``reason`` is its class (``event_time unreadable``), ``detail`` the
    particular problem (never a card number)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def schema_reason(exc: SchemaViolation) -> Refused:
    """A schema violation as a refusal: ``schema: <field> <problem>`` (``schema: amount below minimum``)."""
    name = ".".join(str(part) for part in exc.path[1:]) or "transaction"
    problem = _RULES.get(str(exc.rule), str(exc.rule))
    if exc.rule == "type" and exc.value is None:
        problem = "missing"
    return Refused(f"schema: {name} {problem}", str(exc.message).removeprefix("data."))


@dataclass
class Refusals:
    """Rows read and rows refused, per reason class, with the first row numbers of each reason.
    ``sink`` (a :class:`RefusedWriter`, for example) receives every refused row."""

    rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[int]] = field(default_factory=dict)
    sink: Callable[[int, Refused, Mapping[str, Any]], None] | None = None

    @property
    def refused(self) -> int:
        return sum(self.counts.values())

    @property
    def fraction(self) -> float:
        return self.refused / self.rows if self.rows else 0.0

    def add(self, number: int, refusal: Refused, row: Mapping[str, Any]) -> None:
        self.counts[refusal.reason] += 1
        shown = self.examples.setdefault(refusal.reason, [])
        if len(shown) < EXAMPLES:
            shown.append(number)
        if self.sink is not None:
            self.sink(number, refusal, row)

    def lines(self) -> list[str]:
        """``refused: N of M rows (x %)``, then one line per reason: count and example rows."""
        if not self.refused:
            return [f"refused: 0 of {self.rows:,} rows"]
        lines = [f"refused: {self.refused:,} of {self.rows:,} rows ({100 * self.fraction:.2f} %)"]
        width = max(len(reason) for reason in self.counts)
        for reason, count in sorted(self.counts.items(), key=lambda item: (-item[1], item[0])):
            numbers = self.examples[reason]
            more = ", ..." if count > len(numbers) else ""
            rows = "row" if count == 1 else "rows"
            lines.append(f"  {reason:<{width}}  {count:>9,}  {rows} {', '.join(map(str, numbers))}{more}")
        return lines

    def over(self, limit: float) -> bool:
        return self.rows == 0 or self.fraction > limit or self.refused == self.rows

    def check(self, limit: float) -> None:
        """Raise BacktestError with the summary if more than ``limit`` (a fraction) of the rows, or
        every row, was refused."""
        if self.rows == 0:
            raise BacktestError("the input has no rows")
        if self.over(limit):
            summary = "\n".join(self.lines())
            raise BacktestError(
                f"{100 * self.fraction:.2f} % of the rows refused, more than --max-refused "
                f"{100 * limit:g} %; nothing was replayed\n{summary}"
            )


def masked(value: Any) -> Any:
    """A cell or text fit to be written: card numbers in it (as the pipeline finds them) masked,
    all but their last four digits."""
    if value is None or isinstance(value, bool | float):
        return value
    text = str(value)
    if not may_hold_card_number(text) or not find_card_numbers(text.encode()):
        return value
    return mask_card_numbers(text.encode()).decode()


class RefusedWriter:
    """Writes refused rows to a CSV file: ``row`` (data row number, 1 = the first row after a
    header), ``reason``, ``detail``, then the row's own columns; card numbers are replaced by their
    token (with the run's key) in ``card_columns`` and masked elsewhere. Columns a row has beyond the
    first refused row's go to ``more`` as JSON."""

    def __init__(
        self, path: Path, tokeniser: CardTokeniser, card_columns: frozenset[str] = frozenset()
    ) -> None:
        self.path, self._tokeniser, self._cards = path, tokeniser, card_columns
        self._handle: TextIO | None = None
        self._writer: Any = None
        self._columns: list[str] = []
        self.written = 0

    def __enter__(self) -> RefusedWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handle is not None:
            if not self.written:
                self._writer.writerow(["row", "reason", "detail"])
            self._handle.close()

    def __call__(self, number: int, refusal: Refused, row: Mapping[str, Any]) -> None:
        if self._writer is None:
            raise RuntimeError("RefusedWriter is used as a context manager")
        if not self.written:
            self._columns = [str(name) for name in row]
            self._writer.writerow(["row", "reason", "detail", *self._columns, "more"])
        cells = [self._cell(name, row.get(name)) for name in self._columns]
        extra = {str(k): self._cell(str(k), v) for k, v in row.items() if str(k) not in self._columns}
        more = orjson.dumps(extra, default=str).decode() if extra else ""
        self._writer.writerow([number, refusal.reason, masked(refusal.detail), *cells, more])
        self.written += 1

    def _cell(self, name: str, value: Any) -> Any:
        if name in self._cards and value not in (None, ""):
            return self._tokeniser.token(text_of(value))[0]
        return masked(value)
