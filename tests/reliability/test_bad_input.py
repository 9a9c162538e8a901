"""Thousands of generated bad payloads at the real pipeline: nothing crashes, nothing is lost.

Every message produced ends either as a decision or as a dead letter with a reason:
count in = decisions + dead letters.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.contracts.json_schemas import load_schema, validator
from tests.support import consume_until, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EXAMPLE = load_schema("transaction")["examples"][0]
FIELDS = sorted(load_schema("transaction")["properties"])
junk_values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)  # fmt: skip


def _valid(index: int) -> dict[str, Any]:
    txn = copy.deepcopy(EXAMPLE)
    txn["event_time"] = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    txn["card_token"] = f"tok_fuzz{index:08d}"
    return txn


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(["bytes", "json", "drop", "retype", "extra", "amount", "time", "text", "valid"])
    )
    txn = _valid(draw(st.integers(0, 500)))
    if kind == "bytes":
        return draw(st.binary(min_size=0, max_size=200))
    if kind == "json":
        return json.dumps(draw(junk_values)).encode()
    if kind == "drop":
        del txn[draw(st.sampled_from(sorted(EXAMPLE)))]
    elif kind == "retype":
        txn[draw(st.sampled_from(FIELDS))] = draw(junk_values)
    elif kind == "extra":
        txn[draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in FIELDS))] = draw(junk_values)
    elif kind == "amount":
        txn["amount"] = draw(st.one_of(st.floats(max_value=0, allow_nan=False), st.floats(min_value=1e6 + 1)))
    elif kind == "time":
        txn["event_time"] = draw(st.sampled_from(["2099-01-01T00:00:00Z", "1999-01-01T00:00:00Z", "yesterday",
                                                  "2026-13-40T99:99:99Z", ""]))  # fmt: skip
    elif kind == "text":
        txn["transaction_id"] = draw(st.text(min_size=0, max_size=80))
        txn["customer_id"] = draw(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
    return json.dumps(txn, ensure_ascii=draw(st.booleans())).encode()  # stdlib: big integers too


def test_count_in_equals_decisions_plus_dead_letters(make_settings, start_worker) -> None:
    settings_ = make_settings()
    start_worker(settings_)
    generated: list[bytes] = []

    # Hypothesis makes varied batches over its examples (its first one is the simplest); the
    # pipeline then gets all of them at once.
    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(payloads(), min_size=10, max_size=40))
    def collect(batch: list[bytes]) -> None:
        generated.extend(batch)

    collect()
    # Unique ids for the messages that parse as objects, so the accounting by id is exact.
    messages: list[bytes] = []
    for index, raw in enumerate(generated):
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            messages.append(raw)
            continue
        if isinstance(data, dict) and isinstance(data.get("transaction_id"), str):
            data["transaction_id"] = f"fuzz-{index}-{uuid.uuid4().hex[:6]}"
            raw = json.dumps(data).encode()
        messages.append(raw)
    produce(settings_, settings_.topic_transactions, [(f"k{i}", raw) for i, raw in enumerate(messages)])

    def accounted(decisions: list, dead: list) -> int:
        return len({d["transaction_id"] for d in decisions}) + len(dead)

    dead: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []

    def all_accounted(got: list[dict[str, Any]]) -> bool:
        decisions[:] = consume_until(settings_, settings_.topic_decisions, lambda _: True, timeout=5)
        dead[:] = got
        return accounted(decisions, dead) >= len(messages)

    consume_until(settings_, settings_.topic_dead_letter, all_accounted, timeout=180)
    assert accounted(decisions, dead) == len(messages)
    for envelope in dead:
        validator("dead_letter")(envelope)
    reasons = Counter(d["reason_code"] for d in dead)
    decided = len({d["transaction_id"] for d in decisions})
    print(f"{len(messages)} in: {decided} decisions, {len(dead)} dead letters {dict(reasons)}")
    assert reasons["processing_error"] == 0, [
        d["reason"] for d in dead if d["reason_code"] == "processing_error"
    ][:5]
    assert len(reasons) >= 4, "the generator reaches several kinds of refusal"
