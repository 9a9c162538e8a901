"""``observe_many`` (pipeline/worker/telemetry.py): a batch's observations recorded at once expose
exactly what one ``observe`` per value would."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from pipeline.worker.telemetry import LATENCY_BUCKETS, observe_many
from tests.pipeline.factories import PROPERTY


def _histogram() -> tuple[CollectorRegistry, Histogram]:
    registry = CollectorRegistry()
    return registry, Histogram("latency_seconds", "test", buckets=LATENCY_BUCKETS, registry=registry)


def _exposition(registry: CollectorRegistry) -> list[str]:
    """The buckets and count as exposed (the sum aside: added in another order, it may differ in
    its last bits)."""
    lines = generate_latest(registry).decode().splitlines()
    return [line for line in lines if "_created" not in line and "_sum" not in line]


def _sum(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("latency_seconds_sum") or 0.0


# Values on the bucket bounds and between them, and lists short enough to take the one-by-one path.
VALUES = st.lists(
    st.sampled_from([0.0, *LATENCY_BUCKETS, 11.0, 1e6]) | st.floats(0, 20, allow_nan=False), max_size=60
)


@PROPERTY
@given(VALUES)
def test_a_batch_is_exposed_as_its_values_one_by_one(values: list[float]) -> None:
    one_by_one, histogram = _histogram()
    for value in values:
        histogram.observe(value)
    at_once, batched = _histogram()
    observe_many(batched, values)
    assert _exposition(at_once) == _exposition(one_by_one)
    assert math.isclose(_sum(at_once), _sum(one_by_one), rel_tol=1e-12, abs_tol=1e-12)


def test_a_value_on_a_bound_counts_in_that_bucket() -> None:
    registry, histogram = _histogram()
    observe_many(histogram, [0.001] * 10 + [0.0011] * 5)
    text = _exposition(registry)
    assert 'latency_seconds_bucket{le="0.001"} 10.0' in text
    assert 'latency_seconds_bucket{le="0.0025"} 15.0' in text
    assert "latency_seconds_count 15.0" in text
