"""The learned model: cold start, learning, calibration, champion and challengers, drift, pickling, Clip."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from river import checks, datasets

from pipeline.config import FRAUD_TYPES
from pipeline.detection.candidates import (
    BoostingCandidate,
    Clip,
    ExampleWindow,
    LogisticCandidate,
    _uncorrect,
    keep,
)
from pipeline.detection.model import Contender, OnlineFraudModel
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
    model = OnlineFraudModel(boosting=False)
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
    assert model.version == "logistic@0"
    assert [c.candidate.name for c in model.pool] == ["logistic", "boosting"]


def test_type_is_none_until_a_fraud_was_learnt() -> None:
    model = OnlineFraudModel(boosting=False)
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


def test_every_label_is_learnt_none_thrown_away(trained: OnlineFraudModel) -> None:
    assert trained.labels_learnt == 3000
    assert 800 < trained.frauds_learnt < 1000
    assert trained.version == f"logistic@{trained.labels_learnt}"


def test_the_fraud_weight_is_corrected_so_probabilities_stay_calibrated() -> None:
    """On overlapping classes with 5 % fraud, the mean predicted probability is close to 5 %
    (a weighted model that was not corrected would predict about 10 times too much)."""
    rng = random.Random(4)
    model = OnlineFraudModel(boosting=False)
    rows = [(rng.random() < 0.05, rng.gauss(0, 1)) for _ in range(20_000)]
    for i, (is_fraud, noise) in enumerate(rows):
        model.learn(f"tx-{i}", {"a": rng.gauss(1.0 if is_fraud else 0.0, 1.0) + 0 * noise}, is_fraud, None)
    probe = [model.fraud_probability({"a": rng.gauss(0.05, 1.0)}) for _ in range(2000)]
    assert 0.025 < sum(probe) / len(probe) < 0.1


def test_fraud_with_unknown_type_teaches_the_score_only() -> None:
    model = OnlineFraudModel(boosting=False)
    assert model.learn("tx-1", {"f0": 1.0}, True, None) is True
    assert model.learn("tx-2", {"f0": 1.0}, True, "phishing") is True
    assert (model.labels_learnt, model.frauds_learnt) == (2, 0)


@PROPERTY
@given(st.text(min_size=1, max_size=64), st.floats(0.0, 1.0))
def test_keep_is_a_pure_function_of_the_id(transaction_id: str, ratio: float) -> None:
    assert keep(transaction_id, ratio) == keep(transaction_id, ratio)
    assert keep(transaction_id, 1.0) is True
    assert keep(transaction_id, 0.0) is False


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


def _river_logistic(learning_rate: float = 0.02):  # type: ignore[no-untyped-def]
    """The river pipeline the logistic candidate reproduces (and that earlier snapshots hold)."""
    from river import linear_model, optim, preprocessing

    return (
        preprocessing.StandardScaler()
        | Clip(8.0)
        | linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=1e-5)
    )


def test_a_snapshot_of_the_single_logistic_model_becomes_the_pools_champion() -> None:
    """Snapshots saved before the pool (an ``OnlineFraudModel`` with one ``fraud`` pipeline) load as
    a pool whose champion is that pipeline, scoring as before."""
    old = _river_logistic()
    for i in range(200):
        old.learn_one({"a": float(i % 2) * 3}, bool(i % 2))
    state = {"fraud": old, "labels_learnt": 200, "frauds_learnt": 0, "legit_keep_ratio": 0.2}
    model = OnlineFraudModel.__new__(OnlineFraudModel)
    model.__setstate__(state)
    assert model.labels_learnt == 200 and len(model.pool) == 1
    assert model.fraud_probability({"a": 3.0}) == pytest.approx(
        old.predict_proba_one({"a": 3.0})[True], abs=1e-12
    )
    assert model.fraud_probability({"a": 3.0}) > 0.5


# --- boosting ------------------------------------------------------------------------------------
def test_boosting_trains_on_its_window_and_scores_a_batch_as_one_by_one() -> None:
    rng = random.Random(8)
    booster = BoostingCandidate(("a", "b"), retrain_every=1000, min_frauds=10)
    for i in range(1600):
        is_fraud = rng.random() < 0.1
        booster.learn({"a": rng.gauss(2.0 if is_fraud else 0.0, 1.0), "b": rng.random()}, is_fraud, f"tx-{i}")
    assert booster.ready and booster.trainings == 2  # at 500 labels (first), then 1000 later
    rows = [{"a": rng.gauss(0, 2), "b": rng.random()} for _ in range(50)]
    assert booster.predict_many(rows) == [booster.predict_many([row])[0] for row in rows]
    high, low = booster.predict_many([{"a": 4.0, "b": 0.5}, {"a": -2.0, "b": 0.5}])
    assert high > 0.5 > low
    assert booster.explain({"a": 4.0, "b": 0.5})[0][0] == "a"
    assert booster.explain_many(rows) == [booster.explain(row) for row in rows], "one call, the same answers"
    restored = pickle.loads(pickle.dumps(booster))
    assert restored.predict_many(rows) == booster.predict_many(rows)


def test_the_example_window_keeps_the_most_recent_rows() -> None:
    window = ExampleWindow(columns=2, capacity=3000)
    for i in range(5000):
        window.append([float(i), -float(i)], i % 7 == 0)
    rows, labels = window.data()
    assert len(window) == 3000 and rows.dtype == np.float32
    assert sorted(rows[:, 0].tolist()) == [float(i) for i in range(2000, 5000)]
    assert labels.sum() == sum(1 for i in range(2000, 5000) if i % 7 == 0)
    restored = pickle.loads(pickle.dumps(window))
    assert (restored.data()[0] == rows).all()


# --- champion and challengers --------------------------------------------------------------------
class Noise(LogisticCandidate):
    """A candidate that scores at random: a champion any learner beats, a challenger that never wins."""

    def predict_many(self, rows):  # type: ignore[no-untyped-def]
        rng = random.Random(len(rows) * 7919 + self.learnt)
        return [rng.random() for _ in rows]


def separable(model: OnlineFraudModel, count: int, rng: random.Random, start: int = 0) -> None:
    for i in range(start, start + count):
        is_fraud = rng.random() < 0.1
        model.learn(f"tx{i}", {"a": rng.gauss(2.5 if is_fraud else 0, 1)}, is_fraud, None)


def test_a_better_challenger_is_promoted() -> None:
    model = OnlineFraudModel(boosting=False, cooldown=1000)
    model.pool = [Contender(Noise(name="noise"), 0), Contender(LogisticCandidate(), 0)]
    separable(model, 3000, random.Random(3))
    assert model.pool[model.champion].candidate.name == "logistic"
    assert [p.champion for p in model.promotions] == ["logistic"]
    promotion = model.promotions[0]
    assert promotion.champion_ap > promotion.beaten_ap + model.margin
    assert model.version.startswith("logistic.g1@")
    assert len(model.pool) == 2, "the demoted champion stays in the pool"


def test_a_better_champion_is_kept() -> None:
    model = OnlineFraudModel(boosting=False, cooldown=1000)
    model.pool = [Contender(LogisticCandidate(), 0), Contender(Noise(name="noise"), 0)]
    separable(model, 3000, random.Random(3))
    assert model.champion == 0 and model.promotions == []


def test_a_drift_adds_a_challenger_and_the_champion_scores_until_it_is_beaten() -> None:
    """The fraud pattern flips half-way: ADWIN sees the champion's errors rise, a fresh challenger
    learns beside it, and replaces it once it ranks the new pattern better on the labels both saw;
    what the old champion learnt stays in the pool."""
    model = OnlineFraudModel(boosting=False, cooldown=500, min_frauds=20)
    model.pool = [Contender(LogisticCandidate(learning_rate=0.002), 0)]  # a champion slow to adapt
    rng = random.Random(1)
    for i in range(6000):
        is_fraud = rng.random() < 0.3
        sign = -1 if i >= 2000 else 1
        model.learn(f"tx{i}", {"a": rng.gauss(3 * sign if is_fraud else 0, 1)}, is_fraud, None)
        if i == 1999:
            assert model.drifts == 0 and model.fraud_probability({"a": 3.0}) > 0.5
    assert model.drifts >= 1
    assert len(model.pool) == 2
    assert model.promotions and model.promotions[0].at_label > 2000
    assert model.pool[model.champion].candidate.name.startswith("logistic-d")
    assert model.fraud_probability({"a": -3.0}) > 0.8, "the new champion learnt the new pattern"


def test_no_drift_on_a_stationary_stream() -> None:
    model = OnlineFraudModel(boosting=False)
    rng = random.Random(2)
    for i in range(4000):
        is_fraud = rng.random() < 0.3
        model.learn(
            f"tx{i}",
            {"a": rng.gauss(3 if is_fraud else 0, 1)},
            is_fraud,
            "identity_theft" if is_fraud else None,
        )
    assert model.drifts == 0 and model.promotions == [] and len(model.pool) == 1


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


def test_the_logistic_candidate_learns_and_scores_as_the_river_pipeline_does() -> None:
    """The arrays learn as river's StandardScaler | Clip | LogisticRegression learns row by row
    (frauds weighted; a constant feature; a feature that appears mid-stream; rows missing one), and
    score a batch as its ``predict_proba_one`` does, corrected for the weight: to float rounding."""
    rng = random.Random(4)
    candidate, river_model = LogisticCandidate(), _river_logistic()
    assert candidate.predict_many([{"a": 1.0}]) == [0.0], "nothing learnt: 0"
    for i in range(3000):
        is_fraud = rng.random() < 0.05
        row = {"a": rng.gauss(3.0 if is_fraud else 0.0, 1.0), "b": rng.random() * 50, "flat": 1.0}
        if i > 1000:
            row["late"] = rng.gauss(2.0 if is_fraud else 0.0, 1.0)
        if i % 7 == 0:
            del row["b"]
        candidate.learn(row, is_fraud)
        river_model.learn_one(row, is_fraud, w=candidate.fraud_weight if is_fraud else 1.0)
    weights = river_model["LogisticRegression"].weights
    np.testing.assert_allclose(
        candidate.weights, [weights[n] for n in candidate.names], rtol=1e-9, atol=1e-12
    )
    assert candidate.intercept == pytest.approx(river_model["LogisticRegression"].intercept, rel=1e-9)

    def expected(x: dict[str, float]) -> float:
        return _uncorrect(river_model.predict_proba_one(x)[True], candidate.fraud_weight)

    rows = [
        {
            "a": rng.gauss(0, 4),
            "b": rng.random() * 40,
            "flat": rng.choice([1.0, 2.0]),
            "late": rng.gauss(0, 2),
        }
        for _ in range(300)
    ]
    rows.append({"a": 1e6, "b": 0.0, "flat": 1.0, "late": 0.0})  # far beyond the clip
    np.testing.assert_allclose(
        candidate.predict_many(rows), [expected(x) for x in rows], rtol=1e-9, atol=1e-12
    )
    mixed = [*rows[:3], {"a": 2.0, "unseen": 5.0}]
    np.testing.assert_allclose(
        candidate.predict_many(mixed), [expected(x) for x in mixed], rtol=1e-9, atol=1e-12
    )
    assert [name for name, _ in candidate.explain(rows[0])] == [
        name for name, _ in sorted(
            ((n, weights[n] * v) for n, v in river_model["Clip"].transform_one(
                river_model["StandardScaler"].transform_one(rows[0])).items()),
            key=lambda item: -item[1],
        )[:3] if _ > 0
    ]  # fmt: skip


def test_a_river_based_logistic_candidate_snapshot_loads_as_arrays() -> None:
    river_model = _river_logistic()
    rng = random.Random(5)
    for _ in range(500):
        is_fraud = rng.random() < 0.1
        river_model.learn_one(
            {"a": rng.gauss(2.0 if is_fraud else 0.0, 1.0)}, is_fraud, w=10.0 if is_fraud else 1.0
        )
    old_state = {
        "fraud_weight": 10.0,
        "learning_rate": 0.02,
        "name": "logistic",
        "model": river_model,
        "learnt": 500,
    }
    candidate = LogisticCandidate.__new__(LogisticCandidate)
    candidate.__setstate__(old_state)
    probe = {"a": 2.5}
    assert candidate.learnt == 500 and candidate.predict_many([probe])[0] == pytest.approx(
        _uncorrect(river_model.predict_proba_one(probe)[True], 10.0), abs=1e-12
    )
    restored = pickle.loads(pickle.dumps(candidate))
    restored.learn({"a": 3.0}, True)
    candidate.learn({"a": 3.0}, True)
    assert restored.predict_many([probe]) == candidate.predict_many([probe])
