"""Where a ``fraud backtest`` replay spends its CPU, stage by stage.

    .venv/bin/python -m pipeline.tools.bench.backtest_stages FILE [--mapping M] [--row-mapper]

runs the command's steps on FILE (the columnar mapper, or with ``--row-mapper`` the row mapper,
``read_rows`` and ``transactions``) and prints the CPU seconds (``time.process_time``: every thread
of this process, not the wall clock, which a shared machine stretches) of each: the imports, reading
the file, mapping it, sorting it by event time, the detector (``Detector.process``; the model
learning the labels that fall due; the labelled entities counting them), the replay's own
bookkeeping, the metrics, the scores file and the report, and the transactions per CPU second of
the whole."""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STARTED = time.process_time()


def _timed(totals: dict[str, float], name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        begin = time.process_time()
        try:
            return call(*args, **kwargs)
        finally:
            totals[name] += time.process_time() - begin

    return timed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("--mapping", type=Path, default=None)
    parser.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN")
    parser.add_argument("--row-mapper", action="store_true", help="map row by row (as before the columns)")
    parser.add_argument("--label-delay-days", type=float, default=7.0)
    args = parser.parse_args(argv)

    from pipeline.config import Settings
    from pipeline.tools.backtest.columnar import map_frame
    from pipeline.tools.backtest.frame import read_frame
    from pipeline.tools.backtest.input import read_rows, transactions
    from pipeline.tools.backtest.mapping import build_mapping
    from pipeline.tools.backtest.refusals import Refusals
    from pipeline.tools.backtest.report import BacktestResult, summarise, write_report, write_scores
    from pipeline.wiring import build_detector

    replay = importlib.import_module("pipeline.tools.backtest.replay")
    marks = [("import", time.process_time() - STARTED)]

    def mark(name: str, begin: float) -> float:
        now = time.process_time()
        marks.append((name, now - begin))
        return now

    mapping = build_mapping(args.mapping, args.map)
    refusals = Refusals()
    key = b"backtest-stages"
    begin = time.process_time()
    if args.row_mapper:
        rows = list(read_rows(args.input))
        begin = mark("read", begin)
        mapped: Any = list(transactions(rows, mapping, refusals, token_key=key))
    else:
        frame = read_frame(args.input)
        begin = mark("read", begin)
        mapped = map_frame(frame, mapping, refusals, token_key=key)
    begin = mark("map", begin)
    detector = build_detector(Settings(), "combined")
    prepared = replay.prepare(mapped)
    begin = mark("prepare (sort)", begin)
    totals = {"detector: process": 0.0, "detector: learn": 0.0, "detector: entity labels": 0.0}
    detector.process = _timed(totals, "detector: process", detector.process)  # type: ignore[method-assign]
    detector.learn = _timed(totals, "detector: learn", detector.learn)  # type: ignore[method-assign]
    detector.count_entity_labels = _timed(  # type: ignore[method-assign]
        totals, "detector: entity labels", detector.count_entity_labels
    )
    scored = []
    for done, decided in replay._replay(prepared, detector, args.label_delay_days * 86400):
        first = done - len(decided)
        scored.extend(replay._row(item, prepared[first + i]) for i, item in enumerate(decided))
    now = time.process_time()
    marks += list(totals.items())
    marks.append(("replay bookkeeping", now - begin - sum(totals.values())))
    begin = now
    daily, overall = summarise(scored, 100)
    begin = mark("metrics", begin)
    with tempfile.TemporaryDirectory() as out:
        write_scores(Path(out) / "scores.csv", scored)
        begin = mark("scores file", begin)
        result = BacktestResult(len(prepared), refusals.counts, overall, daily, scored)
        write_report(Path(out), result)
        mark("report", begin)
    total = time.process_time() - STARTED
    count = len(prepared)
    print(f"{args.input}: {count:,} transactions replayed, {refusals.refused:,} refused")
    for name, seconds in marks:
        print(f"  {name:24} {seconds:7.2f} s  {1e6 * seconds / max(count, 1):7.1f} µs per transaction")
    print(f"  {'total':24} {total:7.2f} s  {count / total:9,.0f} transactions per CPU second")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
