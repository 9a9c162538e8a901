"""Block/allow lists from the list-updates topic (pure): parsing updates, applying them, matching
transactions on top of the rule file's lists, and the engine's decision with a list hit."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pipeline.contracts.json_schemas import validator
from pipeline.contracts.list_updates import parse_list_update
from pipeline.contracts.validation import Invalid
from pipeline.detection.engine import DetectionEngine
from pipeline.detection.entity_lists import EntityLists, ListUpdate, list_key
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.model import OnlineFraudModel
from pipeline.detection.rules import parse_rules
from tests.pipeline.factories import features_for, make_txn

MAX = 64 * 1024
RULES = parse_rules(
    "rules: []\nlists:\n  blocked_cards: [tok_filebad0001]\n  allowed_cards: [tok_fileok00001]\n",
    FEATURE_NAMES,
)


def message(action: str = "add", list_name: str = "block", kind: str = "card", value: str = "tok_card0001abc",
            **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "schema_version": 1,
        "action": action,
        "list": list_name,
        "entity_kind": kind,
        "value": value,
        "reason": "stolen card",
        "who": "alice",
        "at": "2026-11-29T10:00:00.000+00:00",
        **extra,
    }


def update(**fields: Any) -> ListUpdate:
    msg = message(**fields)
    result = parse_list_update(
        list_key(msg["list"], msg["entity_kind"], msg["value"]).encode(), orjson.dumps(msg), MAX
    )
    assert isinstance(result, ListUpdate), result
    return result


def refused(key: bytes | None, value: bytes | None) -> Invalid:
    result = parse_list_update(key, value, MAX)
    assert isinstance(result, Invalid), result
    return result


def test_a_valid_update_is_parsed_and_its_message_fits_the_schema() -> None:
    parsed = update(kind="device", value="dev-9a8b7c", list_name="allow")
    assert (parsed.key, parsed.list, parsed.kind, parsed.value, parsed.action) == (
        "allow:device:dev-9a8b7c", "allow", "device", "dev-9a8b7c", "add",
    )  # fmt: skip
    validator("list_update")(dict(parsed.message or {}))
    entry = parsed.entry()
    assert (entry.reason, entry.who, entry.key) == ("stolen card", "alice", "allow:device:dev-9a8b7c")


def test_a_tombstone_removes_the_entry_its_key_names() -> None:
    parsed = parse_list_update(b"block:merchant:m-00042", None, MAX)
    assert isinstance(parsed, ListUpdate)
    assert (parsed.action, parsed.message, parsed.key) == ("remove", None, "block:merchant:m-00042")


@pytest.mark.parametrize(
    ("key", "value", "code", "field"),
    [
        (None, orjson.dumps(message()), "schema_violation", "key"),
        (b"block:card", orjson.dumps(message()), "schema_violation", "key"),
        (b"deny:card:tok_card0001abc", orjson.dumps(message()), "schema_violation", "key"),
        (b"block:ip:1.2.3.4", None, "schema_violation", "key"),
        (b"block:card:\xff\xfe", None, "not_utf8", "key"),
        (b"block:card:4111111111111111", None, "card_number_detected", "key"),
        (b"block:card:tok_other000001", orjson.dumps(message()), "schema_violation", "key"),
        (b"block:card:tok_card0001abc", b"not json", "not_json", None),
        (b"block:card:tok_card0001abc", orjson.dumps(message(action="delete")), "schema_violation", "action"),
        (b"block:card:tok_card0001abc", orjson.dumps({**message(), "who": ""}), "schema_violation", "who"),
        (b"block:card:4111111111111111", orjson.dumps(message(value="4111111111111111")),
         "card_number_detected", "key"),
        (b"block:card:tok_4539148803436467", None, "card_number_detected", "key"),  # a PAN inside a token
        (b"block:card:dev-1", orjson.dumps(message(value="dev-1")), "schema_violation", "value"),
        (b"block:card:tok_card0001abc", orjson.dumps(message(extra_field=1)), "schema_violation", None),
    ],
)  # fmt: skip
def test_invalid_updates_are_refused_with_a_reason(key: bytes | None, value: bytes | None, code: str,
                                                   field: str | None) -> None:  # fmt: skip
    invalid = refused(key, value)
    assert invalid.code == code, invalid
    assert invalid.field == field, invalid
    assert invalid.reason


def test_a_card_number_in_the_message_is_refused_even_under_a_good_key() -> None:
    body = orjson.dumps(message(reason="card 4111 1111 1111 1111 reported"))
    assert refused(b"block:card:tok_card0001abc", body).code == "card_number_detected"


def test_add_and_remove_change_the_lists_and_count_versions() -> None:
    lists = EntityLists()
    assert lists.apply(update()) is True
    assert lists.apply(update()) is False, "the same entry again changes nothing"
    assert lists.version == 1 and len(lists) == 1
    assert lists.get("block", "card", "tok_card0001abc") is not None
    assert lists.apply(update(value="dev-1", kind="device", list_name="allow"))
    assert lists.counts() == {"block": 1, "allow": 1}
    assert lists.apply(update(action="remove")) is True
    assert lists.apply(update(action="remove")) is False, "removing what is not there changes nothing"
    assert lists.get("block", "card", "tok_card0001abc") is None
    assert [entry.key for entry in lists] == ["allow:device:dev-1"]
    assert lists.version == 3


def test_replaying_a_compacted_history_gives_the_latest_state() -> None:
    lists = EntityLists()
    history = [update(), update(action="remove"), update(), update(value="tok_card0002abc"),
               update(value="tok_card0002abc", action="remove")]  # fmt: skip
    for item in history:
        lists.apply(item)
    assert [entry.value for entry in lists] == ["tok_card0001abc"]


@pytest.mark.parametrize(
    ("kind", "value", "txn_fields", "rule_hit"),
    [
        ("card", "tok_card0009abc", {"card_token": "tok_card0009abc"}, "blocklist-cards"),
        ("device", "dev-42", {"device_id": "dev-42", "channel": "ecommerce"}, "blocklist-devices"),
        ("merchant", "m-77", {"merchant_id": "m-77"}, "blocklist-merchants"),
    ],
)
def test_a_blocked_entity_matches_its_transactions(kind: str, value: str, txn_fields: dict[str, Any],
                                                   rule_hit: str) -> None:  # fmt: skip
    lists = EntityLists()
    lists.apply(update(kind=kind, value=value))
    hit = lists.match(make_txn(**txn_fields), RULES)
    assert hit is not None and (hit.list, hit.kind, hit.rule_hit) == ("block", kind, rule_hit)
    assert "stolen card" in hit.reason and "alice" in hit.reason
    assert lists.match(make_txn(), RULES) is None, "other transactions are not listed"


def test_rule_file_entries_stay_and_topic_entries_come_on_top() -> None:
    lists = EntityLists()
    # a topic removal cannot lift the rule file's block
    lists.apply(parse_list_update(b"block:card:tok_filebad0001", None, MAX))  # type: ignore[arg-type]
    hit = lists.match(make_txn(card_token="tok_filebad0001"), RULES)
    assert hit is not None and (hit.reason, hit.rule_hit) == ("On the block list of cards", "blocklist-cards")
    # a topic block wins over the rule file's allow list
    lists.apply(update(value="tok_fileok00001"))
    hit = lists.match(make_txn(card_token="tok_fileok00001"), RULES)
    assert hit is not None and hit.list == "block" and hit.entry is not None
    lists.apply(update(value="tok_fileok00001", action="remove"))
    hit = lists.match(make_txn(card_token="tok_fileok00001"), RULES)
    assert hit is not None and (hit.list, hit.rule_hit, hit.entry) == ("allow", "allowlist-card", None)


def test_a_block_wins_over_an_allow_of_another_entity() -> None:
    lists = EntityLists()
    lists.apply(update(list_name="allow", value="tok_card0001abc"))
    lists.apply(update(kind="merchant", value="m-00001"))
    hit = lists.match(make_txn(card_token="tok_card0001abc", merchant_id="m-00001"), RULES)
    assert hit is not None and (hit.list, hit.kind) == ("block", "merchant")
    lists.apply(update(kind="merchant", value="m-00001", action="remove"))
    hit = lists.match(make_txn(card_token="tok_card0001abc", merchant_id="m-00001"), RULES)
    assert hit is not None and (hit.list, hit.kind, hit.rule_hit) == ("allow", "card", "allowlist-card")


def test_the_engine_decides_by_the_topic_lists_with_their_reason() -> None:
    engine = DetectionEngine(RULES, OnlineFraudModel())
    txn = make_txn(card_token="tok_card0001abc", amount=20.0)
    assert engine.decide(txn, features_for(txn)).action == "allow"
    engine.lists.apply(update())
    txn = make_txn(card_token="tok_card0001abc", amount=20.0)
    decided = engine.decide(txn, features_for(txn))
    assert (decided.action, decided.score, decided.rule_hits) == ("block", 1.0, ("blocklist-cards",))
    assert decided.reasons == ("On the block list of cards: stolen card (by alice)",)
    engine.lists.apply(update(action="remove"))
    engine.lists.apply(update(list_name="allow", kind="device", value="dev-7"))
    txn = make_txn(card_token="tok_card0001abc", amount=9000.0, device_id="dev-7", channel="ecommerce")
    decided = engine.decide(txn, features_for(txn))
    assert (decided.action, decided.rule_hits) == ("allow", ("allowlist-device",))
    assert decided.reasons == ("Device on the allow list: stolen card (by alice)",)
