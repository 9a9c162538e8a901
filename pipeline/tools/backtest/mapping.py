"""How a foreign file maps to the transaction contract: which column(s) feed which field, how times,
amounts and labels are written, value translations and defaults for fields the file lacks.

From a mapping file (``--mapping cols.yaml``, examples in docs/mappings/), ``--map FIELD=COLUMN``
pairs (which override it) and the ``--timezone``, ``--time-unit`` and ``--decimal`` options::

    columns:                       # field: column, or a date and a time column
      transaction_id: trans_num
      event_time: [trans_date, trans_time]   # or "trans_date+trans_time"
      card_token: cc_num
      amount: amt
      is_fraud: is_fraud
    timezone: America/New_York     # naive times are read in it (default UTC)
    time_unit: auto                # auto (by magnitude), iso, s or ms
    time_format: null              # a strptime format, e.g. "%d/%m/%Y %H:%M"
    decimal: "."                   # or ","
    labels: {fraud: [chargeback], legit: [settled]}   # besides 0/1, true/false, yes/no, fraud/legit
    values: {merchant_category: {grocery_pos: "5411", "*": "0000"}}   # "*": any other value
    defaults: {currency: USD, country: US}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from pipeline.contracts.json_schemas import load_schema
from pipeline.tools.backtest.formats import FRAUD_LABELS, LEGIT_LABELS, TIME_UNITS, TimeUnit, text_of, zone
from pipeline.tools.backtest.refusals import BacktestError

FIELDS: tuple[str, ...] = (
    *(name for name in load_schema("transaction")["properties"] if name != "schema_version"),
    "is_fraud",
    "fraud_type",
)
REQUIRED = ("event_time", "amount", "is_fraud")
"""Fields every row must have; the others have a default."""

DEFAULTS: dict[str, Any] = {
    "merchant_category": "0000",
    "currency": "EUR",
    "channel": "card_present",
    "country": "ZZ",
    "account_age_days": 365,
    "device_id": None,
    "ip_address": None,
    "hours_since_contact_change": None,
    "shipping_matches_billing": None,
    "fraud_type": None,
}
"""Values of fields a file lacks (a mapping file's ``defaults`` replace them). ``ZZ`` is the ISO code
for an unknown country; the contract has no unknown channel, so ``card_present`` stands for one."""

DERIVED: dict[str, str] = {
    "transaction_id": "row-<row number>",
    "card_token": "customer_id as a token",
    "customer_id": "card_token",
    "merchant_id": "terminal_id (else unknown)",
    "terminal_id": "merchant_id (else unknown)",
    "card_country": "country",
}
"""Fields a file lacks that are taken from another field."""

_KEYS = ("columns", "timezone", "time_unit", "time_format", "decimal", "labels", "values", "defaults")


@dataclass(frozen=True)
class ColumnMapping:
    """Everything needed to read a file's rows; ``columns`` holds only the fields mapped explicitly
    (the others are read from a column of their own name)."""

    columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    timezone: str = "UTC"
    time_unit: TimeUnit = "auto"
    time_format: str | None = None
    decimal: str = "."
    fraud_labels: frozenset[str] = FRAUD_LABELS
    legit_labels: frozenset[str] = LEGIT_LABELS
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULTS))
    source: str = "defaults"

    def column(self, name: str) -> tuple[str, ...]:
        return self.columns.get(name, (name,))


def _columns(name: str, value: Any, where: str) -> tuple[str, ...]:
    if name not in FIELDS:
        raise BacktestError(f"{where}: unknown field {name!r} (fields: {', '.join(FIELDS)})")
    if isinstance(value, list | tuple):
        parts = tuple(str(part).strip() for part in value)
    elif isinstance(value, str):
        parts = (
            tuple(part.strip() for part in value.split("+")) if "+" in value.strip("+") else (value.strip(),)
        )
    else:
        raise BacktestError(f"{where}: {name}: expected a column name, not {value!r}")
    if not parts or not all(parts) or len(parts) > 2:
        raise BacktestError(f"{where}: {name}: expected a column, or a date and a time column, not {value!r}")
    if len(parts) == 2 and name != "event_time":
        raise BacktestError(f"{where}: only event_time takes two columns (date+time), not {name}")
    return parts


def parse_column_map(pairs: Iterable[str]) -> dict[str, str]:
    """``["transaction_id=TRANSACTION_ID", "event_time=date+time", ...]`` -> {our field: their column(s)}."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        ours, sep, theirs = pair.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise BacktestError(f"--map takes field=column, not {pair!r}")
        mapping[ours.strip()] = theirs.strip()
    return mapping


def _label_words(value: Any) -> frozenset[str]:
    items = value if isinstance(value, list | tuple) else [value]
    return frozenset(text_of(item).lower() for item in items if item is not None)


def mapping_from(data: Mapping[str, Any], source: str = "mapping") -> ColumnMapping:
    """A ColumnMapping from a mapping file's content, checked: unknown keys or fields, a bad
    timezone, time unit or decimal mark are errors naming ``source``."""
    if not isinstance(data, Mapping):
        raise BacktestError(f"{source}: expected a mapping of {', '.join(_KEYS)}")
    unknown = sorted(set(map(str, data)) - set(_KEYS))
    if unknown:
        raise BacktestError(f"{source}: unknown key(s) {', '.join(unknown)} (keys: {', '.join(_KEYS)})")
    columns = data.get("columns") or {}
    if not isinstance(columns, Mapping):
        raise BacktestError(f"{source}: columns: expected field: column")
    labels = data.get("labels") or {}
    if not isinstance(labels, Mapping) or set(map(str, labels)) - {"fraud", "legit"}:
        raise BacktestError(f"{source}: labels: expected fraud: [...] and legit: [...]")
    fraud = FRAUD_LABELS | _label_words(labels.get("fraud", []))
    legit = LEGIT_LABELS | _label_words(labels.get("legit", []))
    if fraud & legit:
        raise BacktestError(f"{source}: labels: {sorted(fraud & legit)} both fraud and legit")
    values = data.get("values") or {}
    if not isinstance(values, Mapping) or not all(isinstance(v, Mapping) for v in values.values()):
        raise BacktestError(f"{source}: values: expected field: {{their value: our value}}")
    for name in values:
        _columns(str(name), "x", f"{source}: values")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise BacktestError(f"{source}: defaults: expected field: value")
    for name in defaults:
        if name not in DEFAULTS:
            rule = f"without a column it is {DERIVED[name]}" if name in DERIVED else "every row needs one"
            raise BacktestError(
                f"{source}: defaults: {name!r} takes no default ({rule}); defaults for: {', '.join(DEFAULTS)}"
            )
    mapping = ColumnMapping(
        columns={str(k): _columns(str(k), v, f"{source}: columns") for k, v in columns.items()},
        fraud_labels=fraud,
        legit_labels=legit,
        values={str(k): {text_of(a): b for a, b in v.items()} for k, v in values.items()},
        defaults={**DEFAULTS, **{str(k): v for k, v in defaults.items()}},
        source=source,
    )
    return with_options(
        mapping,
        timezone=data.get("timezone"),
        time_unit=data.get("time_unit"),
        time_format=data.get("time_format"),
        decimal=data.get("decimal"),
        where=source,
    )


def with_options(
    mapping: ColumnMapping,
    *,
    pairs: Mapping[str, str] | None = None,
    timezone: str | None = None,
    time_unit: str | None = None,
    time_format: str | None = None,
    decimal: str | None = None,
    where: str = "option",
) -> ColumnMapping:
    """``mapping`` with the given columns and options replacing its own (None: keep)."""
    changes: dict[str, Any] = {}
    if pairs:
        extra = {name: _columns(name, value, "--map") for name, value in pairs.items()}
        changes["columns"] = {**mapping.columns, **extra}
    if timezone is not None:
        if not isinstance(timezone, str):  # YAML reads an unquoted +2:00 as a number
            raise BacktestError(f'{where}: timezone {timezone!r}: quote it, e.g. "+02:00"')
        try:
            zone(str(timezone))
        except ValueError as exc:
            raise BacktestError(f"{where}: {exc}") from None
        changes["timezone"] = str(timezone).strip()
    if time_unit is not None:
        if str(time_unit) not in TIME_UNITS:
            raise BacktestError(f"{where}: time_unit {time_unit!r}: use auto, iso, s or ms")
        changes["time_unit"] = TIME_UNITS[str(time_unit)]
    if time_format is not None:
        changes["time_format"] = str(time_format)
    if decimal is not None:
        if str(decimal) not in (".", ","):
            raise BacktestError(f"{where}: decimal {decimal!r}: use . or ,")
        changes["decimal"] = str(decimal)
    return replace(mapping, **changes)


def load_mapping(path: Path) -> ColumnMapping:
    """The mapping file at ``path`` (YAML)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BacktestError(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise BacktestError(f"{path}: not YAML ({exc})") from None
    return mapping_from(data or {}, str(path))


def build_mapping(
    path: Path | None = None,
    pairs: Iterable[str] = (),
    *,
    timezone: str | None = None,
    time_unit: str | None = None,
    time_format: str | None = None,
    decimal: str | None = None,
) -> ColumnMapping:
    """The mapping of a run: the mapping file (if any), then ``--map`` pairs and options over it."""
    mapping = load_mapping(path) if path else ColumnMapping()
    return with_options(
        mapping,
        pairs=parse_column_map(pairs),
        timezone=timezone,
        time_unit=time_unit,
        time_format=time_format,
        decimal=decimal,
    )
