"""The "Model health" section in a real headless Chromium, fed from the real broker: the workers'
reports (as pipeline/worker/model_health.py writes them), the scored transactions (the pending-labels
changelog), labels and analysts' verdicts from the labels topic."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime

import orjson
import pytest
from selenium.webdriver.support.ui import WebDriverWait

from monitor.app import create_app
from monitor.consumer import KafkaFeed
from monitor.state.scored import pending_labels_topic
from pipeline.contracts.json_schemas import validator
from tests.conftest import free_port
from tests.monitor.logins import VIEWER, login_browser, make_accounts
from tests.monitor.test_browser import RERENDERED, SCREENSHOTS, _no_browser_errors
from tests.monitor.test_feed_kafka import _produce
from tests.monitor.test_model_health import report
from tests.monitor.test_rule_whatif import entry

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

if shutil.which("chromium") and "DASH_TEST_CHROMEPATH" not in os.environ:
    os.environ["DASH_TEST_CHROMEPATH"] = shutil.which("chromium") or ""


def _label(tx: str, fraud: bool, source: str, at: datetime) -> bytes:
    return orjson.dumps(
        {"schema_version": 1, "transaction_id": tx, "card_token": "tok_4f9a2c1b7d3e", "is_fraud": fraud,
         "fraud_type": "identity_theft" if fraud else None, "source": source,
         "analyst": "alice" if source == "analyst" else None, "comment": None, "labelled_at": at.isoformat()}
    )  # fmt: skip


def test_the_model_health_section_shows_what_the_workers_reported(dash_duo, make_settings) -> None:
    settings = make_settings()
    now = datetime.now(UTC)
    minutes = (now - datetime(2026, 12, 7, 8, 0, tzinfo=UTC)).total_seconds() / 60  # report() counts from T0
    reports = [
        report(minutes - 50, labels=30, frauds=1),
        report(minutes - 20, labels=40, frauds=3, generation=1, champion="boosting",
               delays=[10, 20, 10, 0, 0, 0, 0]),
        report(minutes - 1, labels=20, frauds=0, generation=1, champion="boosting"),
    ]  # fmt: skip
    check = validator("model_health")
    for r in reports:
        check(r)
    _produce(settings, settings.topic_model_health, [orjson.dumps(r) for r in reports], key=b"w1:9101")
    entries = [entry(f"s{i}", hours_ago=2, amount=10.0 + i, now=now) for i in range(6)]
    for i, e in enumerate(entries):
        e["decision"]["model_score"] = [0.02, 0.04, 0.31, 0.55, 0.93, 0.97][i]
    _produce(settings, pending_labels_topic(settings), [orjson.dumps(e) for e in entries])
    labels = [_label("s0", False, "settlement", now), _label("s5", True, "chargeback", now)]
    labels += [_label("s4", True, "analyst", now), _label("s3", False, "analyst", now)]
    _produce(settings, settings.topic_labels, labels)

    with KafkaFeed(settings) as feed:
        assert feed.wait_until(
            lambda: len(feed.state.model_health) == 3 and len(feed.state.scored) == 6 and feed.ready, 60
        ), feed.failure
        app = create_app(feed.state, settings, accounts=make_accounts())
        dash_duo.start_server(app, navigate=False, port=free_port())
        dash_duo.driver.set_window_size(1400, 1500)
        login_browser(dash_duo.driver, f"{dash_duo.server.url}/", *VIEWER)  # a viewer sees it all
        section = dash_duo.find_element("#model-health-section")
        dash_duo.driver.execute_script("arguments[0].scrollIntoView();", section)
        dash_duo.wait_for_contains_text(
            "#model-health-summary", "w1:9101: boosting.g1@12000, generation 1", 20
        )
        summary = dash_duo.find_element("#model-health-summary").text
        assert "Labels learnt in the last hour: 90." in summary
        assert "Alert precision from analysts' verdicts: 50.0% (1 confirmed fraud of 2 alerts" in summary
        table = dash_duo.find_element("#model-health-table").text.splitlines()
        assert table[1:] == [
            "w1:9101 boosting champion 12,000 5,000 131 0.480 0.420 110",
            "w1:9101 logistic challenger 12,000 5,000 131 0.410 0.350 120",
        ]
        wait = WebDriverWait(dash_duo.driver, 20, ignored_exceptions=RERENDERED)
        traces = wait.until(
            lambda d: d.execute_script(
                "const g = document.querySelector('#model-health-graph .js-plotly-plot');"
                "return g && g.data && g.data.length > 3 ? g.data.map(t => [t.name,"
                " Array.from(t.customdata || t.y).reduce((a, b) => a + b, 0)]) : null;"
            )
        )
        by_name = dict(traces)
        assert (by_name["legitimate labels"], by_name["fraud labels"]) == (86, 4)
        assert by_name["labels by delay"] == 90
        assert by_name["generation, w1:9101"] == 1, "generation 0, then 1 at the promotion"
        scores = [by_name[f"score, {outcome} (2)"] for outcome in ("fraud", "legitimate", "no label yet")]
        assert scores == [2, 2, 2], "s4, s5 fraud; s0, s3 legitimate; s1, s2 without a label"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        section.screenshot(str(SCREENSHOTS / "monitor-model-health.png"))
        _no_browser_errors(dash_duo)
