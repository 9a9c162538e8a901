"""DetectionEngine.decide: the combination documented in engine.py's module docstring."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import FRAUD_TYPES
from pipeline.detection.engine import COLUMNAR_RULES_FROM, RULE_SCORE, Decision, DetectionEngine
from pipeline.detection.features import FEATURE_NAMES, Features
from pipeline.detection.model import OnlineFraudModel
from pipeline.detection.rules import parse_rules
from tests.pipeline.factories import PROPERTY, features_for, make_txn

RULES = textwrap.dedent(
    """\
    rules:
      - id: R-review-big
        fraud_type: identity_theft
        action: review
        when: amount >= 1000
        reason: "Big amount {amount:.0f}"
      - id: R-review-abroad
        fraud_type: unauthorized_transactions
        action: review
        when: is_foreign == 1
        reason: "Abroad in {country}"
      - id: R-block-huge
        fraud_type: malicious_behavior
        action: block
        when: amount >= 5000
        reason: "Huge amount {amount:.0f}"
    lists:
      blocked_cards: [tok_blocked0001, tok_both000001]
      blocked_devices: [dev-bad]
      blocked_merchants: [m-bad]
      allowed_cards: [tok_allowed001, tok_both000001]
    """
)


@dataclass
class FixedModel(OnlineFraudModel):
    """A model whose prediction is fixed; labels_learnt is what the test says."""

    fixed_score: float = 0.0
    fixed_type: str | None = None

    def fraud_probabilities(self, rows: list[Features]) -> list[float]:
        return [self.fixed_score] * len(rows)

    def likely_type(self, features: Features) -> str | None:
        return self.fixed_type


def engine(score: float = 0.0, kind: str | None = None, labels: int = 0, **options: Any) -> DetectionEngine:
    model = FixedModel(fixed_score=score, fixed_type=kind, labels_learnt=labels)
    return DetectionEngine(parse_rules(RULES, FEATURE_NAMES), model, **options)


def decide(eng: DetectionEngine, **txn_fields: Any) -> Decision:
    txn = make_txn(**txn_fields)
    return eng.decide(txn, features_for(txn))


def test_nothing_suspicious_is_allowed() -> None:
    decided = decide(engine(), amount=20.0)
    assert decided == Decision("allow", 0.0, 0.0, None, (), (), "logistic@0")


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"card_token": "tok_blocked0001"}, "cards"),
        ({"device_id": "dev-bad"}, "devices"),
        ({"merchant_id": "m-bad"}, "merchants"),
        ({"card_token": "tok_both000001"}, "cards"),  # block list wins over the allow list
    ],
)
def test_block_list_blocks_and_the_score_stays_the_models(fields: dict[str, str], kind: str) -> None:
    decided = decide(engine(score=0.01, labels=10_000), amount=5.0, **fields)
    assert decided.action == "block"
    assert decided.score == 0.01, "a list chooses the action, it does not flatten the score"
    cold = decide(engine(score=0.01, labels=0), amount=5.0, **fields)
    assert (cold.action, cold.score) == ("block", 1.0), "before the model is trained: the list's strength"
    assert decided.rule_hits == (f"blocklist-{kind}",)
    assert decided.reasons and kind in decided.reasons[0]
    assert decided.fraud_type in FRAUD_TYPES


def test_block_list_fraud_type_comes_from_the_model_when_it_has_one() -> None:
    decided = decide(engine(score=0.1, kind="identity_theft", labels=5), card_token="tok_blocked0001")
    assert decided.fraud_type == "identity_theft"


def test_allow_list_allows_whatever_else_fires() -> None:
    eng = engine(score=0.99, kind="identity_theft", labels=10_000)
    decided = decide(eng, card_token="tok_allowed001", amount=9000.0, country="RO")
    assert decided.action == "allow"
    assert decided.score == decided.model_score == 0.99, "the score is still the evidence"
    assert decided.fraud_type is None
    assert decided.rule_hits == ("allowlist-card",)


def test_review_rule_gives_review_with_score_07() -> None:
    decided = decide(engine(), amount=1500.0)
    assert decided.action == "review"
    assert decided.score == RULE_SCORE["review"] == 0.7
    assert decided.fraud_type == "identity_theft"
    assert decided.rule_hits == ("R-review-big",)
    assert decided.reasons == ("Big amount 1500",)


def test_block_rule_blocks() -> None:
    decided = decide(engine(), amount=6000.0)
    assert decided.action == "block"
    assert decided.score == RULE_SCORE["block"] == 0.95
    # The block rule is the strongest, so it names the type and comes first, though it is
    # last in the file.
    assert decided.fraud_type == "malicious_behavior"
    assert decided.rule_hits == ("R-block-huge", "R-review-big")
    assert decided.reasons == ("Huge amount 6000", "Big amount 6000")


def test_between_rules_of_the_same_action_the_first_in_the_file_names_the_type() -> None:
    decided = decide(engine(), amount=1500.0, country="RO")
    assert decided.action == "review"
    assert decided.rule_hits == ("R-review-big", "R-review-abroad")
    assert decided.fraud_type == "identity_theft"


def test_model_does_not_count_before_model_min_labels() -> None:
    eng = engine(score=0.97, kind="identity_theft", labels=199, model_min_labels=200)
    decided = decide(eng, amount=20.0)
    assert decided.action == "allow"
    assert decided.score == 0.0
    assert decided.model_score == 0.97
    assert decided.fraud_type is None
    assert decided.reasons == ()


def test_model_counts_from_model_min_labels() -> None:
    eng = engine(score=0.97, kind="identity_theft", labels=200, model_min_labels=200)
    decided = decide(eng, amount=20.0)
    assert decided.action == "block"
    assert decided.score == 0.97
    assert decided.fraud_type == "identity_theft"
    assert decided.rule_hits == ()
    assert decided.reasons == ("Model: 97% likely fraud (Identity Theft)",)
    assert decided.model_version == "logistic@200"


def test_model_review_without_a_type_defaults_to_unauthorized() -> None:
    decided = decide(engine(score=0.6, kind=None, labels=500), amount=20.0)
    assert decided.action == "review"
    assert decided.fraud_type == "unauthorized_transactions"
    assert decided.reasons == ("Model: 60% likely fraud (fraud)",)


def test_model_score_above_the_rule_score_raises_the_decision_but_the_rule_names_the_type() -> None:
    decided = decide(engine(score=0.93, kind="malicious_behavior", labels=500), amount=1500.0)
    assert decided.action == "block"
    assert decided.score == 0.93
    assert decided.fraud_type == "identity_theft"
    assert decided.reasons == ("Big amount 1500", "Model: 93% likely fraud (Malicious Behavior)")


def test_low_model_score_does_not_lower_a_rule() -> None:
    decided = decide(engine(score=0.01, kind="malicious_behavior", labels=500), amount=1500.0)
    assert (decided.action, decided.score, decided.fraud_type) == ("review", 0.01, "identity_theft")


def test_thresholds_are_respected() -> None:
    eng = engine(score=0.55, labels=500, review_threshold=0.6, block_threshold=0.8)
    assert decide(eng, amount=20.0).action == "allow"
    eng = engine(score=0.85, labels=500, review_threshold=0.6, block_threshold=0.8)
    assert decide(eng, amount=20.0).action == "block"


def test_learn_goes_to_the_model() -> None:
    eng = DetectionEngine(parse_rules(RULES, FEATURE_NAMES), OnlineFraudModel())
    txn = make_txn()
    assert eng.learn("tx-1", features_for(txn), True, "identity_theft") is True
    assert eng.model.labels_learnt == 1
    assert eng.decide(txn, features_for(txn)).model_version == "logistic@1"


@PROPERTY
@given(
    model_score=st.floats(0.0, 1.0),
    model_type=st.sampled_from([None, *FRAUD_TYPES]),
    labels=st.integers(0, 400),
    amount=st.sampled_from([20.0, 1500.0, 6000.0]),
    country=st.sampled_from(["DE", "RO"]),
    card=st.sampled_from(["tok_plain00001", "tok_allowed001", "tok_blocked0001"]),
)
def test_decision_invariants(
    model_score: float, model_type: str | None, labels: int, amount: float, country: str, card: str
) -> None:
    eng = engine(score=model_score, kind=model_type, labels=labels)
    decided = decide(eng, amount=amount, country=country, card_token=card)
    assert decided.action in ("allow", "review", "block")
    assert 0.0 <= decided.score <= 1.0
    if decided.action != "allow":
        assert decided.reasons, "review/block without a reason"
        assert decided.fraud_type in FRAUD_TYPES
    trained = labels >= eng.model_min_labels
    if card == "tok_blocked0001":
        assert (decided.action, decided.score) == (
            "block",
            pytest.approx(model_score if trained else 1.0, abs=1e-6),
        )
        return
    if card == "tok_allowed001":
        assert (decided.action, decided.score) == (
            "allow",
            pytest.approx(model_score if trained else 0.0, abs=1e-6),
        )
        return
    rule_score = 0.95 if amount >= 5000 else 0.7 if (amount >= 1000 or country != "DE") else 0.0
    strength = max(rule_score, model_score if trained else 0.0)
    # the score is the model's probability once trained (monotone in it), the rules' strength before
    assert decided.score == pytest.approx(model_score if trained else rule_score, abs=1e-6)
    expected_decision = "block" if strength >= 0.9 else "review" if strength >= 0.5 else "allow"
    assert decided.action == expected_decision
    if rule_score and decided.action != "allow":
        assert decided.fraud_type == (
            "malicious_behavior"
            if amount >= 5000
            else "identity_theft"
            if amount >= 1000
            else "unauthorized_transactions"
        )


def test_the_alert_budget_limits_what_the_model_alone_may_flag() -> None:
    """With every score above the threshold, a 5 % budget lets the model flag about 5 % (not all)."""
    import random

    from pipeline.detection.model import OnlineFraudModel
    from pipeline.detection.rules import RuleSet

    class ConfidentModel(OnlineFraudModel):
        def fraud_probabilities(self, rows):  # type: ignore[no-untyped-def]
            return [0.6 + 0.4 * features["u"] for features in rows]

        def likely_type(self, features):  # type: ignore[no-untyped-def]
            return "identity_theft"

    model = ConfidentModel()
    model.labels_learnt = 10_000
    engine = DetectionEngine(RuleSet(()), model, review_threshold=0.5, model_min_labels=0, alert_budget=0.05)
    rng = random.Random(3)
    txn = {"card_token": "tok_budget0001", "merchant_id": "m", "device_id": None}
    flagged = sum(engine.decide(txn, {"u": rng.random()}).action != "allow" for _ in range(5000))
    assert 150 <= flagged <= 400, flagged
    unlimited = DetectionEngine(
        RuleSet(()), model, review_threshold=0.5, model_min_labels=0, alert_budget=None
    )
    assert unlimited.decide(txn, {"u": 0.0}).action == "review"


def test_the_score_is_monotone_in_the_model_probability_when_no_rule_fires() -> None:
    """Rules, lists and budgets choose the action; the score ranks by the model's evidence alone."""
    probabilities = [i / 100 for i in range(101)]
    scores = [decide(engine(score=p, labels=500), amount=20.0).score for p in probabilities]
    assert scores == probabilities
    with_rule = [decide(engine(score=p, labels=500), amount=1500.0).score for p in probabilities]
    assert with_rule == probabilities, "a rule that fires does not flatten the score either"


def test_the_model_has_thresholds_of_its_own() -> None:
    eng = engine(score=0.35, labels=500, model_review_threshold=0.3, model_block_threshold=0.8)
    assert decide(eng, amount=20.0).action == "review"
    eng = engine(score=0.85, labels=500, model_review_threshold=0.3, model_block_threshold=0.8)
    assert decide(eng, amount=20.0).action == "block"
    assert decide(engine(score=0.35, labels=500), amount=20.0).action == "allow", "default: review_threshold"


def test_a_large_batch_decides_as_one_at_a_time() -> None:
    """Batches of COLUMNAR_RULES_FROM or more evaluate the rules on columns, smaller ones row by
    row: both give the decisions of one transaction at a time, a list match, a rule with a value
    missing and a row whose rule divides by zero (only that row fails) included."""
    ratio_rule = "  - id: R-ratio\n    fraud_type: identity_theft\n    action: review\n"
    ratio_rule += "    when: amount / card_count_1h > 900\n    reason: ratio\n"
    rules = RULES.replace("lists:", ratio_rule + "lists:")
    assert "R-ratio" in [rule.id for rule in parse_rules(rules, FEATURE_NAMES).rules]
    rng = np.random.default_rng(7)
    items = []
    for index in range(COLUMNAR_RULES_FROM + 44):
        txn = make_txn(
            amount=float(rng.choice([5.0, 999.0, 1200.0, 5500.0])),
            country=str(rng.choice(["FR", "RO"])),
            card_token="tok_blocked0001" if index % 97 == 0 else f"tok_card{index:07d}",
        )
        items.append((txn, features_for(txn, card_count_1h=float(rng.choice([0.0, 1.0, 2.0])))))

    def fresh() -> DetectionEngine:
        model = FixedModel(fixed_score=0.3, fixed_type="identity_theft", labels_learnt=10_000)
        return DetectionEngine(parse_rules(rules, FEATURE_NAMES), model)

    def outcome(decided: Decision | Exception) -> Any:
        return type(decided).__name__ if isinstance(decided, Exception) else decided

    one_at_a_time = [outcome(fresh().decide_many([item])[0]) for item in items]
    whole = [outcome(d) for d in fresh().decide_many(items)]
    assert whole == one_at_a_time
    assert "ZeroDivisionError" in whole and any(
        isinstance(d, Decision) and "R-ratio" in d.rule_hits for d in whole
    ), "the batch must exercise the division and the extra rule"
