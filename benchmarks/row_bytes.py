"""Bytes per stored state entry (issue 22, item 1): every table's rows after a replay of simulated
transactions, encoded as the tables and their changelogs store them (base64 of the non-zero cells,
``encode_row``), against the row's fixed width and a dense JSON array of it.

    .venv/bin/python benchmarks/row_bytes.py [--transactions 50000]   (about a minute)
"""

from __future__ import annotations

import argparse

import numpy as np
import orjson

from pipeline.config import Settings
from pipeline.detection.detector import InMemoryStates
from pipeline.detection.features import event_seconds
from pipeline.detection.model import OnlineFraudModel
from pipeline.detection.rows import MatrixRows, encode_row
from pipeline.tools.simulator.generator import TrafficGenerator
from pipeline.wiring import build_detector

FIXED_END = 1_796_000_000.0
"""The replay ends at a fixed time, so every run sees the same traffic."""


def replayed_states(count: int) -> InMemoryStates:
    settings = Settings()
    start = FIXED_END - count / 40.0  # the demo's rate: 40 transactions/s
    generator = TrafficGenerator.from_settings(settings, rate=40.0, start=start, rhythm=False, run_id="rows")
    items = [(item.transaction, event_seconds(item.transaction)) for item in generator.events(count=count)]
    detector = build_detector(settings, "combined", OnlineFraudModel(boosting=False))
    states = InMemoryStates()
    for begin in range(0, len(items), 500):
        detector.process(items[begin : begin + 500], states)
    return states


def describe(name: str, store: MatrixRows) -> str:
    keys = list(store._index)  # the store's keys: a measuring script may read its private index
    sizes = np.array([len(encode_row(row)) for row in (store.row(key) for key in keys) if row is not None])
    width = store._empty.size
    dense = np.mean([len(orjson.dumps(store.row(key).tolist())) for key in keys[:500]])  # type: ignore[union-attr]
    return (
        f"{name:9} {len(keys):6,} entries: stored {sizes.mean():6.0f} B mean, "
        f"{np.percentile(sizes, 95):5.0f} B p95, {sizes.max():5} B max; "
        f"fixed width {width} cells = {width * 8:,} B; dense JSON {dense:,.0f} B"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=50_000)
    states = replayed_states(parser.parse_args().transactions)
    for name, store in {**states.entities, "card": states.cards}.items():
        print(describe(name, store))


if __name__ == "__main__":
    main()
