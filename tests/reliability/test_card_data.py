"""No card number in clear anywhere the system writes: a real worker and the monitor get valid
traffic plus transactions and labels carrying known card numbers (as the token, inside the token,
in extra fields, grouped with spaces or dashes, hidden behind JSON escapes, as the message key);
then every topic of the test's app (except the input topic, which is upstream's), the worker's
log, and the monitor's pages, API, callback outputs and Excel/PDF exports are scanned for them.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import logging
import re
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from monitor.app import create_app
from monitor.consumer import KafkaFeed
from monitor.feedback import LabelPublisher
from monitor.metrics import MonitorMetrics
from pipeline.config import Settings
from pipeline.contracts.json_schemas import load_schema
from tests.monitor.logins import ANALYST, login_client, make_accounts
from tests.support import abroad_card_present, consume_until, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

VISA = "4539148803436467"  # Luhn-valid test numbers
AMEX = "378282246310005"


def pan_pattern(pan: str) -> re.Pattern[str]:
    """The number in any formatting: its digits in order with up to two separators between them."""
    return re.compile(r"(?<![0-9])" + r"[^0-9A-Za-z]{0,2}".join(pan) + r"(?![0-9])")


PATTERNS = [pan_pattern(VISA), pan_pattern(AMEX)]


def transaction(transaction_id: str, minutes_ago: float = 5, **fields: Any) -> dict[str, Any]:
    txn = copy.deepcopy(load_schema("transaction")["examples"][0])
    txn.update(
        transaction_id=transaction_id,
        event_time=(datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(),
        **fields,
    )
    return txn


def leaking_transactions() -> list[tuple[str | None, bytes]]:
    """(key, value) of transactions that carry a card number; every one must be refused."""
    spaced = " ".join(VISA[i : i + 4] for i in range(0, 16, 4))
    escaped = "".join(f"\\u{ord(c):04x}" for c in VISA[:6]) + VISA[6:]
    records: list[tuple[str | None, dict[str, Any] | bytes]] = [
        (VISA, transaction("leak-token-is-pan", card_token=VISA)),
        ("tok_leak0002", transaction("leak-token-embeds-pan", card_token=f"tok_{VISA}")),
        (
            "tok_leak0003",
            transaction(
                "leak-merchant-name", merchant_name=f"ACME {VISA[:4]}-{VISA[4:8]}-{VISA[8:12]}-{VISA[12:]}"
            ),
        ),
        ("tok_leak0004", transaction("leak-extra-field", note=f"card {spaced}")),
        (
            "tok_leak0005",
            transaction("leak-nested", payment={"pan": VISA, "amex": f"{AMEX[:4]} {AMEX[4:10]} {AMEX[10:]}"}),
        ),
        (VISA, f"PAN={VISA} amount=12.50 not json".encode()),
    ]
    out = [(key, value if isinstance(value, bytes) else orjson.dumps(value)) for key, value in records]
    hidden = orjson.dumps(transaction("leak-json-escapes", card_token="tok_leak0007", memo="MEMO"))
    out.append(("tok_leak0007", hidden.replace(b'"MEMO"', f'"{escaped}"'.encode())))
    return out


def valid_traffic() -> list[dict[str, Any]]:
    """Ordinary transactions, and two payments abroad on one card that raise an alert."""
    plain = [transaction(f"ok-{i}", card_token=f"tok_cardscanok{i:03d}") for i in range(12)]
    abroad = abroad_card_present("tok_cardscanabroad")
    first = transaction("abroad-1", 20, merchant_id="m-first", terminal_id="t-first", **abroad)
    second = transaction("abroad-2", 10, merchant_id="m-second", terminal_id="t-second", **abroad)
    return [*plain, first, second]


def label(transaction_id: str, card_token: str, **fields: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "transaction_id": transaction_id,
        "card_token": card_token,
        "is_fraud": False,
        "fraud_type": None,
        "source": "settlement",
        "analyst": None,
        "comment": None,
        "labelled_at": datetime.now(UTC).isoformat(),
        **fields,
    }


# --- scanning -------------------------------------------------------------------------------------
def texts(blob: bytes | str | None) -> Iterator[str]:
    """``blob`` as text, plus what it hides: decoded JSON (escapes), base64 fields, Excel and PDF."""
    if blob is None:
        return
    raw = blob.encode() if isinstance(blob, str) else blob
    yield raw.decode("utf-8", errors="replace")
    if raw[:2] == b"PK":  # xlsx: a zip of XML parts
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            for name in archive.namelist():
                yield archive.read(name).decode("utf-8", errors="replace")
        return
    if raw[:4] == b"%PDF":
        for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", raw, re.S):
            try:
                yield zlib.decompress(stream).decode("latin-1")
            except zlib.error:
                yield stream.decode("latin-1")
        return
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return
    yield from _json_texts(data)


def _json_texts(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and (key.endswith("base64") or key == "content"):
                with contextlib.suppress(ValueError):
                    yield from texts(base64.b64decode(value, validate=True))
            yield from _json_texts(value)
    elif isinstance(data, list):
        for value in data:
            yield from _json_texts(value)
    elif isinstance(data, str):
        yield data


def leaks(where: str, blob: bytes | str | None) -> list[str]:
    found = []
    for text in texts(blob):
        for pattern in PATTERNS:
            match = pattern.search(text)
            if match:
                start = max(match.start() - 60, 0)
                found.append(f"{where}: ...{text[start : match.end() + 20]!r}")
    return found


def read_topic(settings: Settings, topic: str, partitions: int) -> list[Any]:
    """Every record of ``topic`` up to its current end."""
    consumer = Consumer(
        settings.confluent_config(
            **{
                "group.id": f"scan-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
    )
    try:
        ends = {}
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        records: list[Any] = []
        done: set[int] = set()
        while len(done) < len(ends):
            for message in consumer.consume(500, timeout=1.0):
                assert message.error() is None, message.error()
                records.append(message)
                if message.offset() + 1 >= ends[message.partition()]:
                    done.add(message.partition())
        return records
    finally:
        consumer.close()


def scan_topics(settings: Settings, upstream_labels: set[bytes]) -> tuple[list[str], dict[str, int]]:
    admin = AdminClient(settings.confluent_config())
    metadata = admin.list_topics(timeout=10).topics
    problems: list[str] = []
    counts: dict[str, int] = {}
    for name, topic in sorted(metadata.items()):
        if not name.startswith(settings.app_id) or name == settings.topic_transactions:
            continue
        records = read_topic(settings, name, len(topic.partitions))
        counts[name] = len(records)
        for record in records:
            if name == settings.topic_labels and record.value() in upstream_labels:
                continue  # what upstream itself sent
            where = f"{name}[{record.partition()}]@{record.offset()}"
            problems += leaks(f"{where} key", record.key())
            problems += leaks(f"{where} value", record.value())
            for header, value in record.headers() or []:
                problems += leaks(f"{where} header {header}", value)
    return problems, counts


# --- the monitor, driven through its HTTP routes ------------------------------------------------------
def guessed_value(item: dict[str, Any], alert_id: str) -> Any:
    prop, component = item["property"], item["id"]
    if prop in ("n_intervals", "n_clicks"):
        return 1
    if component == "alert-select" and prop == "value":
        return alert_id
    if component == "verdict-comment":
        return f"customer read out {VISA[:4]} {VISA[4:8]} {VISA[8:12]} {VISA[12:]}"
    if component == "verdict-fraud-type":
        return "Unauthorized Transactions"
    return {"search": "", "pathname": "/"}.get(prop)


def drive_callbacks(client: Any, alert_id: str) -> tuple[list[tuple[str, str]], int]:
    """Every server-side callback without pattern-matching ids, once per input as the trigger;
    (where, body) of each answer and how many answered 200."""
    answers: list[tuple[str, str]] = []
    ok = 0
    for dep in client.get("/_dash-dependencies").get_json():
        items = dep["inputs"] + dep["state"]
        if dep.get("clientside_function") or any(i["id"].startswith("{") for i in items):
            continue
        if dep["output"].startswith("{") or '"type"' in dep["output"]:
            continue
        outputs = [
            {"id": part.rsplit(".", 1)[0], "property": part.rsplit(".", 1)[1]}
            for part in dep["output"].strip(".").split("...")
        ]
        for trigger in dep["inputs"]:
            payload = {
                "output": dep["output"],
                "outputs": outputs if dep["output"].startswith("..") else outputs[0],
                "inputs": [{**i, "value": guessed_value(i, alert_id)} for i in dep["inputs"]],
                "state": [{**i, "value": guessed_value(i, alert_id)} for i in dep["state"]],
                "changedPropIds": [f"{trigger['id']}.{trigger['property']}"],
            }
            response = client.post("/_dash-update-component", json=payload)
            if response.status_code == 200:
                ok += 1
            answers.append((f"callback {dep['output']} on {trigger['id']}", response.get_data(as_text=True)))
    return answers, ok


def test_no_card_number_reaches_any_topic_log_or_page(make_settings, start_worker, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings()
    worker = start_worker(settings)
    leaking = leaking_transactions()
    valid = valid_traffic()
    produce(settings, settings.topic_transactions, [(t["card_token"], t) for t in valid[:-1]])
    consume_until(settings, settings.topic_decisions, lambda m: len(m) >= len(valid) - 1)
    produce(settings, settings.topic_transactions, [(valid[-1]["card_token"], valid[-1]), *leaking])
    upstream_labels = [
        label("ok-0", VISA),  # the token is a card number
        label("ok-1", "tok_cardscanok001", source="analyst", analyst="upstream-bob", comment=f"pan {VISA}"),
        label("ok-2", "tok_cardscanok002"),
    ]
    produce(settings, settings.topic_labels, [(None, record) for record in upstream_labels])
    decisions = consume_until(settings, settings.topic_decisions, lambda m: len(m) >= len(valid))
    dead = consume_until(settings, settings.topic_dead_letter, lambda m: len(m) >= len(leaking) + 2)
    assert {d["transaction_id"] for d in decisions} == {t["transaction_id"] for t in valid}
    reasons = sorted(d["reason_code"] for d in dead)
    assert reasons == sorted(["card_number_detected"] * (len(leaking) + 1) + ["not_json"]), reasons
    alert_id = "abroad-2"
    assert {d["transaction_id"]: d["decision"] for d in decisions}[alert_id] != "allow"

    feed = KafkaFeed(settings, metrics=MonitorMetrics())
    publisher = LabelPublisher(settings)
    app = create_app(
        feed.state,
        settings,
        registry=feed.metrics.registry,
        accounts=make_accounts(),
        publish=publisher.publish,
    )
    with feed:
        assert feed.wait_until(
            lambda: feed.state.decisions.transaction_count >= len(valid) and feed.state.alerts.get(alert_id),
            60,
        ), "the monitor read the decisions and the alert"
        client = app.server.test_client()
        assert login_client(client, *ANALYST).status_code == 302
        pages = {
            path: client.get(path).get_data(as_text=True)
            for path in ("/", "/_dash-layout", "/api/summary", "/metrics")
        }
        answers, ok = drive_callbacks(client, alert_id)
        answers += drive_callbacks(client, alert_id)[0]  # once more: the verdict given is shown now
        assert feed.wait_until(lambda: len(feed.state.verdicts) >= 2, 30), "both analyst verdicts were read"
        shown = feed.state.verdicts.get("ok-1")
        assert shown is not None and shown.comment is not None and shown.comment.endswith("6467")
    publisher.close()
    assert ok >= 5, f"only {ok} callbacks answered: the scan of the monitor would prove nothing"
    rendered = "\n".join(body for _, body in answers)
    assert alert_id in rendered and "t-second" in rendered, "the alert's detail was rendered"
    exports = [body for where, body in answers if '"base64": true' in body or '"base64":true' in body]
    assert len(exports) >= 2, "the Excel and PDF reports were produced"

    problems: list[str] = []
    for path, body in pages.items():
        problems += leaks(f"monitor {path}", body)
    for where, body in answers:
        problems += leaks(f"monitor {where}", body)
    problems += leaks("monitor log", "\n".join(r.getMessage() for r in caplog.records))
    worker.stop()
    problems += leaks("worker log", worker.log_path.read_bytes())
    topic_problems, counts = scan_topics(settings, {orjson.dumps(r) for r in upstream_labels})
    problems += topic_problems
    print("records scanned per topic:", counts)
    assert not problems, "\n".join(problems[:20])
    for needed in (
        settings.topic_decisions,
        settings.topic_alerts,
        settings.topic_dead_letter,
        settings.topic_labels,
    ):
        assert counts.get(needed), (needed, counts)
    assert any(name.endswith("-changelog") for name in counts), counts
    assert any("-by-" in name for name in counts), counts
