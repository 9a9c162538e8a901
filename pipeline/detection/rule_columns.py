"""Rules evaluated on a batch held as columns: each rule's ``when`` compiled to array operations
that give exactly the per-row result of ``Rule.matches`` (pipeline/detection/rules.py), nulls,
TypeErrors, division by zero and ``and``/``or`` values included; what cannot be reproduced exactly
is reported, and the rule is then checked row by row.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# --- columnar evaluation ------------------------------------------------------------------------
# Each sub-expression is evaluated for all rows at once into a _Vec: its values, where they are
# None, and per row the exception Python would have raised evaluating it (0: none). ``and``/``or``
# and chained comparisons keep a mask of the rows that still evaluate, so an error in a branch
# Python would skip never counts, and the first error of a row is the one it reports.
_OK, _TYPE_ERROR, _ZERO_DIVISION = 0, 1, 2
_EXACT_INT = 2**53  # ints up to this are floats exactly, and so is int arithmetic that stays below


class NotColumnar(Exception):
    """The expression or this batch's values need something the columnar plan cannot reproduce."""


@dataclass(frozen=True)
class _Vec:
    """One sub-expression's value in every row.

    ``values`` is float64 (numbers; bools as 0/1) or, when ``text``, an object array of str; in null
    or errored rows it holds a placeholder ("" for text). ``maybe_int``: some rows may hold a Python
    int or bool (constants, comparison results), whose arithmetic is exact where floats' is not.
    """

    values: np.ndarray
    null: np.ndarray
    err: np.ndarray
    text: bool = False
    maybe_int: bool = False


Plan = Callable[["ColumnBatch"], _Vec]


class ColumnBatch:
    """The columns of one batch, normalised once per name."""

    def __init__(self, columns: Mapping[str, np.ndarray], size: int) -> None:
        for name, column in columns.items():
            if np.ndim(column) != 1 or len(column) != size:
                raise ValueError(f"column {name!r} has shape {np.shape(column)}, expected ({size},)")
        self.columns, self.size = columns, size
        self.ok = np.zeros(size, dtype=np.int8)
        self.no_null = np.zeros(size, dtype=bool)
        self._names: dict[str, _Vec | NotColumnar] = {}

    def name(self, name: str) -> _Vec:
        if name not in self._names:
            try:
                self._names[name] = self._load(name)
            except NotColumnar as exc:
                self._names[name] = exc
        vec = self._names[name]
        if isinstance(vec, NotColumnar):
            raise vec
        return vec

    def _load(self, name: str) -> _Vec:
        if name not in self.columns:
            return _Vec(np.full(self.size, math.nan), np.ones(self.size, dtype=bool), self.ok)
        column = _normalised(self.columns[name])
        if column.dtype == np.float64:
            return _Vec(column, np.isnan(column), self.ok)
        null = np.fromiter((value is None for value in column), dtype=bool, count=self.size)
        if not all(isinstance(value, str) for value in column[~null]):
            raise NotColumnar(f"column {name!r} holds values that are neither str nor None")
        values = column.copy()
        values[null] = ""
        return _Vec(values, null, self.ok, text=True)

    def constant(self, value: object) -> _Vec:
        if value is None:
            return _Vec(np.full(self.size, math.nan), np.ones(self.size, dtype=bool), self.ok)
        if isinstance(value, str):
            return _Vec(np.full(self.size, value, dtype=object), self.no_null, self.ok, text=True)
        number = float(value)  # type: ignore[arg-type]
        return _Vec(np.full(self.size, number), self.no_null, self.ok, maybe_int=not isinstance(value, float))


def _normalised(column: np.ndarray) -> np.ndarray:
    """A column as float64 (numbers, bools) or as an object array whose nulls (None, NaN) are None."""
    column = np.asarray(column)
    if column.dtype.kind in "fiub":
        return column.astype(np.float64, copy=False)
    if column.dtype.kind not in "OUS":
        raise TypeError(f"unsupported column dtype {column.dtype}")
    out = column.astype(object)
    for i, value in enumerate(out):
        if isinstance(value, float) and math.isnan(value):
            out[i] = None
        elif isinstance(value, str) and type(value) is not str:
            out[i] = str(value)  # numpy.str_ from a "U" array
        elif isinstance(value, bytes):
            out[i] = value.decode()
    return out


def row_env(columns: Mapping[str, np.ndarray], index: int) -> dict[str, Any]:
    """Row ``index`` of a batch as the environment ``Rule.matches`` takes (nulls as None)."""
    env: dict[str, Any] = {}
    for name, column in columns.items():
        column = _normalised(column)
        value = column[index]
        if column.dtype == np.float64:
            value = None if math.isnan(value) else float(value)
        env[name] = value
    return env


def run_plan(plan: Plan, batch: ColumnBatch, rule_id: str) -> np.ndarray:
    """The rows where the rule holds; raises ZeroDivisionError as ``matches`` would."""
    with np.errstate(all="ignore"):
        vec = plan(batch)
        truth = _truth(vec)
    divided = np.flatnonzero(vec.err == _ZERO_DIVISION)
    if divided.size:
        raise ZeroDivisionError(f"float division by zero in rule {rule_id} (row {divided[0]})")
    return truth & (vec.err == _OK)


def compile_columnar(tree: ast.Expression) -> Plan | str:
    """The plan for a checked ``when``, or why it is evaluated row by row."""
    try:
        return _compile(tree.body, value=False)
    except NotColumnar as exc:
        return str(exc)


NumericPlan = Callable[[Mapping[str, np.ndarray]], Any]
"""A ``when`` on columns that are all numbers (float64, no NaN): its truth per row (or one bool)."""
_NUMERIC_ORDER: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
    ast.Eq: np.equal, ast.NotEq: np.not_equal,
}  # fmt: skip


def compile_numeric(tree: ast.Expression) -> tuple[NumericPlan, frozenset[str]] | None:
    """A plan without nulls or errors for a ``when`` made of names, number constants (ints up to
    2**53), comparisons other than in / not in, ``and``, ``or``, ``not`` and a unary minus, with the
    names it reads; None for any other expression. Valid only on a batch whose every column it
    reads is float64 without NaN: there no row is null, nothing Python evaluates can raise (no
    division), comparisons of floats and exact ints are IEEE's, and a row's ``and`` / ``or`` holds
    exactly when its operands' truths say so, whichever operand Python returns."""
    names: set[str] = set()
    try:
        return _numeric_truth(tree.body, names), frozenset(names)
    except NotColumnar:
        return None


def _numeric_value(node: ast.expr, names: set[str]) -> NumericPlan:
    if isinstance(node, ast.Name):
        name = node.id
        names.add(name)
        return lambda columns: columns[name]
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
        if isinstance(node.value, int) and abs(node.value) > _EXACT_INT:
            raise NotColumnar("integer constant beyond 2**53")
        number = float(node.value)
        return lambda columns: number
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        operand = _numeric_value(node.operand, names)
        return lambda columns: -operand(columns)
    raise NotColumnar(type(node).__name__)


def _numeric_truth(node: ast.expr, names: set[str]) -> NumericPlan:
    if isinstance(node, ast.BoolOp):
        parts = [_numeric_truth(value, names) for value in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or

        def both(columns: Mapping[str, np.ndarray]) -> Any:
            result = parts[0](columns)
            for part in parts[1:]:
                result = combine(result, part(columns))
            return result

        return both
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        operand = _numeric_truth(node.operand, names)
        return lambda columns: np.logical_not(operand(columns))
    if isinstance(node, ast.Compare):
        if not all(type(op) in _NUMERIC_ORDER for op in node.ops):
            raise NotColumnar("in / not in")
        values = [_numeric_value(item, names) for item in (node.left, *node.comparators)]
        ops = [_NUMERIC_ORDER[type(op)] for op in node.ops]

        def held(columns: Mapping[str, np.ndarray]) -> Any:
            operands = [value(columns) for value in values]
            result = ops[0](operands[0], operands[1])
            for k in range(1, len(ops)):
                result = np.logical_and(result, ops[k](operands[k], operands[k + 1]))
            return result

        return held
    value = _numeric_value(node, names)
    return lambda columns: np.not_equal(value(columns), 0.0)


def _truth(vec: _Vec) -> np.ndarray:
    truth = vec.values != "" if vec.text else vec.values != 0.0  # NaN is true, as in Python
    return np.asarray(truth, dtype=bool) & ~vec.null


def _first_error(err: np.ndarray, where: np.ndarray, code: int | np.ndarray) -> np.ndarray:
    """``err`` with ``code`` in the rows of ``where`` that have no error yet."""
    return np.where((err == _OK) & where, code, err).astype(np.int8)


def _bools(values: np.ndarray, err: np.ndarray) -> _Vec:
    return _Vec(values.astype(np.float64), np.zeros(len(values), dtype=bool), err, maybe_int=True)


def _compile(node: ast.expr, value: bool) -> Plan:
    """A plan for ``node``; ``value=False`` when only its truth is used (it decides ``and``/``or``)."""
    if isinstance(node, ast.Name):
        name = node.id
        return lambda batch: batch.name(name)
    if isinstance(node, ast.Constant):
        constant = node.value
        if not (constant is None or isinstance(constant, str | int | float)):
            raise NotColumnar(f"constant {constant!r}")
        if isinstance(constant, int) and abs(constant) > _EXACT_INT:
            raise NotColumnar(f"integer constant beyond 2**53: {constant}")
        return lambda batch: batch.constant(constant)
    if isinstance(node, ast.BoolOp):
        return _compile_boolop(node, value)
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand, value=isinstance(node.op, ast.USub))
        if isinstance(node.op, ast.Not):
            return lambda batch: (lambda v: _bools(~_truth(v), v.err))(operand(batch))
        if isinstance(node.op, ast.USub):
            return lambda batch: _negate(operand(batch))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
        return _compile_binop(node)
    if isinstance(node, ast.Compare):
        return _compile_compare(node)
    raise NotColumnar(f"{type(node).__name__} outside the right side of in / not in")


def _negate(v: _Vec) -> _Vec:
    err = _first_error(v.err, v.null | v.text, _TYPE_ERROR)
    values = np.zeros(len(v.values)) if v.text else -v.values
    return _Vec(values, v.null, err, maybe_int=v.maybe_int)


def _compile_boolop(node: ast.BoolOp, value: bool) -> Plan:
    operands = [_compile(operand, value) for operand in node.values]
    conjunction = isinstance(node.op, ast.And)

    def run(batch: ColumnBatch) -> _Vec:
        err = batch.ok
        active = np.ones(batch.size, dtype=bool)  # rows whose result is not decided yet
        truth = np.zeros(batch.size, dtype=bool)
        picked: list[tuple[np.ndarray, _Vec]] = []
        for k, operand in enumerate(operands):
            v = operand(batch)
            err = _first_error(err, active, v.err)
            active = active & (v.err == _OK)
            t = _truth(v)
            # Python returns the first false operand of ``and`` (true of ``or``), else the last.
            decides = active if k == len(operands) - 1 else active & (t != conjunction)
            truth[decides] = t[decides]
            picked.append((decides, v))
            active = active & ~decides
        if not value:
            return _bools(truth, err)
        return _pick(picked, batch.size, err)

    return run


def _pick(picked: list[tuple[np.ndarray, _Vec]], size: int, err: np.ndarray) -> _Vec:
    """The value of ``and``/``or``: each row's from the operand that decided it."""
    kinds = {v.text for rows, v in picked if (rows & ~v.null).any()}
    if len(kinds) > 1:
        raise NotColumnar("and/or used as a value mixing strings and numbers")
    text = kinds == {True}
    values = np.full(size, "", dtype=object) if text else np.full(size, math.nan)
    null = np.zeros(size, dtype=bool)
    for rows, v in picked:
        null[rows] = v.null[rows]
        if v.text == text:
            values[rows] = v.values[rows]
    return _Vec(values, null, err, text=text, maybe_int=any(v.maybe_int for _, v in picked))


def _compile_binop(node: ast.BinOp) -> Plan:
    left, right = _compile(node.left, value=True), _compile(node.right, value=True)
    op = node.op

    def run(batch: ColumnBatch) -> _Vec:
        a, b = left(batch), right(batch)
        err = _first_error(a.err, b.err != _OK, b.err)
        null = a.null | b.null
        err = _first_error(err, null, _TYPE_ERROR)
        if a.text or b.text:
            if isinstance(op, ast.Mult):
                raise NotColumnar("* with a string (repetition)")
            if isinstance(op, ast.Add) and a.text and b.text:
                return _Vec(a.values + b.values, null, err, text=True)
            return _Vec(np.zeros(batch.size), null, _first_error(err, ~null, _TYPE_ERROR))
        if isinstance(op, ast.Div):
            err = _first_error(err, b.values == 0.0, _ZERO_DIVISION)
            return _Vec(a.values / b.values, null, err)
        values = (
            a.values + b.values
            if isinstance(op, ast.Add)
            else (a.values - b.values if isinstance(op, ast.Sub) else a.values * b.values)
        )
        maybe_int = a.maybe_int and b.maybe_int
        if maybe_int and (np.abs(values[err == _OK]) > _EXACT_INT).any():
            raise NotColumnar("integer arithmetic beyond 2**53")
        return _Vec(values, null, err, maybe_int=maybe_int)

    return run


_ORDER: dict[type[ast.cmpop], Callable[[np.ndarray, np.ndarray], Any]] = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}


def _compile_compare(node: ast.Compare) -> Plan:
    left = _compile(node.left, value=True)
    steps: list[tuple[ast.cmpop, list[Plan] | Plan]] = []
    for k, (op, comparator) in enumerate(zip(node.ops, node.comparators, strict=True)):
        if isinstance(op, ast.In | ast.NotIn):
            last = k == len(node.ops) - 1
            if not (last and isinstance(comparator, ast.List | ast.Tuple)):
                raise NotColumnar("in / not in without a list or tuple on its right, ending the comparison")
            if not all(isinstance(item, ast.Name | ast.Constant) for item in comparator.elts):
                raise NotColumnar("in / not in a list holding other than names and constants")
            steps.append((op, [_compile(item, value=True) for item in comparator.elts]))
        else:
            steps.append((op, _compile(comparator, value=True)))

    def run(batch: ColumnBatch) -> _Vec:
        current = left(batch)
        err = current.err
        active = err == _OK  # rows where every comparison so far held
        result = np.zeros(batch.size, dtype=bool)
        for op, comparator in steps:
            if isinstance(comparator, list):
                items = [item(batch) for item in comparator]
                held = np.zeros(batch.size, dtype=bool)
                for item in items:
                    held |= _equal(current, item)
                if isinstance(op, ast.NotIn):
                    held = ~held
                result = np.where(active, held, result)
                break
            other = comparator(batch)
            err = _first_error(err, active, other.err)
            active = active & (other.err == _OK)
            held, invalid = _compare(op, current, other)
            err = _first_error(err, active & invalid, _TYPE_ERROR)
            active = active & ~invalid
            result = np.where(active, held, result)
            active = active & held
            current = other
        return _bools(result, err)

    return run


def _equal(a: _Vec, b: _Vec) -> np.ndarray:
    """``a == b`` per row: None equals only None, a string never equals a number."""
    both = a.null & b.null
    if a.text != b.text:
        return both
    return both | (np.asarray(a.values == b.values, dtype=bool) & ~a.null & ~b.null)


def _compare(op: ast.cmpop, a: _Vec, b: _Vec) -> tuple[np.ndarray, np.ndarray]:
    """(result, rows where Python raises TypeError) of one comparison."""
    if isinstance(op, ast.Eq | ast.NotEq):
        equal = _equal(a, b)
        return (equal if isinstance(op, ast.Eq) else ~equal), np.zeros(len(equal), dtype=bool)
    invalid = a.null | b.null
    if a.text != b.text:
        return np.zeros(len(invalid), dtype=bool), np.ones(len(invalid), dtype=bool)
    return np.asarray(_ORDER[type(op)](a.values, b.values), dtype=bool), invalid
