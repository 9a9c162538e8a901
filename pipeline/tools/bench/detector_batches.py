"""The detector's CPU per transaction at several batch sizes, and its every output on a replay.

    .venv/bin/python -m pipeline.tools.bench.detector_batches prepare DIR [--transactions N]
    .venv/bin/python -m pipeline.tools.bench.detector_batches time DIR [--batches 500,10,1]
    .venv/bin/python -m pipeline.tools.bench.detector_batches dump DIR OUT [--batch 500]
    .venv/bin/python -m pipeline.tools.bench.detector_batches pair DIR OTHER_CHECKOUT [--rounds 12]

``prepare`` trains a model offline (as ``fraud bench`` does: 30,000 labelled simulated
transactions) and writes it (pickled) with ``N`` further labelled simulated transactions, dated from
a fixed week, to DIR. ``time`` runs ``Detector.process`` with a copy of that model over the
transactions in batches of each size, from empty states, and prints the CPU time
(``time.process_time``) per transaction of the calls alone. ``dump`` replays the transactions as
``fraud backtest`` does (labels learnt 0.05 days late, from an untrained model, so the cold start,
the model's training and a champion change are all in it) and writes every transaction's decision,
features and explanation, one JSON line each, floats as ``repr``: two versions of the detector give
the same outputs when their files are identical. ``pair`` times this checkout's detector and another
checkout's (``git worktree add --detach OTHER REV``) in two processes, a pass of 10,000 transactions
in batches of ``--batch`` each in turn, and prints both and the median ratio of the pairs: on a
shared machine the only figure worth quoting.

The script imports nothing of its own package beyond what ``fraud bench`` has long had, so it can be
run over an older checkout (``PYTHONPATH=OLD python pipeline/tools/bench/detector_batches.py ...``).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

FIXED_NOW = 1_796_000_000.0
"""The bench's clock is anchored to a week; here to a fixed one, so every run sees the same data."""


def prepare(directory: Path, count: int, warmup: int) -> None:
    from pipeline.config import Settings
    from pipeline.tools.bench import detector_alone
    from pipeline.tools.bench.workers import bench_clock
    from pipeline.tools.simulator.generator import TrafficGenerator

    directory.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    detector_alone.bench_clock = lambda now=None: bench_clock(FIXED_NOW)  # type: ignore[attr-defined]
    model, _, _ = detector_alone.trained_model(settings, warmup)
    (directory / "model.pickle").write_bytes(pickle.dumps(model))
    start = bench_clock(FIXED_NOW) - count / 400.0
    generator = TrafficGenerator.from_settings(settings, rate=400.0, start=start, rhythm=False, run_id="det")
    with (directory / "transactions.jsonl").open("wb") as out:
        for item in generator.events(count=count):
            row = {**item.transaction, "is_fraud": item.is_fraud, "fraud_type": item.fraud_type or ""}
            out.write(orjson.dumps(row) + b"\n")


def _rows(directory: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (directory / "transactions.jsonl").read_bytes().splitlines()]


def _items(directory: Path, count: int | None) -> list[tuple[dict[str, Any], float]]:
    from pipeline.detection.features import event_seconds

    txns = [{k: v for k, v in row.items() if k not in ("is_fraud", "fraud_type")} for row in _rows(directory)]
    return [(txn, event_seconds(txn)) for txn in txns[:count]]


def time_batches(
    directory: Path, batches: list[int], count: int | None, single: int, repeat: int = 1
) -> None:
    from pipeline.config import Settings
    from pipeline.detection.detector import InMemoryStates
    from pipeline.wiring import build_detector

    model = pickle.loads((directory / "model.pickle").read_bytes())
    items = _items(directory, count)
    warm = build_detector(Settings(), "combined", copy.deepcopy(model))
    warm_states = InMemoryStates()
    for start in range(0, 1_000, 100):  # numba's kernels loaded (or compiled), caches filled
        warm.process(items[start : start + 100], warm_states)
    for size in batches:
        chosen = items[:single] if size == 1 else items
        runs = []
        for _ in range(repeat):
            detector = build_detector(Settings(), "combined", copy.deepcopy(model))
            states = InMemoryStates()
            seconds = 0.0
            for start in range(0, len(chosen), size):
                part = chosen[start : start + size]
                begin = time.process_time()
                detector.process(part, states)
                seconds += time.process_time() - begin
            runs.append(1e6 * seconds / len(chosen))
        runs.sort()
        print(
            f"batch {size:4}: {len(chosen):7,} transactions x {repeat}, us per transaction: "
            f"best {runs[0]:7.1f}, median {runs[len(runs) // 2]:7.1f}",
            flush=True,
        )


def serve(directory: Path, count: int, batch: int) -> None:
    """For ``pair``: load and warm up, say ``ready``, then time one pass for every line read."""
    from pipeline.config import Settings
    from pipeline.detection.detector import InMemoryStates
    from pipeline.wiring import build_detector

    model = pickle.loads((directory / "model.pickle").read_bytes())
    items = _items(directory, count)

    def one_pass() -> float:
        detector = build_detector(Settings(), "combined", copy.deepcopy(model))
        states, seconds = InMemoryStates(), 0.0
        for start in range(0, len(items), batch):
            begin = time.process_time()
            detector.process(items[start : start + batch], states)
            seconds += time.process_time() - begin
        return 1e6 * seconds / len(items)

    one_pass()
    print("ready", flush=True)
    for _ in sys.stdin:
        print(f"{one_pass():.3f}", flush=True)


def pair(directory: Path, other: Path, count: int, batch: int, rounds: int) -> None:
    """Time this checkout's detector against ``other``'s (a checkout of another version), pass by
    pass in turn, each in a process of its own: on a busy machine, two passes next to each other
    see about the same load, so the ratio of each pair says more than either figure."""
    here = Path(__file__).resolve().parents[3]
    processes = {}
    for name, root in (("other", other.resolve()), ("this", here)):
        processes[name] = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", str(directory.resolve()),
             "--count", str(count), "--batch", str(batch)],
            cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
    for process in processes.values():
        if process.stdout is None or process.stdout.readline().strip() != "ready":
            raise SystemExit("a timing process did not start")
    runs: dict[str, list[float]] = {"other": [], "this": []}
    for round_ in range(rounds):
        for name in ("other", "this") if round_ % 2 == 0 else ("this", "other"):
            process = processes[name]
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write("go\n")
            process.stdin.flush()
            runs[name].append(float(process.stdout.readline()))
    for process in processes.values():
        assert process.stdin is not None
        process.stdin.close()
        process.wait()
    ratios = sorted(mine / theirs for mine, theirs in zip(runs["this"], runs["other"], strict=True))
    for name in ("other", "this"):
        ordered = sorted(runs[name])
        best, median = ordered[0], ordered[len(ordered) // 2]
        print(f"{name:5} us per transaction: best {best:6.1f}, median {median:6.1f}")
    print(f"this / other, median of {rounds} pairs: x{ratios[len(ratios) // 2]:.3f}")


def dump(directory: Path, out: Path, batch: int, delay_days: float) -> None:
    from pipeline.config import Settings
    from pipeline.wiring import build_detector

    replay_module = importlib.import_module("pipeline.tools.backtest.replay")
    replay_module.BATCH = batch
    detector = build_detector(Settings(), "combined")
    rows = _rows(directory)
    prepared = [
        (at, txn, row["is_fraud"], row["fraud_type"] or None)
        for row, (txn, at) in zip(rows, _items(directory, None), strict=True)
    ]
    prepared.sort(key=lambda item: item[0])
    with out.open("wb") as sink:
        for _, decided in replay_module._replay(prepared, detector, delay_days * 86400):
            for item in decided:
                sink.write(orjson.dumps(_outputs(item)) + b"\n")


def _outputs(item: Any) -> dict[str, Any]:
    decision = item.decision
    features = item.features
    explanation = getattr(features, "explanation", None)
    return {
        "id": item.txn["transaction_id"],
        "at": repr(item.at),
        "action": decision.action,
        "score": repr(decision.score),
        "model_score": repr(decision.model_score),
        "fraud_type": decision.fraud_type,
        "reasons": list(decision.reasons),
        "rule_hits": list(decision.rule_hits),
        "model_version": decision.model_version,
        "features": [[name, repr(value)] for name, value in features.items()],
        "explanation": None if explanation is None else repr(explanation),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("prepare", "time", "dump", "pair", "serve"))
    parser.add_argument("directory", type=Path)
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=30_000)
    parser.add_argument("--batches", default="500,10,1")
    parser.add_argument("--count", type=int, default=20_000, help="transactions timed per batch size")
    parser.add_argument("--single", type=int, default=3_000, help="transactions timed in batches of 1")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per batch size (best, median)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--label-delay-days", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=12, help="pair: timed passes of each version")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.directory, args.transactions, args.warmup)
    elif args.command == "time":
        batches = [int(size) for size in args.batches.split(",")]
        time_batches(args.directory, batches, args.count, args.single, args.repeat)
    elif args.command == "serve":
        serve(args.directory, args.count, args.batch)
    elif args.command == "pair":
        if args.out is None:
            parser.error("pair needs the other checkout (OUT)")
        pair(args.directory, args.out, min(args.count, 10_000), args.batch, args.rounds)
    else:
        if args.out is None:
            parser.error("dump needs OUT")
        dump(args.directory, args.out, args.batch, args.label_delay_days)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
