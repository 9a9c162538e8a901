"""Explanations of alerts (pipeline/detection/explanations.py): the champion's contributions add up
to its score, factors group and rank them, the names are plain language with this card's or
terminal's typical value, only alerts are explained, and no identifier reaches a name."""

from __future__ import annotations

import math
import random
import re

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.contracts.validation import text_has_card_number
from pipeline.detection.candidates import BoostingCandidate, LogisticCandidate
from pipeline.detection.engine import Decision, DetectionEngine
from pipeline.detection.explanations import (
    TOP_FACTORS,
    ExplainedFeatures,
    Explanation,
    explain,
    explain_alerts,
    explanation_of,
)
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.model import OnlineFraudModel
from pipeline.detection.plain_words import GROUPS, describe, plain_signals
from pipeline.detection.rules import RuleSet
from tests.pipeline.factories import PROPERTY, features_for, make_txn


def _rows(count: int, seed: int = 1) -> list[tuple[dict[str, float], bool]]:
    """Labelled rows of every feature: frauds are foreign, large and at busy terminals."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        fraud = rng.random() < 0.2
        txn = make_txn(amount=round(rng.uniform(200, 900) if fraud else rng.uniform(5, 80), 2))
        features = features_for(
            txn,
            is_foreign=float(fraud and rng.random() < 0.8),
            terminal_distinct_cards_10m=float(rng.randint(5, 30) if fraud else rng.randint(0, 3)),
            card_count_30d=float(rng.randint(1, 60)),
            card_mean_amount_30d=rng.uniform(10, 60),
        )
        rows.append((features, fraud))
    return rows


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# --- the split adds up -----------------------------------------------------------------------------------
def test_linear_contributions_add_up_to_the_score() -> None:
    candidate = LogisticCandidate()
    for i, (features, fraud) in enumerate(_rows(600)):
        candidate.learn(features, fraud, f"tx-{i}")
    probe = [features for features, _ in _rows(20, seed=2)]
    for probability, attribution in zip(
        candidate.predict_many(probe), candidate.attributions_many(probe), strict=True
    ):
        assert 1e-9 < probability < 1 - 1e-9
        total = attribution.base + sum(attribution.contributions.values())
        assert total == pytest.approx(_logit(probability), abs=1e-6)
    assert LogisticCandidate.ATTRIBUTION == "linear"


def test_tree_contributions_add_up_to_the_score() -> None:
    candidate = BoostingCandidate(FEATURE_NAMES, retrain_every=10**9, rounds=20)
    for i, (features, fraud) in enumerate(_rows(1500)):
        candidate.learn(features, fraud, f"tx-{i}")
    assert candidate.retrain()
    probe = [features for features, _ in _rows(20, seed=3)]
    for probability, attribution in zip(
        candidate.predict_many(probe), candidate.attributions_many(probe), strict=True
    ):
        total = attribution.base + sum(attribution.contributions.values())
        assert total == pytest.approx(_logit(probability), abs=1e-4)  # float32 trees
    assert BoostingCandidate.ATTRIBUTION == "tree_shap"


# --- factors ---------------------------------------------------------------------------------------------
def test_factors_group_features_rank_them_and_keep_only_those_that_pushed_the_score_up() -> None:
    features = features_for(make_txn(amount=520.0), card_count_30d=10.0, card_mean_amount_30d=100.0)
    contributions = {
        "amount": 0.5,
        "log_amount": 0.7,  # the amount's group: 0.5 + 0.7 - 0.2
        "amount_zscore": -0.2,
        "hour_sin": 0.3,
        "hour_cos": 0.4,  # the hour: 0.7
        "is_foreign": 2.0,
        "card_count_1h": -1.0,  # pulled the score down: not shown
        "terminal_frauds_7d": 0.05,
    }
    explanation = explain("linear", -3.0, contributions, features)
    assert [f.feature for f in explanation.factors] == [
        "is_foreign",
        "amount",
        "time_of_day",
        "terminal_frauds_7d",
    ]
    amount = explanation.factors[1]
    assert amount.contribution == pytest.approx(1.0)
    assert (amount.name, amount.value, amount.typical) == (
        "5.2× this card's 30-day mean amount",
        520.0,
        100.0,
    )
    assert len(explain("linear", 0.0, dict.fromkeys(FEATURE_NAMES, 1.0), features).factors) == TOP_FACTORS


def test_every_feature_has_a_plain_name() -> None:
    features = features_for(make_txn(), card_count_30d=12.0, card_history_count=30.0)
    grouped = {feature for members in GROUPS.values() for feature in members}
    for feature in set(FEATURE_NAMES) - grouped:
        name, _ = describe(feature, 3.0, features)
        assert ":" not in name and "_" not in name, f"{feature} has no plain name: {name}"
    for group in GROUPS:
        name, _ = describe(group, 1.0, features)
        assert "_" not in name, name


@pytest.mark.parametrize(
    ("factor", "value", "features", "name", "typical"),
    [
        ("terminal_frauds_7d", 3.0, {}, "terminal had 3 confirmed frauds in 7 days", None),
        ("terminal_frauds_7d", 3.0, {"terminal_frauds_30d": 6.0},
         "terminal had 3 confirmed frauds in 7 days (30-day pace 1.4)", 1.4),
        ("terminal_frauds_1d", 1.0, {}, "terminal had 1 confirmed fraud in the last day", None),
        ("amount", 520.0, {"card_count_30d": 10.0, "card_mean_amount_30d": 100.0},
         "5.2× this card's 30-day mean amount", 100.0),
        ("amount", 1.0, {"card_count_30d": 4.0, "card_mean_amount_30d": 52.1},
         "amount 1.00 against this card's 30-day mean of 52.10", 52.1),
        ("amount", 1040.0, {"card_count_30d": 0.0},
         "amount 1,040.00; no payment by this card in 30 days", None),
        ("card_count_1h", 6.0, {"card_count_30d": 72.0},
         "6 payments by this card in the last hour (30-day pace 0.1)", 0.1),
        ("card_count_24h", 9.0, {"card_count_30d": 60.0},
         "9 payments by this card in 24 hours (30-day pace 2)", 2.0),
        ("card_amount_24h", 2282.48, {"card_amount_30d": 2282.48},
         "2,282.48 spent by this card in 24 hours (30-day pace 76.08)", 76.08),
        ("terminal_count_1h", 40.0, {"terminal_count_24h": 48.0},
         "40 payments at this terminal in the last hour (24-hour pace 2)", 2.0),
        ("terminal_distinct_cards_10m", 14.0, {}, "terminal saw 14 distinct cards in 10 minutes", None),
        ("device_small_amount_cards_10m", 9.0, {},
         "device was used by 9 cards paying small amounts in 10 minutes", None),
        ("merchant_fraud_rate_7d", 0.125, {"merchant_fraud_rate_30d": 0.02},
         "12% of this merchant's labelled payments in 7 days were frauds (30-day rate 2%)", 0.02),
        ("customer_amount_to_mean_30d", 5.2, {}, "5.2× this customer's 30-day mean amount", 1.0),
        ("seconds_since_prev", 120.0, {"card_history_count": 5.0, "card_count_30d": 30.0},
         "2 min since this card's previous payment (30-day mean gap 24.0 h)", 86_400.0),
        ("seconds_since_prev", 2_592_000.0, {"card_history_count": 0.0}, "first payment of this card", None),
        ("account_age_days", 3.0, {}, "account opened 3 days ago", None),
        ("is_new_device", 1.0, {}, "first payment of this card from this device", None),
        ("is_foreign", 0.0, {}, "card issued in the payment's country", None),
        ("time_of_day", 3.2, {}, "paid at 03:12 UTC", None),
        ("channel", 1.0, {"channel_ecommerce": 1.0}, "online payment (e-commerce)", None),
    ],
)  # fmt: skip
def test_plain_names(
    factor: str, value: float, features: dict[str, float], name: str, typical: float | None
) -> None:
    described, usual = describe(factor, value, features)
    assert described == name
    assert usual == (None if typical is None else pytest.approx(typical, rel=0.01))


@PROPERTY
@given(
    values=st.dictionaries(
        st.sampled_from(FEATURE_NAMES),
        st.floats(min_value=-1e18, max_value=1e18, allow_nan=False),
        min_size=1,
    )
)
def test_names_never_hold_a_card_number(values: dict[str, float]) -> None:
    """Names are fixed phrases and numbers with thousands separators: whatever the values, no run
    of digits long enough to be a card number, and nothing from the transaction's text."""
    features = features_for(make_txn(card_token="tok_4111111111111111"), **values)
    explanation = explain("linear", 0.0, dict.fromkeys(values, 1.0), features, top=len(FEATURE_NAMES))
    for factor in explanation.factors:
        assert not re.search(r"[0-9]{13}", factor.name)
        assert not text_has_card_number(factor.name)
        assert "tok_" not in factor.name and "m-00001" not in factor.name
        assert len(factor.name) <= 200, "the schema's limit"


# --- only alerts -----------------------------------------------------------------------------------------
def _engine(learnt: int, min_labels: int = 10) -> DetectionEngine:
    model = OnlineFraudModel(boosting=False)
    for i, (features, fraud) in enumerate(_rows(learnt)):
        model.learn(f"tx-{i}", features, fraud, "unauthorized_transactions" if fraud else None)
    return DetectionEngine(rules=RuleSet(()), model=model, model_min_labels=min_labels)


def _decision(action: str) -> Decision:
    return Decision(action, 0.9, 0.9, "unauthorized_transactions" if action != "allow" else None, (), (), "m")


def test_only_alerts_are_explained_in_one_call() -> None:
    engine = _engine(300)
    labelled = _rows(40, seed=5)
    frauds = [features for features, fraud in labelled if fraud]
    legit = [features for features, fraud in labelled if not fraud]
    rows = [legit[0], frauds[0], legit[1], frauds[1]]
    decisions = [_decision("allow"), _decision("review"), ValueError("failed"), _decision("block")]
    calls: list[int] = []
    champion = engine.model.best
    original = champion.attributions_many
    champion.attributions_many = lambda batch: calls.append(len(batch)) or original(batch)  # type: ignore[method-assign]
    out = explain_alerts(engine, rows, decisions)
    assert calls == [2], "one call, for the two alerts"
    assert [explanation_of(f) is not None for f in out] == [False, True, False, True]
    assert out[0] is rows[0] and out[2] is rows[2]
    explained = out[1]
    assert isinstance(explained, ExplainedFeatures) and explained == rows[1]
    assert explained.explanation.method == "linear" and explained.explanation.factors
    assert orjson.loads(orjson.dumps(explained)) == orjson.loads(orjson.dumps(rows[1])), (
        "stored as the features"
    )


def test_nothing_is_explained_before_the_model_scores() -> None:
    rows = [features for features, _ in _rows(2, seed=6)]
    decisions = [_decision("block"), _decision("review")]
    early = explain_alerts(_engine(5, min_labels=10), rows, decisions)
    assert [explanation_of(f) for f in early] == [None, None]
    untrained = DetectionEngine(rules=RuleSet(()), model=OnlineFraudModel(boosting=False), model_min_labels=0)
    assert [explanation_of(f) for f in explain_alerts(untrained, rows, decisions)] == [None, None]


def test_the_message_rounds_and_names_the_method() -> None:
    features = features_for(make_txn(), terminal_frauds_7d=3.0, terminal_frauds_30d=6.0)
    message = explain("tree_shap", -2.123456, {"terminal_frauds_7d": 1.234567}, features).message()
    assert message == {
        "method": "tree_shap",
        "base": -2.1235,
        "factors": [
            {
                "feature": "terminal_frauds_7d",
                "name": "terminal had 3 confirmed frauds in 7 days (30-day pace 1.4)",
                "value": 3.0,
                "typical": 1.4,
                "contribution": 1.2346,
            }
        ],
    }
    assert isinstance(explain("linear", 0.0, {}, features), Explanation)


def test_an_explanation_that_fails_costs_no_decision(caplog: pytest.LogCaptureFixture) -> None:
    engine = _engine(300)
    rows = [features for features, _ in _rows(2, seed=7)]

    def broken(_rows: object) -> list[object]:
        raise ValueError("no split")

    engine.model.best.attributions_many = broken  # type: ignore[method-assign]
    out = explain_alerts(engine, rows, [_decision("block"), _decision("allow")])
    assert list(out) == rows and [explanation_of(f) for f in out] == [None, None]
    assert "go out without explanations" in caplog.text


def test_a_models_signals_are_named_in_plain_words_a_group_once() -> None:
    features = features_for(make_txn(amount=500.0), contact_changed_7d=1.0, card_mean_amount_30d=50.0)
    said = plain_signals(["contact_changed_7d", "log_amount", "amount", "shipping_mismatch"], features)
    assert said == [
        "contact details changed in the last 7 days",
        describe("amount", 500.0, features)[0],
        describe("shipping_mismatch", features["shipping_mismatch"], features)[0],
    ]


def test_the_models_reason_names_its_strongest_signals_in_plain_words() -> None:
    """The reason line of a decision the model flags, as an analyst reads it in the alert queue: no
    feature names ("contact_changed_7d = 1"), the same words as the alert's explanation."""
    engine = _engine(300)
    reasons = [
        reason
        for features, fraud in _rows(40, seed=7)
        if fraud
        for reason in engine.decide(make_txn(amount=features["amount"]), features).reasons
        if reason.startswith("Model:")
    ]
    assert reasons
    for reason in reasons:
        signals = reason.split("; strongest signals: ")[1]
        assert "_" not in signals and " = " not in signals, reason
