"""Pure figure builders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.figures import EMPTY_MESSAGE, fraud_rate_figure
from monitor.state.decisions import DecisionAggregator, RateSeries
from pipeline.config import FRAUD_TYPE_NAMES, FRAUD_TYPES

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
