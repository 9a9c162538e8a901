"""``fraud backtest``: replay a labelled file through the detector in event-time order.

input.py reads and maps the file, replay.py scores every transaction before its label is known
(prequential) and learns each label after its delay, report.py computes the metrics and writes the
report. The names below are the package's API."""

from pipeline.tools.backtest.input import BacktestError, normalise, parse_column_map, read_rows
from pipeline.tools.backtest.replay import BacktestResult, ScoredTransaction, prepare, replay
from pipeline.tools.backtest.report import (
    SCORES_COLUMNS,
    metrics,
    print_progress,
    summarise,
    write_report,
    write_scores,
)

__all__ = [
    "SCORES_COLUMNS",
    "BacktestError",
    "BacktestResult",
    "ScoredTransaction",
    "metrics",
    "normalise",
    "parse_column_map",
    "prepare",
    "print_progress",
    "read_rows",
    "replay",
    "summarise",
    "write_report",
    "write_scores",
]
