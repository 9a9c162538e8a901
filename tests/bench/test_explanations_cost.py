"""The measurement of what explaining alerts costs (pipeline/tools/bench/explanations.py), small."""

from __future__ import annotations

from pipeline.tools.bench.explanations import Cost, measure


def test_the_cost_of_explanations_is_measured_per_alert() -> None:
    costs = measure(3000, batch=100)
    assert [cost.champion for cost in costs] == ["logistic"], "the trees train after 2,500 labels"
    (cost,) = costs
    assert cost.transactions == 750 and 0 < cost.alerts < cost.transactions
    assert 0 < cost.explain_seconds < cost.detector_seconds
    assert "us per alert" in cost.line()


def test_the_line_says_the_shares() -> None:
    line = Cost("boosting", 1000, 70, 0.5, 0.014).line()
    assert line == (
        "boosting: 70 alerts in 1000 transactions (7.0%); 200 us per alert, "
        "14.0 us per transaction, 2.8% of the detector's time"
    )
