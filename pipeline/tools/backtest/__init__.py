"""``fraud backtest``: replay a labelled file through the detector in event-time order.

input.py reads and maps the file (formats.py reads times, amounts, labels, ids and card numbers,
mapping.py holds the column mapping, convert.py maps one row, refusals.py counts refused rows by
reason, summary.py words what a run found and does the dry run), replay.py scores
every transaction before its label is known (prequential) and learns each label after its delay,
report.py computes the metrics and writes the report. The names below are the package's API."""

from pipeline.tools.backtest.convert import Converter, Observed, card_columns
from pipeline.tools.backtest.input import normalise, read_rows, transactions
from pipeline.tools.backtest.mapping import ColumnMapping, build_mapping, load_mapping, parse_column_map
from pipeline.tools.backtest.refusals import BacktestError, Refusals, Refused, RefusedWriter
from pipeline.tools.backtest.replay import (
    BacktestResult,
    ScoredTransaction,
    prepare,
    replay,
    replay_transactions,
)
from pipeline.tools.backtest.report import (
    SCORES_COLUMNS,
    metrics,
    print_progress,
    summarise,
    write_report,
    write_scores,
)
from pipeline.tools.backtest.summary import (
    PREVIEW_ROWS,
    Preview,
    card_warnings,
    describe,
    preview,
    preview_lines,
)

__all__ = [
    "PREVIEW_ROWS",
    "SCORES_COLUMNS",
    "BacktestError",
    "BacktestResult",
    "ColumnMapping",
    "Converter",
    "Observed",
    "Preview",
    "Refusals",
    "Refused",
    "RefusedWriter",
    "ScoredTransaction",
    "build_mapping",
    "card_columns",
    "card_warnings",
    "describe",
    "load_mapping",
    "metrics",
    "normalise",
    "parse_column_map",
    "prepare",
    "preview",
    "preview_lines",
    "print_progress",
    "read_rows",
    "replay",
    "replay_transactions",
    "summarise",
    "transactions",
    "write_report",
    "write_scores",
]
