"""The rule file: loading, error messages that name the line and the problem, evaluation, lists."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from pipeline.config import FRAUD_TYPES, REPO_ROOT
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.rules import RuleError, RuleSet, load_rules, parse_rules
from tests.pipeline.factories import features_for, make_digital_txn, make_txn

SHIPPED = REPO_ROOT / "pipeline" / "detection" / "rules.yaml"


def rules_text(*rules: str, lists: str = "") -> str:
    body = "version: 1\nrules:\n" + "".join(textwrap.indent(textwrap.dedent(rule), "  ") for rule in rules)
    return body + lists


GOOD = """\
- id: R-good
  fraud_type: malicious_behavior
  action: review
  when: is_small_amount == 1 and terminal_small_amount_cards_10m >= 5
  reason: "ok"
"""


def parse(text: str) -> RuleSet:
    return parse_rules(text, FEATURE_NAMES, source="test.yaml")


def error_of(text: str) -> str:
    with pytest.raises(RuleError) as info:
        parse(text)
    return str(info.value)


# --- the shipped file ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(SHIPPED, FEATURE_NAMES)


def test_shipped_rules_load(shipped: RuleSet) -> None:
    assert len(shipped.rules) >= 3
    assert shipped.source == str(SHIPPED)
    assert len({rule.id for rule in shipped.rules}) == len(shipped.rules)
    assert all(rule.action in ("review", "block") for rule in shipped.rules)
    assert shipped.blocked == {"cards": frozenset(), "devices": frozenset(), "merchants": frozenset()}
    assert shipped.allowed_cards == frozenset()


@pytest.mark.parametrize("fraud_type", FRAUD_TYPES)
def test_every_fraud_type_has_a_rule(shipped: RuleSet, fraud_type: str) -> None:
    assert any(rule.fraud_type == fraud_type for rule in shipped.rules)


def fired(ruleset: RuleSet, txn: dict, **features: float) -> dict[str, set[str]]:
    """fraud type -> actions of the rules that fire."""
    out: dict[str, set[str]] = {}
    for rule in ruleset.evaluate({**txn, **features_for(txn, **features)}):
        out.setdefault(rule.fraud_type, set()).add(rule.action)
    return out


def test_shipped_rules_fire_on_their_own_fraud_pattern(shipped: RuleSet) -> None:
    """Strong signatures of each type trigger review and block of that type only; weak or
    ordinary transactions trigger nothing. (No thresholds are copied from the file.)"""
    card_testing = make_digital_txn(amount=1.0, terminal_id="t-9-web")
    assert fired(shipped, card_testing, terminal_small_amount_cards_10m=40) == {
        "malicious_behavior": {"review", "block"}
    }
    assert fired(shipped, card_testing, terminal_small_amount_cards_10m=1) == {}
    # the same terminal activity with a normal amount is not card testing
    assert fired(shipped, make_digital_txn(amount=80.0), terminal_small_amount_cards_10m=40) == {}

    stolen = make_txn(country="RO", card_country="DE", amount=900.0)
    assert fired(shipped, stolen, card_count_1h=6, is_new_merchant=1, amount_to_card_mean=20.0) == {
        "unauthorized_transactions": {"review", "block"}
    }
    at_home = make_txn(country="DE", card_country="DE", amount=900.0)
    assert fired(shipped, at_home, card_count_1h=6, is_new_merchant=1, amount_to_card_mean=20.0) == {}

    takeover = make_digital_txn(hours_since_contact_change=5.0, shipping_matches_billing=False, amount=700.0)
    assert fired(shipped, takeover, is_new_device=1, amount_to_card_mean=20.0) == {
        "identity_theft": {"review", "block"}
    }
    known_device = make_digital_txn(hours_since_contact_change=5.0, amount=700.0)
    assert fired(shipped, known_device, is_new_device=0, card_history_count=50) == {}

    ordinary = make_digital_txn(amount=30.0)
    assert fired(shipped, ordinary, card_history_count=40, amount_to_card_mean=1.0) == {}


def test_shipped_reasons_format_values(shipped: RuleSet) -> None:
    txn = make_digital_txn(amount=1.0, terminal_id="t-00042-web")
    env = {**txn, **features_for(txn, terminal_small_amount_cards_10m=12.0)}
    hits = [rule for rule in shipped.evaluate(env) if rule.fraud_type == "malicious_behavior"]
    assert hits
    for rule in hits:
        text = rule.explain(env)
        assert "t-00042-web" in text
        assert re.search(r"\b12\b", text), text
        assert "12.0" not in text  # {..:.0f} formatting applied
        assert "{" not in text, text


# --- evaluation --------------------------------------------------------------------------------------
def test_rule_fires_only_when_its_condition_holds() -> None:
    ruleset = parse(
        rules_text(
            """\
            - id: R-big-foreign
              fraud_type: unauthorized_transactions
              action: block
              when: amount * 2 > 1000 and country in ["RO", "BR"] and not is_foreign == 0
              reason: "{amount:.2f} {currency} in {country}; {card_count_1h:.0f} before"
            """
        )
    )
    rule = ruleset.rules[0]
    fires = make_txn(amount=600.0, country="RO", card_country="DE")
    env = {**fires, **features_for(fires, card_count_1h=2)}
    assert rule.matches(env) is True
    assert ruleset.evaluate(env) == [rule]
    assert rule.explain(env) == "600.00 EUR in RO; 2 before"

    for overrides in ({"amount": 400.0}, {"country": "FR"}, {"card_country": "RO"}):
        txn = make_txn(**{"amount": 600.0, "country": "RO", "card_country": "DE", **overrides})
        env = {**txn, **features_for(txn)}
        assert rule.matches(env) is False, overrides
        assert ruleset.evaluate(env) == []


def test_rules_are_returned_in_file_order() -> None:
    ruleset = parse(
        rules_text(
            """\
            - id: B
              fraud_type: identity_theft
              action: block
              when: amount > 1
              reason: b
            """,
            """\
            - id: A
              fraud_type: identity_theft
              action: review
              when: amount > 1
              reason: a
            """,
        )
    )
    txn = make_txn(amount=5.0)
    assert [rule.id for rule in ruleset.evaluate({**txn, **features_for(txn)})] == ["B", "A"]


def test_explain_with_a_format_spec_on_a_missing_name_does_not_break_scoring() -> None:
    """The rule file is checked at load time so that "a typo is reported ... never at run time"
    (rules.py docstring), and explain() is lenient about names it cannot fill (``_Lenient``).
    A typo in ``reason`` together with a format spec must therefore either be refused when the
    file is loaded, or be rendered leniently by explain(); it must not raise while scoring."""
    text = rules_text(
        """\
        - id: R-typo
          fraud_type: malicious_behavior
          action: review
          when: is_small_amount == 1
          reason: "{terminal_small_amount_cards_10mm:.0f} cards"
        """
    )
    try:
        ruleset = parse(text)
    except RuleError:
        return  # refused at load time: fine
    txn = make_txn(amount=1.0)
    env = {**txn, **features_for(txn)}
    assert ruleset.evaluate(env)
    text_out = ruleset.rules[0].explain(env)  # raises ValueError today
    assert "terminal_small_amount_cards_10mm" in text_out


def test_an_unknown_name_in_a_reason_is_refused_at_load_time() -> None:
    text = rules_text(
        """\
        - id: R-typo
          fraud_type: malicious_behavior
          action: review
          when: is_small_amount == 1
          reason: "{amout} paid"
        """
    )
    with pytest.raises(RuleError, match=r"test.yaml:3 \(rule #1\): unknown name \{amout\} in reason"):
        parse(text)


def test_rule_on_an_optional_field_of_a_valid_transaction_that_omits_it_does_not_raise() -> None:
    """device_id is a known name for ``when`` (TRANSACTION_FIELDS) but optional in the transaction
    schema: a valid card-present transaction may leave it out. The rule was accepted at load time,
    so evaluating it must not raise NameError at run time."""
    ruleset = parse(
        rules_text(
            """\
            - id: R-bad-device
              fraud_type: malicious_behavior
              action: block
              when: device_id in ["dev-bot-1"]
              reason: bot
            """
        )
    )
    txn = make_txn()
    del txn["device_id"], txn["ip_address"]
    env = {**txn, **features_for(txn)}
    assert ruleset.evaluate(env) == []


# --- error messages: each names the file:line (rule #n) and the problem -----------------------------
def where(line: int, number: int = 1) -> str:
    return re.escape(f"test.yaml:{line} (rule #{number}): ")


@pytest.mark.parametrize(
    ("when", "problem"),
    [
        ("card_count_2h >= 1", "unknown name 'card_count_2h' in when: 'card_count_2h >= 1'"),
        ("abs(amount) > 1", "Call is not allowed in when: 'abs(amount) > 1'"),
        ("amount.real > 1", "Attribute is not allowed in when: 'amount.real > 1'"),
        ("lambda: amount", "Lambda is not allowed in when: 'lambda: amount'"),
        ("().__class__ == 1", "Attribute is not allowed"),
        ("[amount][0] > 1", "Subscript is not allowed"),
        ("amount ** 2 > 1", "Pow is not allowed"),
        ("amount >", "cannot parse when: 'amount >'"),
        ("__import__('os') == 1", "Call is not allowed"),
    ],
)
def test_bad_when_is_reported_with_line_and_problem(when: str, problem: str) -> None:
    text = rules_text(
        GOOD,
        f"""\
        - id: R-bad
          fraud_type: identity_theft
          action: review
          when: "{when}"
          reason: x
        """,
    )
    # Line 1: version, 2: rules, 3-7: the good rule, 8: the bad rule.
    message = error_of(text)
    assert re.match(where(8, 2) + re.escape(problem), message), message


def test_unknown_fraud_type() -> None:
    text = rules_text(GOOD.replace("malicious_behavior", "phishing"))
    message = error_of(text)
    assert re.match(
        where(3) + "fraud_type must be one of unauthorized_transactions, identity_theft, "
        "malicious_behavior, not 'phishing'$",
        message,
    ), message


def test_bad_action() -> None:
    message = error_of(rules_text(GOOD.replace("action: review", "action: deny")))
    assert re.match(where(3) + "action must be review or block, not 'deny'$", message), message


def test_duplicate_id() -> None:
    message = error_of(rules_text(GOOD, GOOD))
    assert re.match(where(8, 2) + "duplicate rule id 'R-good'$", message), message


def test_missing_key() -> None:
    message = error_of(rules_text(GOOD.replace('  reason: "ok"\n', "").replace("  action: review\n", "")))
    assert re.match(where(3) + "missing action, reason$", message), message


def test_unknown_key() -> None:
    message = error_of(rules_text(GOOD + "  severity: high\n"))
    assert re.match(where(3) + "unknown key\\(s\\) severity$", message), message


def test_rule_that_is_not_a_mapping() -> None:
    message = error_of(rules_text(GOOD, "- just a string\n"))
    assert re.match(where(8, 2) + "a rule must be a mapping$", message), message


def test_not_yaml_names_the_source_and_the_line() -> None:
    message = error_of("rules:\n  - id: [unclosed\n    when: x\n")
    assert message.startswith("test.yaml: not valid YAML: ")
    assert "line 3" in message or "line 2" in message, message


@pytest.mark.parametrize("text", ["- a\n- b\n", "rules: {}\n", "version: 1\n", "", "rules: 3\n"])
def test_not_a_rule_file(text: str) -> None:
    assert error_of(text) == "test.yaml: expected a mapping with a 'rules' list"


def test_unknown_list() -> None:
    message = error_of(rules_text(GOOD, lists="lists:\n  blocked_ips: [1.2.3.4]\n  allowed_cards: []\n"))
    assert message == "test.yaml: unknown list(s) blocked_ips"


def test_lists_must_be_a_mapping() -> None:
    assert error_of(rules_text(GOOD, lists="lists: [a]\n")) == "test.yaml: 'lists' must be a mapping"


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RuleError, match=re.escape(f"{missing}: cannot read rule file")):
        load_rules(missing, FEATURE_NAMES)


# --- block and allow lists ---------------------------------------------------------------------------
def test_block_and_allow_lists() -> None:
    ruleset = parse(
        rules_text(
            GOOD,
            lists=textwrap.dedent(
                """\
                lists:
                  blocked_cards: [tok_stolen00001]
                  blocked_devices: [dev-bot-1, dev-bot-2]
                  blocked_merchants: [m-evil, 12345]
                  allowed_cards: [tok_vip0000001]
                """
            ),
        )
    )
    assert ruleset.blocked["merchants"] == frozenset({"m-evil", "12345"})
    assert ruleset.allowed_cards == frozenset({"tok_vip0000001"})
    assert ruleset.blocked_entity(make_txn(card_token="tok_stolen00001")) == "cards"
    assert ruleset.blocked_entity(make_digital_txn(device_id="dev-bot-2")) == "devices"
    assert ruleset.blocked_entity(make_txn(merchant_id="m-evil")) == "merchants"
    assert ruleset.blocked_entity(make_txn(merchant_id="12345")) == "merchants"
    assert ruleset.blocked_entity(make_txn()) is None
    assert ruleset.blocked_entity(make_txn(device_id=None)) is None
    # A card on the block list is reported as a card even when its device is blocked too.
    both = make_digital_txn(card_token="tok_stolen00001", device_id="dev-bot-1")
    assert ruleset.blocked_entity(both) == "cards"


def test_empty_lists_are_allowed() -> None:
    ruleset = parse(rules_text(GOOD, lists="lists:\n  blocked_cards:\n  allowed_cards: []\n"))
    assert ruleset.blocked["cards"] == frozenset()
    assert ruleset.blocked_entity(make_txn()) is None


def test_a_missing_rule_file_is_seeded_once_from_the_shipped_rules(tmp_path: Path) -> None:
    from pipeline.detection.rules import SHIPPED_RULES, seed_rules_file

    target = tmp_path / "volume" / "rules.yaml"
    assert seed_rules_file(target) and target.read_bytes() == SHIPPED_RULES.read_bytes()
    target.write_text("rules: []\n")  # an analyst's rules since: never overwritten
    assert not seed_rules_file(target) and target.read_text() == "rules: []\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["rules.yaml"], "nothing left aside"
