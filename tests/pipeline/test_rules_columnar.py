"""The columnar rule evaluation gives exactly the per-row result of ``Rule.matches``."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from pipeline.config import REPO_ROOT
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.rule_columns import row_env
from pipeline.detection.rules import RuleSet, load_rules, parse_rules

NUMBERS = ("amount", "card_count_1h", "is_foreign", "amount_to_card_mean", "hours_since_contact_change")
TEXTS = ("channel", "country", "card_country", "currency")

EXPRESSIONS = (
    "amount > 100",
    "amount >= 100 and card_count_1h >= 2",
    "amount > 100 or is_foreign == 1",
    "not (amount < 50)",
    "-amount < -20",
    "amount / card_count_1h > 3",  # division by zero where card_count_1h is 0
    "card_count_1h > 0 and amount / card_count_1h > 3",  # guarded: never divides by zero
    "amount * 2 + 1 - card_count_1h >= 40",
    "10 < amount <= 200",
    "0 <= card_count_1h < amount < 500",
    "channel == 'ecommerce'",
    "channel != 'ecommerce' and country == card_country",
    "channel in ['ecommerce', 'mobile_app']",
    "country not in ('DE', 'FR') and is_foreign == 1",
    "hours_since_contact_change <= 24",  # null in some rows: never holds
    "hours_since_contact_change == None",
    "country < card_country",
    "country + currency == 'DEEUR'",
    "channel > 3",  # str < int: TypeError, does not hold
    "(amount > 100 and channel) or country",  # and/or as values
    "amount and card_count_1h",
    "amount in [12.5, 100, card_count_1h]",
)


def _columns(rng: random.Random, size: int) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    for name in NUMBERS:
        values = [rng.choice([0.0, 1.0, 2.0, 12.5, 100.0, rng.uniform(0, 600)]) for _ in range(size)]
        if name == "hours_since_contact_change":
            values = [v if rng.random() < 0.6 else math.nan for v in values]
        columns[name] = np.array(values)
    choices = {
        "channel": ["ecommerce", "mobile_app", "atm", None],
        "country": ["DE", "FR", "GB", None],
        "card_country": ["DE", "FR", "GB"],
        "currency": ["EUR", "GBP"],
    }
    for name in TEXTS:
        columns[name] = np.array([rng.choice(choices[name]) for _ in range(size)], dtype=object)
    return columns


def _rules(*whens: str) -> RuleSet:
    body = "\n".join(
        f'  - {{id: R{i}, fraud_type: identity_theft, action: review, when: "{when}", reason: r}}'
        for i, when in enumerate(whens)
    )
    return parse_rules(f"version: 1\nrules:\n{body}\n", FEATURE_NAMES)


def _per_row(ruleset: RuleSet, columns: dict[str, np.ndarray], size: int) -> np.ndarray:
    envs = [row_env(columns, i) for i in range(size)]
    return np.array([[rule.matches(env) for env in envs] for rule in ruleset.rules], dtype=bool)


@pytest.mark.parametrize("when", EXPRESSIONS)
def test_columnar_matches_row_by_row(when: str) -> None:
    ruleset = _rules(when)
    size = 400
    for seed in range(5):
        columns = _columns(random.Random(seed), size)
        try:
            expected = _per_row(ruleset, columns, size)
        except ZeroDivisionError:
            with pytest.raises(ZeroDivisionError):
                ruleset.evaluate_columns(columns, size)
            continue
        np.testing.assert_array_equal(ruleset.evaluate_columns(columns, size), expected, err_msg=when)


def test_the_shipped_rules_are_compiled_and_agree_with_row_by_row() -> None:
    shipped = load_rules(REPO_ROOT / "pipeline" / "detection" / "rules.yaml", FEATURE_NAMES)
    assert all(rule.columnar_fallback is None for rule in shipped.rules)
    rng = np.random.default_rng(3)
    size = 2000
    columns = {name: rng.integers(0, 10, size).astype(float) for name in FEATURE_NAMES}
    flags = [name for name in FEATURE_NAMES if name.startswith("is_")]
    columns.update({name: rng.integers(0, 2, size).astype(float) for name in flags})
    columns["amount_to_card_mean"] = rng.uniform(0, 6, size)
    columns["hours_since_contact_change"] = np.where(rng.random(size) < 0.5, np.nan, 5.0)
    for name in ("terminal_id", "device_id", "country", "card_country", "currency"):
        columns[name] = np.array(["x"] * size, dtype=object)
    assert _per_row(shipped, columns, size).any(axis=1).all(), "every rule fires somewhere"
    np.testing.assert_array_equal(shipped.evaluate_columns(columns, size), _per_row(shipped, columns, size))


def test_a_rule_the_compiler_cannot_reproduce_falls_back_to_row_by_row() -> None:
    ruleset = _rules("channel * 2 == 'atmatm'")  # string repetition: not compiled, still right
    size = 50
    columns = _columns(random.Random(1), size)
    np.testing.assert_array_equal(ruleset.evaluate_columns(columns, size), _per_row(ruleset, columns, size))
    assert ruleset.evaluate_columns(columns, size).any()


@pytest.mark.parametrize("when", EXPRESSIONS)
def test_numbers_only_columns_give_the_row_by_row_result(when: str) -> None:
    """On columns of numbers without nulls (the detector's features) a rule of comparisons, and,
    or, not and unary minus takes the plan without nulls or errors (``compile_numeric``)."""
    ruleset = _rules(when)
    size = 300
    for seed in range(5):
        rng = random.Random(seed)
        columns = {
            name: np.array(
                [rng.choice([0.0, 1.0, 2.0, 12.5, 100.0, -3.0, rng.uniform(-600, 600)]) for _ in range(size)]
            )
            for name in NUMBERS
        }
        try:
            expected = _per_row(ruleset, columns, size)
        except ZeroDivisionError:
            continue
        np.testing.assert_array_equal(ruleset.evaluate_columns(columns, size), expected, err_msg=when)


@pytest.mark.parametrize(
    ("when", "numeric"),
    [
        ("amount > 100 and card_count_1h >= 2", True),
        ("not (amount < 50) or -is_foreign == -1", True),
        ("10 < amount <= 200 and amount != 12.5", True),
        ("amount and card_count_1h", True),
        ("1 < 2", True),
        ("amount / card_count_1h > 3", False),
        ("amount * 2 > 3", False),
        ("channel == 'atm'", False),
        ("amount in [1, 2]", False),
        ("amount > 9007199254740993", False),
    ],
)
def test_which_rules_have_a_plan_for_numbers_only(when: str, numeric: bool) -> None:
    rule = _rules(when).rules[0]
    assert (rule._numeric_plan() is not None) is numeric
    size = 64
    rng = np.random.default_rng(1)
    columns = {name: rng.choice([-1.0, 1.0, 2.0, 12.5, 150.0], size) for name in NUMBERS}
    columns["channel"] = np.array(["atm"] * size, dtype=object)
    ruleset = _rules(when)
    np.testing.assert_array_equal(ruleset.evaluate_columns(columns, size), _per_row(ruleset, columns, size))
