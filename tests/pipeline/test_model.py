"""The online model: cold start, learning a separable problem, under-sampling, pickling, Clip."""

from __future__ import annotations

import pickle
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from river import checks, datasets

from pipeline.config import FRAUD_TYPES
from pipeline.detection.model import Clip, OnlineFraudModel, _keep
from tests.pipeline.factories import PROPERTY

CENTRES = {
    "unauthorized_transactions": (3.0, 0.0, 0.0),
    "identity_theft": (0.0, 3.0, 0.0),
    "malicious_behavior": (0.0, 0.0, 3.0),
}


def legit(rng: random.Random) -> dict[str, float]:
    return {f"f{i}": rng.gauss(-1.0, 0.3) for i in range(3)} | {"noise": rng.gauss(0, 1)}


def fraud(rng: random.Random, kind: str) -> dict[str, float]:
    return {f"f{i}": rng.gauss(c, 0.3) for i, c in enumerate(CENTRES[kind])} | {"noise": rng.gauss(0, 1)}


@pytest.fixture(scope="module")
def trained() -> OnlineFraudModel:
    rng = random.Random(1)
    model = OnlineFraudModel()
    for i in range(3000):
        if rng.random() < 0.3:
            kind = rng.choice(FRAUD_TYPES)
            assert model.learn(f"tx-{i}", fraud(rng, kind), True, kind) is True
        else:
            model.learn(f"tx-{i}", legit(rng), False, None)
    return model


def test_untrained_model_predicts_nothing() -> None:
    model = OnlineFraudModel()
    assert model.predict({"f0": 10.0, "f1": -3.0}) == (0.0, None)
    assert model.version == "lr-softmax-1@0"


def test_type_is_none_until_a_fraud_was_learnt() -> None:
    model = OnlineFraudModel(legit_keep_ratio=1.0)
    model.learn("tx-1", {"f0": 1.0}, False, None)
    probability, kind = model.predict({"f0": 1.0})
    assert 0.0 <= probability <= 1.0
    assert kind is None
    assert (model.labels_learnt, model.frauds_learnt) == (1, 0)


def test_learns_a_separable_problem(trained: OnlineFraudModel) -> None:
    rng = random.Random(99)
    for kind in FRAUD_TYPES:
        for _ in range(20):
            probability, predicted = trained.predict(fraud(rng, kind))
            assert probability > 0.8
            assert predicted == kind
    for _ in range(50):
        probability, _ = trained.predict(legit(rng))
        assert probability < 0.2


def test_counts_and_version(trained: OnlineFraudModel) -> None:
    # ~900 frauds all learnt, ~2100 legitimate examples under-sampled to ~20 %.
    assert 800 < trained.frauds_learnt < 1000
    legit_learnt = trained.labels_learnt - trained.frauds_learnt
    assert 300 < legit_learnt < 560
    assert trained.version == f"lr-softmax-1@{trained.labels_learnt}"


def test_fraud_with_unknown_type_teaches_the_score_only() -> None:
    model = OnlineFraudModel()
    assert model.learn("tx-1", {"f0": 1.0}, True, None) is True
    assert model.learn("tx-2", {"f0": 1.0}, True, "phishing") is True
    assert (model.labels_learnt, model.frauds_learnt) == (2, 0)


def test_undersampling_is_deterministic_per_transaction_id() -> None:
    ids = [f"tx-run-{i:06d}" for i in range(5000)]

    def run() -> tuple[int, list[bool]]:
        model = OnlineFraudModel()
        kept = [model.learn(tid, {"f0": 0.5}, False, None) for tid in ids]
        return model.labels_learnt, kept

    first, second = run(), run()
    assert first == second
    count, kept = first
    assert count == sum(kept)
    assert 0.17 * len(ids) < count < 0.23 * len(ids)  # legit_keep_ratio 0.2
    # Frauds are never skipped, whatever their id.
    model = OnlineFraudModel()
    assert all(model.learn(tid, {"f0": 1.0}, True, "identity_theft") for tid in ids[:200])


@PROPERTY
@given(st.text(min_size=1, max_size=64), st.floats(0.0, 1.0))
def test_keep_is_a_pure_function_of_the_id(transaction_id: str, ratio: float) -> None:
    assert _keep(transaction_id, ratio) == _keep(transaction_id, ratio)
    assert _keep(transaction_id, 1.0) is True
    assert _keep(transaction_id, 0.0) is False


def test_pickle_round_trip_gives_identical_predictions(trained: OnlineFraudModel) -> None:
    restored = pickle.loads(pickle.dumps(trained, protocol=pickle.HIGHEST_PROTOCOL))
    rng = random.Random(5)
    probes = [legit(rng) for _ in range(10)] + [fraud(rng, kind) for kind in FRAUD_TYPES for _ in range(5)]
    for x in probes:
        assert restored.predict(x) == trained.predict(x)
    assert restored.version == trained.version
    # and they keep learning identically
    a, b = pickle.loads(pickle.dumps(trained)), restored
    for i, x in enumerate(probes):
        a.learn(f"tx-more-{i}", x, True, "malicious_behavior")
        b.learn(f"tx-more-{i}", x, True, "malicious_behavior")
    assert [a.predict(x) for x in probes] == [b.predict(x) for x in probes]


# --- Clip ------------------------------------------------------------------------------------------
def test_clip_clips() -> None:
    assert Clip().transform_one({"a": -7.5, "b": 5.0, "c": 5.01, "d": 0.3, "e": -5.0}) == {
        "a": -5.0,
        "b": 5.0,
        "c": 5.0,
        "d": 0.3,
        "e": -5.0,
    }
    assert Clip(limit=1.0).transform_one({"x": 2.0, "y": -0.5}) == {"x": 1.0, "y": -0.5}
    assert Clip().transform_one({}) == {}


@PROPERTY
@given(
    st.dictionaries(st.text(max_size=5), st.floats(-1e9, 1e9, allow_nan=False), max_size=10),
    st.floats(0.01, 100),
)
def test_clip_bounds_and_keeps_values_inside(x: dict[str, float], limit: float) -> None:
    out = Clip(limit).transform_one(x)
    assert set(out) == set(x)
    for name, value in x.items():
        assert -limit <= out[name] <= limit
        if -limit <= value <= limit:
            assert out[name] == value
        else:
            assert out[name] == (limit if value > 0 else -limit)


def test_clip_passes_rivers_estimator_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """river.checks.check_estimator applies to a plain Transformer. It imports scikit-learn only
    to build datasets for other kinds of estimators; for a plain Transformer it uses
    ``datasets.TrumpApproval().take(200 * scale)``. scikit-learn is not a dependency of this
    project, so when it is missing the dataset generator is replaced by exactly that one."""
    try:
        import sklearn  # noqa: F401
    except ImportError:

        def transformer_datasets(model: object, scale: int = 1):  # type: ignore[no-untyped-def]
            yield datasets.TrumpApproval().take(200 * scale)

        monkeypatch.setattr(checks, "_yield_datasets", transformer_datasets)
    names = [check.__name__ for check in checks.yield_checks(Clip())]
    assert "check_transform_one" in names  # the dataset-driven checks are included
    assert Clip()._unit_test_skips() == set()
    checks.check_estimator(Clip())
    checks.check_estimator(Clip(limit=0.5))


def test_a_rise_in_the_model_error_rate_starts_a_new_generation() -> None:
    """ADWIN watches the errors on learnt labels; when the world flips, the model starts afresh."""
    import random

    model = OnlineFraudModel(legit_keep_ratio=1.0)
    rng = random.Random(1)
    detected_at = None
    for i in range(4000):
        fraud = rng.random() < 0.3
        sign = -1 if i >= 2000 else 1  # the fraud pattern flips half-way
        model.learn(
            f"tx{i}",
            {"a": rng.gauss(3 * sign if fraud else 0, 1)},
            fraud,
            "identity_theft" if fraud else None,
        )
        if model.generation and detected_at is None:
            detected_at = i
    assert detected_at is not None and 2000 <= detected_at < 2500, detected_at
    assert model.drifts == 1
    assert ".g1@" in model.version
    assert model.predict({"a": -3.0})[0] > 0.8, "the new generation learnt the new pattern"


def test_no_drift_on_a_stationary_stream() -> None:
    import random

    model = OnlineFraudModel(legit_keep_ratio=1.0)
    rng = random.Random(2)
    for i in range(4000):
        fraud = rng.random() < 0.3
        model.learn(
            f"tx{i}", {"a": rng.gauss(3 if fraud else 0, 1)}, fraud, "identity_theft" if fraud else None
        )
    assert model.drifts == 0
