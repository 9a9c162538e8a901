"""Writing simulated days of labelled transactions to a file, for backtests and benchmarks."""

from __future__ import annotations

import csv
import gzip
import time
from pathlib import Path

import orjson

from pipeline.config import Settings
from pipeline.tools.simulator.generator import TrafficGenerator


def write_dataset(
    path: Path, settings: Settings, *, days: float, rate: float, start: float | None = None
) -> int:
    """Transactions of ``days`` simulated days, each with ``is_fraud`` and ``fraud_type``."""
    begin = start if start is not None else time.time() - days * 86400
    generator = TrafficGenerator.from_settings(settings, rate=rate, start=begin)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    events = generator.events(until=begin + days * 86400)
    if path.name.endswith(".csv"):
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer: csv.DictWriter[str] | None = None
            for item in events:
                row = {
                    **item.transaction,
                    "is_fraud": int(item.is_fraud),
                    "fraud_type": item.fraud_type or "",
                }
                if writer is None:
                    writer = csv.DictWriter(handle, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
                count += 1
        return count
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wb") as out:
        for item in events:
            out.write(
                orjson.dumps({**item.transaction, "is_fraud": item.is_fraud, "fraud_type": item.fraud_type})
            )
            out.write(b"\n")
            count += 1
    return count
