"""Declarative rules: conditions over features and transaction fields, read from a YAML file.

A rule's ``when`` is a small expression language (comparisons, ``and``/``or``/``not``,
arithmetic, ``in`` lists, names of features and transaction fields). It is parsed and checked
when the file is loaded, so a typo is reported with the rule and the problem, never at run time.

``RuleSet.evaluate`` checks one transaction (a dict); ``RuleSet.evaluate_columns`` checks a batch
held as columns, with each rule compiled to array operations that give exactly the per-row result
(pipeline/detection/rule_columns.py).
"""

from __future__ import annotations

import ast
import os
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from pipeline.detection.rule_columns import (
    ColumnBatch,
    NotColumnar,
    NumericPlan,
    Plan,
    compile_columnar,
    compile_numeric,
    row_env,
    run_plan,
)
from pipeline.detection.vocabulary import FRAUD_TYPES

Action = Literal["review", "block"]
SHIPPED_RULES = Path(__file__).with_name("rules.yaml")
"""The rules the project ships (the default FRAUD_RULES_FILE)."""


def seed_rules_file(path: Path, shipped: Path = SHIPPED_RULES) -> bool:
    """Start the rule file ``path`` from ``shipped`` when it does not exist; True when it was made.
    Safe when several processes start at once (a worker and the monitor on one volume): the copy
    is written aside and linked into place, which fails if another process got there first."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.seed")
    aside.write_bytes(shipped.read_bytes())
    try:
        os.link(aside, path)
    except FileExistsError:
        return False
    finally:
        aside.unlink()
    return True


TRANSACTION_FIELDS = frozenset(
    {
        "amount",
        "currency",
        "channel",
        "country",
        "merchant_category",
        "merchant_id",
        "terminal_id",
        "card_token",
        "card_country",
        "customer_id",
        "device_id",
        "account_age_days",
        "hours_since_contact_change",
    }
)
_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.Compare,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.Eq,
    ast.NotEq,
    ast.In,
    ast.NotIn,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.List,
    ast.Tuple,
)


class RuleError(ValueError):
    """The rule file is malformed; the message names the file, the rule and the problem."""


@dataclass(frozen=True)
class Rule:
    """One rule: if ``when`` holds, the transaction is at least ``action`` as ``fraud_type``."""

    id: str
    fraud_type: str
    action: Action
    when: str
    reason: str
    _code: Any = field(repr=False, compare=False, default=None)
    # The columnar plan, or why there is none (str); compiled on first use when not given.
    _columnar: Plan | str | None = field(repr=False, compare=False, default=None)
    # The plan for batches of numbers only (``compile_numeric``), or False when there is none.
    _numeric: tuple[NumericPlan, frozenset[str]] | bool | None = field(
        repr=False, compare=False, default=None
    )

    def _numeric_plan(self) -> tuple[NumericPlan, frozenset[str]] | None:
        if self._numeric is None:
            plan = compile_numeric(ast.parse(self.when, mode="eval"))
            object.__setattr__(self, "_numeric", False if plan is None else plan)
        return self._numeric or None  # type: ignore[return-value]

    @property
    def columnar_fallback(self) -> str | None:
        """Why ``evaluate_columns`` checks this rule row by row; None when it is compiled."""
        plan = self._plan()
        return plan if isinstance(plan, str) else None

    def _plan(self) -> Plan | str:
        if self._columnar is None:
            object.__setattr__(self, "_columnar", compile_columnar(ast.parse(self.when, mode="eval")))
        assert self._columnar is not None
        return self._columnar

    def matches(self, env: Mapping[str, Any]) -> bool:
        """Whether the condition holds; a condition on a missing (null) value does not hold."""
        try:
            return bool(eval(self._code, {"__builtins__": {}}, _WithNulls(env)))
        except TypeError:  # e.g. None < 24 for a field the transaction left empty
            return False

    def explain(self, env: Mapping[str, Any]) -> str:
        """The reason with values filled in; a value that cannot be formatted is shown as it is."""
        parts = []
        for literal, name, spec, conversion in string.Formatter().parse(self.reason):
            parts.append(literal)
            if name is None:
                continue
            value = env.get(name)
            try:
                parts.append(format(value if conversion is None else repr(value), spec or ""))
            except (TypeError, ValueError):
                parts.append(str(value))
        return "".join(parts)


class _WithNulls(dict[str, Any]):
    """The evaluation environment: a known name missing from the transaction reads as None."""

    def __missing__(self, key: str) -> None:
        return None


@dataclass(frozen=True)
class RuleSet:
    """The loaded rules plus the block and allow lists."""

    rules: tuple[Rule, ...]
    blocked: Mapping[str, frozenset[str]] = field(default_factory=dict)
    allowed_cards: frozenset[str] = frozenset()
    source: str = "<memory>"

    @cached_property
    def names(self) -> tuple[str, ...]:
        """The feature and transaction-field names the rules' conditions read, sorted."""
        return tuple(
            sorted(
                {
                    node.id
                    for rule in self.rules
                    for node in ast.walk(ast.parse(rule.when, mode="eval"))
                    if isinstance(node, ast.Name)
                }
            )
        )

    def evaluate(self, env: Mapping[str, Any]) -> list[Rule]:
        """The rules that fire for this feature/transaction environment, in file order."""
        return [rule for rule in self.rules if rule.matches(env)]

    def evaluate_columns(self, columns: Mapping[str, np.ndarray], size: int) -> np.ndarray:
        """Bool matrix (rule, row): entry [r, i] is ``rules[r].matches(row_env(columns, i))``.

        Numeric columns are float64 with NaN for null; string columns are object arrays with None
        for null; a name absent from ``columns`` is null in every row. Like ``matches``, a division
        by zero in a row raises ZeroDivisionError. A rule the compiler cannot reproduce exactly
        (``Rule.columnar_fallback``, or values of an unexpected type in this batch) is checked row
        by row.
        """
        batch = ColumnBatch(columns, size)
        out = np.zeros((len(self.rules), size), dtype=bool)
        rows: list[dict[str, Any]] | None = None
        numbers: dict[str, bool] = {}  # name -> its column is float64 without NaN
        for index, rule in enumerate(self.rules):
            numeric = rule._numeric_plan()
            if numeric is not None and all(_numbers_only(columns, name, numbers) for name in numeric[1]):
                out[index] = numeric[0](columns)  # a single bool (constants only) fills the row
                continue
            plan = rule._plan()
            if not isinstance(plan, str):
                try:
                    out[index] = run_plan(plan, batch, rule.id)
                    continue
                except NotColumnar:
                    pass
            if rows is None:
                rows = [row_env(columns, i) for i in range(size)]
            out[index] = [rule.matches(env) for env in rows]
        return out

    def blocked_entity(self, txn: Mapping[str, Any]) -> str | None:
        """Which block list (cards, devices, merchants) names this transaction, if any."""
        for kind, txn_field in (
            ("cards", "card_token"),
            ("devices", "device_id"),
            ("merchants", "merchant_id"),
        ):
            if txn.get(txn_field) in self.blocked.get(kind, ()):
                return kind
        return None


def _numbers_only(columns: Mapping[str, np.ndarray], name: str, seen: dict[str, bool]) -> bool:
    """Whether ``columns[name]`` is float64 without NaN (no null), remembered in ``seen``."""
    known = seen.get(name)
    if known is None:
        column = columns.get(name)
        known = seen[name] = (
            column is not None
            and isinstance(column, np.ndarray)
            and column.dtype == np.float64
            and column.ndim == 1
            and len(column) > 0
            and not np.isnan(column).any()
        )
    return known


def compile_rule(raw: Mapping[str, Any], known_names: Iterable[str], where: str) -> Rule:
    """Check one rule's fields and expression; raise RuleError naming ``where`` on a problem."""
    missing = {"id", "fraud_type", "action", "when", "reason"} - set(raw)
    if missing:
        raise RuleError(f"{where}: missing {', '.join(sorted(missing))}")
    unknown = set(raw) - {"id", "fraud_type", "action", "when", "reason", "description"}
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if raw["fraud_type"] not in FRAUD_TYPES:
        raise RuleError(
            f"{where}: fraud_type must be one of {', '.join(FRAUD_TYPES)}, not {raw['fraud_type']!r}"
        )
    if raw["action"] not in ("review", "block"):
        raise RuleError(f"{where}: action must be review or block, not {raw['action']!r}")
    expression = str(raw["when"])
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise RuleError(f"{where}: cannot parse when: {expression!r} ({exc.msg})") from None
    names = set(known_names)
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise RuleError(f"{where}: {type(node).__name__} is not allowed in when: {expression!r}")
        if isinstance(node, ast.Name) and node.id not in names:
            raise RuleError(f"{where}: unknown name {node.id!r} in when: {expression!r}")
    reason = str(raw["reason"])
    try:
        placeholders = [name for _, name, _, _ in string.Formatter().parse(reason) if name is not None]
    except ValueError as exc:
        raise RuleError(f"{where}: cannot parse reason: {reason!r} ({exc})") from None
    for name in placeholders:
        if name not in names:
            raise RuleError(f"{where}: unknown name {{{name}}} in reason: {reason!r}")
    return Rule(
        id=str(raw["id"]),
        fraud_type=raw["fraud_type"],
        action=raw["action"],
        when=expression,
        reason=reason,
        _code=compile(tree, f"<rule {raw['id']}>", "eval"),
        _columnar=compile_columnar(tree),
    )


def load_rules(path: Path, feature_names: Iterable[str]) -> RuleSet:
    """Load and check a rule file."""
    return parse_rules(read_rule_file(path), feature_names, source=str(path))


def read_rule_file(path: Path) -> str:
    """A rule file's text; RuleError when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(f"{path}: cannot read rule file ({exc.strerror})") from None


def parse_rules(text: str, feature_names: Iterable[str], source: str = "<rules>") -> RuleSet:
    """Parse rule-file text (see pipeline/detection/rules.yaml for the format)."""
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RuleError(f"{source}: expected a mapping with a 'rules' list")
    lines = _rule_lines(document)
    names = set(feature_names) | TRANSACTION_FIELDS
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(data["rules"]):
        where = f"{source}:{lines.get(index, '?')} (rule #{index + 1})"
        if not isinstance(raw, dict):
            raise RuleError(f"{where}: a rule must be a mapping")
        rule = compile_rule(raw, names, where)
        if rule.id in seen:
            raise RuleError(f"{where}: duplicate rule id {rule.id!r}")
        seen.add(rule.id)
        rules.append(rule)
    lists = data.get("lists") or {}
    if not isinstance(lists, dict):
        raise RuleError(f"{source}: 'lists' must be a mapping")
    unknown_lists = set(lists) - {"blocked_cards", "blocked_devices", "blocked_merchants", "allowed_cards"}
    if unknown_lists:
        raise RuleError(f"{source}: unknown list(s) {', '.join(sorted(unknown_lists))}")
    blocked = {
        kind: frozenset(map(str, lists.get(f"blocked_{kind}") or ()))
        for kind in ("cards", "devices", "merchants")
    }
    return RuleSet(tuple(rules), blocked, frozenset(map(str, lists.get("allowed_cards") or ())), source)


def _rule_lines(document: yaml.Node | None) -> dict[int, int]:
    """Line number (1-based) of each rule in the YAML document, for error messages."""
    if not isinstance(document, yaml.MappingNode):
        return {}
    for key, value in document.value:
        if key.value == "rules" and isinstance(value, yaml.SequenceNode):
            return {i: item.start_mark.line + 1 for i, item in enumerate(value.value)}
    return {}
