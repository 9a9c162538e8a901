"""The realistic generator (pipeline/tools/simulator/realistic.py), the quality protocol and baselines
(pipeline/tools/quality.py) and benchmarks/quality.py end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.config import FRAUD_TYPES, REPO_ROOT
from pipeline.contracts.json_schemas import validator
from pipeline.detection.evaluation import roc_auc
from pipeline.tools import quality
from pipeline.tools.simulator.realistic import (
    SCENARIOS,
    LabelledTransaction,
    RealisticConfig,
    generate,
)

DAY = 86400.0
T0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
SMALL = RealisticConfig(customers=300, terminals=60, days=14, seed=3)


@pytest.fixture(scope="module")
def stream() -> list[LabelledTransaction]:
    """About 75,000 transactions: 1,500 customers, 300 terminals, six weeks."""
    return generate(RealisticConfig(customers=1500, terminals=300, days=42, seed=5))


# --- the generator -----------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_stream_and_another_seed_another() -> None:
    first, again = generate(SMALL), generate(SMALL)
    assert [item.row() for item in first] == [item.row() for item in again]
    assert [item.label_at for item in first] == [item.label_at for item in again]
    other = generate(RealisticConfig(customers=300, terminals=60, days=14, seed=4))
    assert [item.row() for item in other] != [item.row() for item in first]


def test_every_transaction_keeps_the_contract_in_event_time_order(stream: list[LabelledTransaction]) -> None:
    check = validator("transaction")
    for item in stream:
        check(item.transaction)
        assert item.is_fraud == (item.fraud_type is not None) == (item.scenario is not None)
        assert item.fraud_type is None or item.fraud_type in FRAUD_TYPES
        assert item.label_at > item.at
    times = [item.at for item in stream]
    assert times == sorted(times)
    assert len({item.transaction["transaction_id"] for item in stream}) == len(stream)
    row = stream[0].row()
    assert set(row) == set(stream[0].transaction) | {"is_fraud", "fraud_type"}


def test_fraud_is_rare_of_every_scenario_and_amounts_overlap(stream: list[LabelledTransaction]) -> None:
    labels = [item.is_fraud for item in stream]
    rate = sum(labels) / len(labels)
    assert 0.002 < rate < 0.01, rate
    assert set(Counter(item.scenario for item in stream if item.is_fraud)) == set(SCENARIOS)
    auc = roc_auc(labels, [item.transaction["amount"] for item in stream])
    assert auc is not None and 0.45 < auc < 0.7, auc


def test_the_new_pattern_starts_mid_stream_and_labels_come_days_to_weeks_later(
    stream: list[LabelledTransaction],
) -> None:
    drift = RealisticConfig(days=42).drift_start * DAY + T0
    farm = [item.at for item in stream if item.scenario == "device_farm"]
    assert farm and min(farm) >= drift
    delays = [(item.label_at - item.at) / DAY for item in stream if item.is_fraud]
    assert min(delays) >= 1 and max(delays) <= 60 and max(delays) > 14
    assert {round((item.label_at - item.at) / DAY, 6) for item in stream if not item.is_fraud} == {7.0}


def test_a_takeover_changes_contact_details_and_uses_a_new_device(stream: list[LabelledTransaction]) -> None:
    seen: dict[str, set[str]] = {}
    takeovers = 0
    for item in stream:
        txn = item.transaction
        devices = seen.setdefault(txn["customer_id"], set())
        if item.scenario == "account_takeover":
            takeovers += 1
            assert txn["hours_since_contact_change"] is not None and txn["device_id"] not in devices
        if txn["device_id"] and not item.is_fraud:
            devices.add(txn["device_id"])
    assert takeovers


# --- the protocol ------------------------------------------------------------------------------
def _row(
    i: int, at: float, card: str, fraud: bool = False, terminal: str = "t1", amount: float = 10.0
) -> dict[str, Any]:
    return {
        "transaction_id": f"tx-{i}",
        "event_time": datetime.fromtimestamp(at, UTC).isoformat(),
        "card_token": card,
        "customer_id": f"c-{card}",
        "merchant_id": "m1",
        "terminal_id": terminal,
        "amount": amount,
        "is_fraud": fraud,
    }


def test_a_test_week_leaves_out_only_the_cards_known_compromised_when_it_starts() -> None:
    rows = [
        _row(0, T0, "tok_Z"),  # the burn-in counts from the first day
        _row(1, T0 + 1 * DAY, "tok_A", fraud=True),  # known on day 8: before the week of day 14
        _row(2, T0 + 10 * DAY, "tok_B", fraud=True),  # known on day 17: during that week
        _row(3, T0 + 15 * DAY, "tok_A"),
        _row(4, T0 + 15 * DAY + 60, "tok_B"),
        _row(5, T0 + 16 * DAY, "tok_C", fraud=True),
        _row(6, T0 + 20.5 * DAY, "tok_A"),
    ]
    stream = quality.Stream.from_rows(rows, delay_days=7)
    assert quality.known_compromised(stream, T0 + 14 * DAY) == {"tok_A"}
    (week,) = quality.test_weeks(stream, burn_in_days=14)
    assert week.rows.tolist() == [4, 5]
    assert [day.tolist() for day in week.days] == [[], [4], [5], [], [], [], []]
    assert week.removed_cards == 1


def test_card_precision_leaves_out_the_cards_found_on_earlier_days_of_the_week() -> None:
    rows = [
        _row(0, T0 + 0.1 * DAY, "tok_A", fraud=True),
        _row(1, T0 + 0.2 * DAY, "tok_B"),
        _row(2, T0 + 1.1 * DAY, "tok_A", fraud=True),
        _row(3, T0 + 1.2 * DAY, "tok_B"),
        _row(4, T0 + 6.5 * DAY, "tok_B"),
    ]
    stream = quality.Stream.from_rows(rows)
    (week,) = quality.test_weeks(stream, burn_in_days=0)
    scores = np.array([0.9, 0.1, 0.9, 0.1, 0.5])
    # day 0: A found (top 1); day 1: A is no longer a candidate, B (legitimate) is top
    assert quality.daily_card_precision(stream, week, scores, k=1) == [1.0, 0.0, None, None, None, None, 0.0]
    (metrics,) = quality.evaluate(stream, [week], scores, k=1)
    assert metrics.card_precision == pytest.approx(1 / 3)
    assert metrics.roc_auc == 1.0 and metrics.average_precision == 1.0


# --- no future label leaks into the baselines --------------------------------------------------
def test_a_terminal_counts_a_label_only_from_when_it_is_known() -> None:
    rows = [
        _row(0, T0, "tok_A", fraud=True),
        _row(1, T0 + 7 * DAY - 1, "tok_B"),  # the label of row 0 is known one second later
        _row(2, T0 + 7 * DAY + 1, "tok_C"),
        _row(3, T0 + 7 * DAY + 2, "tok_D", terminal="t2"),  # another terminal
        _row(4, T0 + 8 * DAY + 2, "tok_E"),  # a day after it became known: out of the 1-day window
    ]
    stream = quality.Stream.from_rows(rows, delay_days=7)
    features = quality.baseline_features(rows, stream)
    column = {name: i for i, name in enumerate(quality.BASELINE_FEATURES)}
    frauds_1d, frauds_7d = (
        features[:, column["terminal_frauds_1d"]],
        features[:, column["terminal_frauds_7d"]],
    )
    assert frauds_1d.tolist() == [0, 0, 1, 0, 0]
    assert frauds_7d.tolist() == [0, 0, 1, 0, 1]
    assert features[2, column["terminal_risk_1d"]] == 1.0
    assert features[4, column["terminal_labelled_7d"]] == 1  # row 1's label is known on day 14 only


def test_the_label_times_given_are_the_ones_used() -> None:
    rows = [_row(0, T0, "tok_A", fraud=True), _row(1, T0 + DAY, "tok_B"), _row(2, T0 + 3 * DAY, "tok_C")]
    stream = quality.Stream.from_rows(rows, known_at=[T0 + 2 * DAY, T0 + 30 * DAY, T0 + 30 * DAY])
    features = quality.baseline_features(rows, stream)
    frauds_7d = features[:, quality.BASELINE_FEATURES.index("terminal_frauds_7d")]
    assert frauds_7d.tolist() == [0, 0, 1]


def test_customer_features_describe_the_past_and_the_payment_itself() -> None:
    rows = [_row(0, T0, "tok_A", amount=10), _row(1, T0 + 2 * DAY, "tok_A", amount=30)]
    features = quality.baseline_features(rows, quality.Stream.from_rows(rows))
    column = {name: i for i, name in enumerate(quality.BASELINE_FEATURES)}
    assert features[1, column["customer_count_1d"]] == 1 and features[1, column["customer_count_7d"]] == 2
    assert features[1, column["customer_mean_amount_7d"]] == 20.0


def test_weekly_models_learn_only_the_labels_known_when_they_are_trained() -> None:
    rows = [_row(i, T0 + i * 3600.0 * 5, f"tok_{i % 7}", fraud=i % 9 == 0) for i in range(400)]
    stream = quality.Stream.from_rows(rows, delay_days=7)
    features = np.arange(len(rows), dtype=float).reshape(-1, 1)
    trained: list[tuple[float, np.ndarray]] = []
    weeks = [(T0 + 7 * DAY * w, T0 + 7 * DAY * (w + 1)) for w in (2, 3)]

    def fit(x: np.ndarray, y: np.ndarray) -> quality.Predict:
        trained.append((weeks[len(trained)][0], x[:, 0].astype(int)))
        return lambda rows: np.full(len(rows), 0.5)

    scores = quality.weekly_retrained(features, stream, weeks, fit, train_days=7)
    assert len(trained) == 2
    for start, used in trained:
        assert np.all(stream.known_at[used] <= start)
        assert np.all(stream.times[used] > start - 14 * DAY - 1)  # the last 7 labelled days
    in_weeks = (stream.times >= weeks[0][0]) & (stream.times < weeks[1][1])
    assert np.all(scores[in_weeks] == 0.5) and np.all(scores[~in_weeks] == 0)


def test_the_online_model_learns_each_label_only_once_known() -> None:
    rows = [_row(i, T0 + i * 3600.0 * 7, "tok_A", fraud=i % 5 == 0) for i in range(200)]
    stream = quality.Stream.from_rows(rows, delay_days=7)
    learnt_before: list[int] = []

    class Recorder:
        def __init__(self) -> None:
            self.learnt: list[dict[str, float]] = []

        def learn_one(self, x: dict[str, float], y: bool) -> None:
            self.learnt.append(x)

        def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
            learnt_before.append(len(self.learnt))
            return {True: 0.0}

    quality.online_delayed(np.zeros((len(rows), 1)), stream, Recorder, names=("x",))
    expected = [int(np.sum(stream.known_at[:i] <= stream.times[i])) for i in range(len(rows))]
    assert learnt_before == expected
    assert expected[0] == 0 and expected[-1] > 0


def test_the_online_forest_scores_each_row_before_it_learns_the_label() -> None:
    rows = [_row(i, T0 + i * 3600.0 * 2, "tok_A", fraud=i % 20 == 0) for i in range(1000)]
    stream = quality.Stream.from_rows(rows, delay_days=7)
    features = stream.labels.astype(float).reshape(-1, 1)  # the label itself: a leak would show at once
    learnt_before: list[int] = []

    class Spy:
        def __init__(self) -> None:
            self.model = quality.river_forest()
            self.learnt = 0

        def learn_one(self, x: dict[str, float], y: bool) -> None:
            self.learnt += 1
            self.model.learn_one(x, y)

        def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
            learnt_before.append(self.learnt)
            return self.model.predict_proba_one(x)

    scores = quality.online_delayed(features, stream, Spy, names=("x",))
    expected = [int(np.sum(stream.known_at[:i] <= stream.times[i])) for i in range(len(rows))]
    assert learnt_before == expected
    unknown = np.array(expected) == 0  # the first week: no label known, not even its own
    assert unknown.sum() == 84 and np.all(scores[unknown] == 0)
    late = np.arange(len(rows)) >= 500  # once it has learnt, it ranks every fraud first
    assert scores[late & stream.labels].min() > scores[late & ~stream.labels].max()


def test_precision_recall_and_the_svg_chart() -> None:
    recall, precision = quality.precision_recall([True, False, True, False], [0.9, 0.8, 0.8, 0.1])
    assert recall == [0.5, 1.0, 1.0] and precision == [1.0, 2 / 3, 0.5]
    svg = quality.line_chart_svg(
        "PR <test>", [("a", recall, precision), ("b", [0, 1], [None, 0.5])], "r", "p"
    )
    assert ET.fromstring(svg).tag.endswith("svg") and "PR &lt;test&gt;" in svg


# --- the benchmark, end to end -----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_quick_benchmark_prints_every_scorer_and_writes_its_figures(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/quality.py", "--quick", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=170,  # about 20 s on 2 idle cores
    )
    assert result.returncode == 0, result.stderr[-3000:]
    names = [
        "detector, combined",
        "detector, model alone",
        "LightGBM, weekly",
        "random forest, weekly",
        "River LR, online",
        "River ARF, online",
        "amount",
        "random",
        "LightGBM on detector features",
        "perfect ranking",
    ]
    table = result.stdout.split("\n\n")[0].splitlines()
    assert table[0].split() == ["scorer", "AUC", "AP", "CP@100", "seconds"]
    assert [line[:32].strip() for line in table[1:]] == names
    report = json.loads((tmp_path / "quality.json").read_text())
    assert report["dataset"]["transactions"] > 10_000
    assert len(report["protocol"]["test_weeks"]) >= 2
    for scorer in report["scorers"].values():
        assert {"roc_auc", "average_precision", "card_precision_at_k", "seconds", "weeks"} <= set(scorer)
        assert len(scorer["daily_card_precision"]) == 7 * len(report["protocol"]["test_weeks"])
    for chart in ("quality-pr.svg", "quality-daily-card-precision.svg"):
        ET.parse(tmp_path / chart)
    assert (tmp_path / "quality.html").stat().st_size > 100_000
