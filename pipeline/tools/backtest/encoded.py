"""Columns as their distinct values and each row's index among them (``Enc``), and scans of a
whole column's text at once: the columnar mapper's (columnar.py) tools."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pipeline.tools.backtest.formats import may_hold_card_number
from pipeline.tools.backtest.frame import ArrowFrame, Frame

FAIL: Any = object()
"""What a field's step gives for a value it leaves to the row mapper."""


def guard(step: Callable[[Any], Any], value: Any) -> Any:
    """``step(value)``, or FAIL if it raises: the row mapper refuses the value, or fails on it."""
    try:
        return step(value)
    except Exception:
        return FAIL


class Enc:
    """A column as its distinct values and, for each row, the index of its value among them."""

    __slots__ = ("codes", "values")

    def __init__(self, values: list[Any], codes: np.ndarray) -> None:
        self.values, self.codes = values, codes

    @classmethod
    def of(cls, column: Sequence[Any]) -> Enc:
        """Only text, integers, booleans, floats and None are taken once per distinct value, and
        values of different types apart (``1``, ``1.0`` and ``True``); floats only when no ``-0.0``
        is among them (it equals ``0.0`` and maps apart). Equal values of other types may map
        apart (equal times in different zones, ``Decimal("1.0")`` and ``Decimal("1.00")``), so
        they stay one per row, as do unhashable ones (a list in a JSON line)."""
        count = len(column)
        if _distinct_start(column):  # an id or a time: one per row, nothing to share
            return cls(list(column), np.arange(count))
        kinds = set(map(type, column))
        if kinds <= _TEXT:
            encoded = _arrow_encoded(column)
            if encoded is not None:
                return encoded
            kinds = {str}
        single = len(kinds - {type(None)}) == 1 and not kinds & {float}  # no type to take for another
        if single and kinds <= _NUMBERS:
            values = list(dict.fromkeys(column))
            position = {value: i for i, value in enumerate(values)}
            return cls(values, np.fromiter(map(position.__getitem__, column), np.intp, count))
        if kinds <= _WHOLE or (kinds <= _NUMBERS and not _negative_zero(column)):
            keys = list(zip(map(type, column), column, strict=True))
            typed = {key: i for i, key in enumerate(dict.fromkeys(keys))}
            return cls(
                [value for _, value in typed], np.fromiter(map(typed.__getitem__, keys), np.intp, count)
            )
        return cls(list(column), np.arange(count))

    @classmethod
    def of_frame(cls, frame: Frame, column: str) -> Enc:
        """A column of ``frame``: Arrow's text columns encoded by Arrow."""
        if isinstance(frame, ArrowFrame) and frame.has(column):
            import pyarrow as pa

            array = frame.table.column(column)
            if array.num_chunks and _distinct_start(array.chunk(0).slice(0, _START).to_pylist()):
                return cls.of(frame.column(column))
            if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
                return _dictionary(array.combine_chunks())
        return cls.of(frame.column(column))

    def map(self, step: Callable[[Any], Any]) -> Enc:
        return Enc([step(value) for value in self.values], self.codes)

    def flags(self, test: Callable[[Any], bool]) -> np.ndarray:
        """``test`` of each row's value, as a boolean array."""
        if not self.values:
            return np.zeros(len(self.codes), dtype=bool)
        return np.fromiter(map(test, self.values), bool, len(self.values))[self.codes]

    def failed(self) -> np.ndarray | None:
        """The rows whose value is ``FAIL``; None if none is."""
        if not any(value is FAIL for value in self.values):
            return None
        return self.flags(lambda value: value is FAIL)

    def rows(self) -> list[Any]:
        """Each row's value."""
        return _objects(self.values)[self.codes].tolist()


def _objects(values: list[Any]) -> np.ndarray:
    return np.fromiter(values, dtype=object, count=len(values))


def pairs(first: Enc, second: Enc) -> Enc:
    """The rows' (first value, second value), each distinct pair once."""
    key = first.codes.astype(np.int64) * max(len(second.values), 1) + second.codes
    unique, codes = np.unique(key, return_inverse=True)
    size = max(len(second.values), 1)
    values = [(first.values[k // size], second.values[k % size]) for k in unique.tolist()]
    return Enc(values, codes.reshape(-1))


_TEXT = {str, type(None)}
_WHOLE = {str, type(None), int, bool}
_NUMBERS = {str, type(None), int, bool, float}


_START = 1000


def _distinct_start(column: Sequence[Any]) -> bool:
    """Whether the first values of a long column all differ (an id or a time): encoding it would
    only cost. A guess: every column maps the same way encoded or not."""
    if len(column) < 2 * _START:
        return False
    try:
        return len(set(column[:_START])) == _START
    except TypeError:
        return False


def _negative_zero(column: Sequence[Any]) -> bool:
    return 0.0 in column and any(v.__class__ is float and v == 0.0 and str(v)[0] == "-" for v in column)


def _dictionary(array: Any) -> Enc:
    """An Arrow text array as an Enc (Arrow finds the distinct values)."""
    encoded = array.dictionary_encode()
    values = encoded.dictionary.to_pylist()
    indices = encoded.indices
    if indices.null_count:
        indices = indices.fill_null(len(values))
        values.append(None)
    return Enc(values, indices.to_numpy().astype(np.intp))


def _arrow_encoded(column: Sequence[Any]) -> Enc | None:
    """A column of text and None, encoded by Arrow; None if Arrow cannot hold its text."""
    import pyarrow as pa

    try:
        return _dictionary(pa.array(column, type=pa.string()))
    except (pa.ArrowException, UnicodeError):  # a lone surrogate, say
        return None


_PLAIN_IDS = re.compile(r"(?:[A-Za-z0-9_.:-]{1,64}\n)*")
_PLAIN_TOKENS = re.compile(r"(?:tok_[A-Za-z0-9]{8,64}\n)*")


def joined_text(values: Sequence[Any]) -> str | None:
    """The values joined by newlines when they are all text without one, else None."""
    try:
        text = "\n".join(values)
    except TypeError:
        return None
    return text if text.count("\n") == len(values) - 1 else None


def plain_ids(values: Sequence[Any]) -> bool:
    """Whether every value is text the row mapper keeps as it is, as read and as an id: of the
    id pattern (so without surrounding space) and holding no card number. One scan of the joined
    values: a run of digits, spaces and dashes never crosses a newline."""
    text = joined_text(values)
    return (
        text is not None
        and bool(values)
        and _PLAIN_IDS.fullmatch(text + "\n") is not None
        and not _card_digits(text)
    )


def _card_digits(text: str, shortest: int = 13) -> bool:
    """``may_hold_card_number(text, shortest)`` (``shortest`` digits, each pair at most one space or
    dash apart), over a whole column's text at once: for ASCII text with numpy, which the regular
    expression is not."""
    if not text.isascii():
        return may_hold_card_number(text, shortest)
    data = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    digits = np.flatnonzero((data >= 48) & (data <= 57))
    if len(digits) < shortest:
        return False
    gaps = np.diff(digits)
    separator = (data == 32) | (data == 45)
    joined = (gaps == 1) | ((gaps == 2) & separator[digits[:-1] + 1])
    breaks = np.flatnonzero(~joined)
    runs = np.diff(np.concatenate(([-1], breaks, [len(joined)]))) - 1
    return bool(runs.max() >= shortest - 1)


def plain_tokens(values: Sequence[Any]) -> bool:
    """Whether every value is text ``CardTokeniser.token`` keeps as it is: a token (``tok_`` and 8-64
    letters and digits) without the 11 digits in a row of a card number."""
    text = joined_text(values)
    return (
        text is not None
        and bool(values)
        and _PLAIN_TOKENS.fullmatch(text + "\n") is not None
        and not _card_digits(text, 11)
    )


def present(value: Any) -> Any:
    return FAIL if value is None else value


def plain_text(values: list[Any]) -> bool:
    """Whether each value is None or text that ``Converter.get`` keeps as it is (not empty, no
    space around it). Text without newlines is scanned joined, at once."""
    present = [value for value in values if value is not None]
    text = joined_text(present)
    if text is not None:
        return not present or _EDGE_SPACE.search(text) is None
    return all(
        value.__class__ is str and value and not value[0].isspace() and not value[-1].isspace()
        for value in present
    )


_EDGE_SPACE = re.compile(r"(?:\A|\n)(?:\s|\Z)|\s(?:\n|\Z)")
r"""In values joined by newlines (none within them): an empty value, or one starting or ending with
white space (``\s`` is ``str.isspace``)."""
