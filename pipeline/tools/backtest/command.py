"""``fraud backtest FILE``: the command itself, between the CLI's arguments and the package."""

from __future__ import annotations

import argparse
import secrets
import sys
from contextlib import nullcontext

from pipeline.config import Settings
from pipeline.tools.backtest.columnar import map_frame
from pipeline.tools.backtest.convert import Observed, card_columns
from pipeline.tools.backtest.formats import CardTokeniser, parse_fraction
from pipeline.tools.backtest.frame import read_frame
from pipeline.tools.backtest.input import read_rows
from pipeline.tools.backtest.mapping import build_mapping
from pipeline.tools.backtest.refusals import BacktestError, Refusals, RefusedWriter
from pipeline.tools.backtest.replay import replay_transactions
from pipeline.tools.backtest.report import print_progress, write_report, write_scores
from pipeline.tools.backtest.summary import card_warnings, describe, preview, preview_lines
from pipeline.wiring import build_detector


def run_backtest(settings: Settings, args: argparse.Namespace) -> int:
    """Map the file (or only preview it with --dry-run), stop when too many rows are refused, replay
    the rest through the detector, write the report; print what was found and refused."""
    mapping = build_mapping(
        args.mapping, args.map, timezone=args.timezone, time_unit=args.time_unit, decimal=args.decimal
    )
    try:
        limit = parse_fraction(args.max_refused)
    except ValueError as exc:
        raise BacktestError(f"--max-refused: {exc}") from None
    secret = settings.backtest_token_key
    key = secret.get_secret_value().encode() if secret is not None else None
    if args.dry_run:
        shown = preview(read_rows(args.input), mapping, token_key=key)
        print("\n".join(preview_lines(shown, mapping, limit)))
        for line in card_warnings(shown.observed):
            print(f"fraud: warning: {line}", file=sys.stderr)
        return 0

    observed, refusals = Observed(), Refusals()
    if key is None:  # one key for the tokens of the replay and of the refused-rows file
        key = secrets.token_bytes(32)
        observed.random_key = True
    writer = RefusedWriter(args.refused, CardTokeniser(key), card_columns(mapping)) if args.refused else None
    with writer or nullcontext():
        refusals.sink = writer
        mapped = map_frame(read_frame(args.input), mapping, refusals, token_key=key, observed=observed)
    print(f"input: {args.input}")
    print("\n".join(describe(mapping, observed)))
    for line in card_warnings(observed):
        print(f"fraud: warning: {line}", file=sys.stderr)
    if writer is not None:
        print(f"refused: {writer.written:,} rows written to {args.refused}")
    refusals.check(limit)  # too many refused: stop, with the refusals by reason, before replaying
    print("\n".join(refusals.lines()))

    result = replay_transactions(
        mapped,
        build_detector(settings, args.mode),
        refused=refusals.counts,
        label_delay_days=args.label_delay_days,
        k=args.k,
        progress=print_progress,
    )
    report = write_report(args.out, result, title=f"Backtest of {args.input.name} ({args.mode})")
    if args.scores:
        write_scores(args.scores, result.scored)
    for key_name, value in result.overall.items():
        print(f"{key_name:28} {value:.4f}" if isinstance(value, float) else f"{key_name:28} {value}")
    print(f"report: {report}")
    return 0
