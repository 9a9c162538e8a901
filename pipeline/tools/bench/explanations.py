"""What explaining alerts costs (pipeline/detection/explanations.py), without Kafka:

    python -m pipeline.tools.bench.explanations [--transactions 20000] [--batch 200]

Simulated traffic is replayed through the detector in batches, its labels learnt a little later,
so the model is trained as in the worker. Over the second half, each champion in turn (the
logistic one, then the boosted trees) scores, and right after each batch the explanation of the
batch's alerts is computed again and timed: the same call the detector made for them, in the same
state of the caches. Reported: the alerts' share, the microseconds per alert and per transaction,
and that time as a share of the detector's own (which includes it). Times are the process's CPU
time, which other processes on a shared machine disturb far less than the wall clock.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.config import Settings
from pipeline.detection.detector import Detector, Example, InMemoryStates
from pipeline.detection.explanations import explain_alerts
from pipeline.detection.features import event_seconds
from pipeline.tools.simulator.generator import FraudRates, SimulatedTransaction, TrafficGenerator
from pipeline.wiring import build_detector


@dataclass(frozen=True)
class Cost:
    champion: str
    transactions: int
    alerts: int
    detector_seconds: float
    explain_seconds: float

    def line(self) -> str:
        per_alert = self.explain_seconds / max(self.alerts, 1) * 1e6
        share = self.explain_seconds / self.detector_seconds if self.detector_seconds else 0.0
        return (
            f"{self.champion}: {self.alerts} alerts in {self.transactions} transactions "
            f"({self.alerts / max(self.transactions, 1):.1%}); {per_alert:,.0f} us per alert, "
            f"{self.explain_seconds / max(self.transactions, 1) * 1e6:.1f} us per transaction, "
            f"{share:.1%} of the detector's time"
        )


def traffic(count: int, seed: int = 5) -> list[SimulatedTransaction]:
    rates = FraudRates(0.004, 0.003, 0.003)
    start = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    generator = TrafficGenerator(
        seed=seed, customers=2000, merchants=150, rate=20, fraud=rates, start=start, run_id="expl"
    )
    return list(generator.events(count=count))


def measure(count: int = 20_000, batch: int = 200, settings: Settings | None = None) -> list[Cost]:
    """Train on the first half of ``count`` transactions, then time the explanations of the alerts
    of a quarter each with the logistic and the boosted champion (those that are ready)."""
    items = traffic(count)
    detector = build_detector(settings or Settings())
    model = detector.engine.model
    states = InMemoryStates()
    pending: list[Example] = []
    half, quarter = count // 2, count // 4
    _replay(detector, states, items[:half], batch, pending)
    model.min_frauds = 10**12  # no promotion while measuring: each champion is chosen here
    costs = []
    for offset, name in ((half, "logistic"), (half + quarter, "boosting")):
        index = next((i for i, c in enumerate(model.pool) if c.candidate.name == name), None)
        if index is not None and model.pool[index].candidate.ready:
            model.champion = index
            costs.append(_replay(detector, states, items[offset : offset + quarter], batch, pending, name))
    return costs


def _replay(
    detector: Detector,
    states: InMemoryStates,
    items: list[SimulatedTransaction],
    batch: int,
    pending: list[Example],
    champion: str = "",
) -> Cost:
    """Score ``items`` in batches, learning each label 500 to 1,000 transactions later; with a
    ``champion`` named, time the explanations of each batch's alerts again and add them up."""
    transactions = alerts = 0
    detector_seconds = explain_seconds = 0.0
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        started = time.process_time()
        scored = detector.process([(i.transaction, event_seconds(i.transaction)) for i in chunk], states)
        detector_seconds += time.process_time() - started
        if champion:
            flagged = [s for s in scored if s.decision.action != "allow"]
            started = time.process_time()
            explain_alerts(
                detector.engine, [dict(s.features) for s in flagged], [s.decision for s in flagged]
            )
            explain_seconds += time.process_time() - started
            transactions, alerts = transactions + len(chunk), alerts + len(flagged)
        for s, item in zip(scored, chunk, strict=True):
            fraud_type = item.fraud_type if item.is_fraud else None
            keys = detector.entity_keys(item.transaction)
            pending.append(
                Example(s.txn["transaction_id"], dict(s.features), item.is_fraud, fraud_type, keys, s.at)
            )
        if len(pending) > 1000:
            learnt = detector.learn(pending[:500])
            detector.count_entity_labels(learnt.entity_labels, states.store_of)
            del pending[:500]
    return Cost(champion, transactions, alerts, detector_seconds, explain_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    for cost in measure(args.transactions, args.batch):
        print(cost.line())


if __name__ == "__main__":
    main()
