"""Pure figure builders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.figures import EMPTY_MESSAGE, explanation_figure, fraud_rate_figure
from monitor.state.alerts import alert_factors
from monitor.state.decisions import DecisionAggregator, RateSeries
from pipeline.config import FRAUD_TYPE_NAMES, FRAUD_TYPES
from pipeline.detection.explanations import Factor

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("code", FRAUD_TYPES)
def test_series_becomes_one_percent_line(code: str) -> None:
    series = RateSeries([T0, T0 + timedelta(minutes=1)], [0.2, 0.05])
    fig = fraud_rate_figure(series, code)
    [trace] = fig.data
    assert trace.type == "scatter"
    assert list(trace.x) == [datetime(2026, 11, 28, 9, 0), datetime(2026, 11, 28, 9, 1)]  # naive UTC
    assert list(trace.y) == [0.2, 0.05]
    assert trace.name == FRAUD_TYPE_NAMES[code]
    assert FRAUD_TYPE_NAMES[code] in fig.layout.title.text
    assert fig.layout.yaxis.tickformat.endswith("%")
    assert fig.layout.uirevision == code
    assert not fig.layout.annotations


@pytest.mark.parametrize("code", FRAUD_TYPES)
def test_empty_series_shows_waiting_message(code: str) -> None:
    fig = fraud_rate_figure(RateSeries([], []), code)
    assert fig.data == ()
    [note] = fig.layout.annotations
    assert note.text == EMPTY_MESSAGE == "Waiting for decisions…"
    assert FRAUD_TYPE_NAMES[code] in fig.layout.title.text
    assert fig.layout.xaxis.visible is False


def test_figure_from_aggregator_series(make_decision) -> None:
    agg = DecisionAggregator(60)
    agg.add(make_decision("a", decision="block", fraud_type="malicious_behavior"))
    agg.add(make_decision("b"))
    agg.add(make_decision("c"))
    agg.add(make_decision("d"))
    fig = fraud_rate_figure(agg.fraud_rate_series("malicious_behavior"), "malicious_behavior")
    assert list(fig.data[0].y) == [0.25]


def test_figure_serialises_to_json() -> None:
    fig = fraud_rate_figure(RateSeries([T0], [1.0]), "identity_theft")
    assert '"2026-11-28T09:00:00"' in fig.to_json()


def test_unknown_fraud_type_is_an_error() -> None:
    with pytest.raises(KeyError):
        fraud_rate_figure(RateSeries([], []), "Identity Theft")


def test_explanation_is_a_bar_per_factor_largest_on_top() -> None:
    factors = [
        Factor("amount", "5.2× this card's 30-day mean amount", 70.0, 13.46, 2.31),
        Factor(
            "terminal_frauds_7d",
            "terminal had 3 confirmed frauds in 7 days (30-day pace 1.4)",
            3.0,
            1.4,
            1.24,
        ),
        Factor("is_new_device", "first payment of this card from this device", 1.0, None, 0.46),
    ]
    fig = explanation_figure(factors)
    [bar] = fig.data
    assert (bar.type, bar.orientation) == ("bar", "h")
    assert list(bar.x) == [2.31, 1.24, 0.46]
    assert list(bar.y) == [
        "5.2× this card's 30-day mean amount",
        "terminal had 3 confirmed frauds in 7 days<br>(30-day pace 1.4)",
        "first payment of this card from this device",
    ]
    assert list(bar.text) == ["+2.31", "+1.24", "+0.46"]
    assert list(bar.customdata) == ["value 70 · typical here 13.46", "value 3 · typical here 1.4", "value 1"]
    assert fig.layout.yaxis.autorange == "reversed", "the first (largest) factor on top"
    assert fig.layout.paper_bgcolor == "rgba(0,0,0,0)", "readable on the light and the dark page"


def test_alert_factors_read_v2_leniently() -> None:
    assert alert_factors({"schema_version": 1}) == []
    assert alert_factors({"explanation": "nonsense"}) == []
    explanation = {
        "factors": [
            {"feature": "amount", "name": "ok", "value": 1, "typical": None, "contribution": 0.5},
            {"name": "", "value": 1, "typical": None, "contribution": 0.4},
            {"name": "no contribution", "value": 1, "typical": 2},
            {"name": "bad typical", "value": 2, "typical": "x", "contribution": True},
            "not a factor",
        ]
    }
    assert alert_factors({"explanation": explanation}) == [Factor("amount", "ok", 1.0, None, 0.5)]
