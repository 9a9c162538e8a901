"""What a run found, in words: ``describe`` (time formats and timezone, decimal mark, ids mapped,
card numbers tokenised, defaults used), ``card_warnings``, and the dry run (``preview`` maps the
first rows of a file without replaying them, ``preview_lines`` reports them)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.tools.backtest.convert import Mapped, Observed
from pipeline.tools.backtest.input import transactions
from pipeline.tools.backtest.mapping import DERIVED, ColumnMapping
from pipeline.tools.backtest.refusals import Refusals

PREVIEW_ROWS = 1000
"""Rows a dry run reads."""


@dataclass
class Preview:
    """The first rows of a file mapped: some transactions to show, what was found and refused."""

    examples: list[Mapped]
    observed: Observed
    refusals: Refusals
    accepted: int


def preview(
    rows: Iterable[Mapping[str, Any]],
    mapping: ColumnMapping,
    *,
    token_key: bytes | None = None,
    limit: int = PREVIEW_ROWS,
    shown: int = 3,
) -> Preview:
    """Map the first ``limit`` rows without replaying them (``fraud backtest --dry-run``)."""
    observed, refusals = Observed(), Refusals()
    examples: list[Mapped] = []
    accepted = 0
    for item in transactions(
        itertools.islice(rows, limit), mapping, refusals, token_key=token_key, observed=observed
    ):
        accepted += 1
        if len(examples) < shown:
            examples.append(item)
    return Preview(examples, observed, refusals, accepted)


def _rows(count: int) -> str:
    return f"{count:,} row" if count == 1 else f"{count:,} rows"


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in counter.most_common())


def describe(mapping: ColumnMapping, observed: Observed) -> list[str]:
    """Lines on how the file was read: time formats and timezone, decimal mark, ids mapped, card
    numbers tokenised and defaults used, per field with the rows concerned."""
    columns = ", ".join(f"{name}={'+'.join(cols)}" for name, cols in mapping.columns.items())
    lines = [
        f"mapping: {mapping.source}" + (f"; columns {columns}" if columns else ""),
        f"event_time: {_counts(observed.time_formats) or 'none read'}; naive times read in {mapping.timezone}"
        + (f"; time unit {mapping.time_unit}" if mapping.time_unit != "auto" else ""),
        f"amounts: decimal mark {mapping.decimal!r}",
    ]
    if observed.ids_mapped:
        lines.append(
            f"ids mapped to <slug>.<hash> (outside [A-Za-z0-9_.:-]{{1,64}}): {_counts(observed.ids_mapped)}"
        )
    if observed.tokenised:
        lines.append(
            f"card numbers tokenised to tok_<HMAC-SHA256>: {_counts(observed.tokenised)}; "
            "never stored or printed in clear"
        )
    used = [
        f"{name} = {DERIVED.get(name) or mapping.defaults.get(name)} ({_rows(count)})"
        for name, count in observed.defaults.most_common()
        if name in DERIVED or mapping.defaults.get(name) is not None
    ]
    if used:
        lines.append("defaults: " + "; ".join(used))
    empty = [name for name in observed.defaults if name not in DERIVED and mapping.defaults.get(name) is None]
    if empty:
        lines.append(f"null (no value in the file): {', '.join(empty)}")
    return lines


def card_warnings(observed: Observed) -> list[str]:
    """What the user must know: card numbers were found (and tokenised), and whether the tokens
    are stable across runs."""
    if not observed.tokenised:
        return []
    found = sum(observed.tokenised.values())
    line = (
        f"{found:,} card numbers ({', '.join(observed.tokenised)}) replaced by keyed tokens "
        "(HMAC-SHA256); they are never stored or printed in clear"
    )
    if observed.random_key:
        line += (
            "; FRAUD_BACKTEST_TOKEN_KEY is unset, so this run used a random key and its tokens "
            "are not stable across runs"
        )
    return [line]


def preview_lines(shown: Preview, mapping: ColumnMapping, limit: float) -> list[str]:
    """The dry run's report: what was read, three mapped transactions, what would be refused."""
    rows = shown.refusals.rows
    lines = [f"dry run: {rows:,} rows read, {shown.accepted:,} would be replayed; nothing was replayed"]
    lines += describe(mapping, shown.observed)
    for txn, is_fraud, fraud_type in shown.examples:
        label = {"is_fraud": is_fraud, "fraud_type": fraud_type}
        lines.append("example: " + orjson.dumps({**txn, **label}).decode())
    lines += shown.refusals.lines()
    if rows and shown.refusals.over(limit):
        share = 100 * shown.refusals.fraction
        lines.append(f"would stop: {share:.2f} % refused, more than --max-refused {100 * limit:g} %")
    return lines
