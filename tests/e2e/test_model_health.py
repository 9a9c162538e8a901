"""Model health against a real worker: the worker reports what its model learnt (labels, frauds,
label delays, champion and challengers' recent figures) on ``<app id>-model-health`` and as
Prometheus metrics, the monitor's feed reads the reports, and the monitor's "Model health" page
(``/model-health``) in a real headless Chromium shows them: labels learnt per hour, label delays,
champion and challenger, generations, score by outcome and the precision of analysts' verdicts."""

from __future__ import annotations

import os
import shutil
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from selenium.webdriver.support.ui import WebDriverWait

from monitor.app import create_app
from monitor.consumer import KafkaFeed
from monitor.model_health import contender_rows, delay_distribution, labels_per_hour, score_histogram
from monitor.views.model_health import HEALTH_PATH, HOURS_SHOWN
from pipeline.contracts.json_schemas import validator
from tests.conftest import free_port
from tests.e2e.test_restart import decisions_for, label, transaction
from tests.monitor.logins import VIEWER, login_browser, make_accounts
from tests.monitor.test_browser import RERENDERED, SCREENSHOTS, _no_browser_errors
from tests.support import consume_until, produce

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

if shutil.which("chromium") and "DASH_TEST_CHROMEPATH" not in os.environ:
    os.environ["DASH_TEST_CHROMEPATH"] = shutil.which("chromium") or ""

LABELS, FRAUDS = 40, 8
ANALYST_VERDICTS = {0: True, 1: True, FRAUDS: False}
"""Labels given as analysts' verdicts, by index: two confirmed frauds and one legitimate."""

_TRACES = (
    "const g = document.querySelector('#model-health-graph .js-plotly-plot');"
    "return g && g.data && g.data.length > 3 ? g.data.map(t => [t.name,"
    " Array.from(t.customdata || t.y).reduce((a, b) => a + b, 0), Array.from(t.y)]) : null;"
)


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_worker_reports_what_its_model_learnt_and_the_monitor_page_shows_it(
    make_settings, start_worker, dash_duo
) -> None:
    settings = make_settings(model_health_interval_seconds=0.5, model_health_min_precision=0.25)
    worker = start_worker(settings)
    # they happened 3 h ago, their labels come now
    txns = [transaction(f"health-{i}", 180, card_token=f"tok_health{i:06d}") for i in range(LABELS)]
    produce(settings, settings.topic_transactions, [(t["card_token"], t) for t in txns])
    decisions_for(settings, {t["transaction_id"] for t in txns})
    labels = [label(t, i < FRAUDS) for i, t in enumerate(txns)]
    for i, is_fraud in ANALYST_VERDICTS.items():
        labels[i][1].update(
            source="analyst", analyst="alice", fraud_type="identity_theft" if is_fraud else None
        )
    produce(settings, settings.topic_labels, labels)

    with KafkaFeed(settings) as feed:
        store = feed.state.model_health

        def learnt() -> int:
            return sum(p.interval_labels for p in store.points())

        assert feed.wait_until(lambda: learnt() == LABELS, 60), f"{learnt()} learnt\n{worker.log()}"
        assert feed.wait_until(lambda: len(feed.state.verdicts) == len(ANALYST_VERDICTS), 30)

        def scored() -> tuple[int, int]:  # the pending-labels changelog and the labels: other topics
            counts = score_histogram(feed.state.scored.sample(time.time() - HOURS_SHOWN * 3600))
            return sum(counts["fraud"]), sum(counts["legitimate"])

        assert feed.wait_until(lambda: scored() == (FRAUDS, LABELS - FRAUDS), 30), scored()
        points = store.points()
        [(name, report)] = store.latest().items()
        assert name.endswith(f":{settings.worker_web_port}")
        assert sum(p.interval_frauds for p in points) == FRAUDS
        assert delay_distribution(points) == [0, LABELS, 0, 0, 0, 0, 0], "3 h from event to label"
        assert sum(h.labels for h in labels_per_hour(points, points[0].at, points[-1].at)) == LABELS
        assert (report["labels_learnt"], report["frauds_learnt"], report["review_threshold"]) == (
            LABELS,
            FRAUDS,
            0.2,
        )
        roles = sorted(c["role"] for c in report["contenders"])
        assert roles == ["challenger", "champion"], "logistic and boosting compete from the start"
        champion = next(c for c in report["contenders"] if c["role"] == "champion")
        # a batch learnt before the model had learnt anything was not scored first: it is not compared
        assert champion["learnt"] == LABELS and 0 < champion["labels"] <= LABELS
        assert 0 < champion["frauds"] <= FRAUDS
        assert report["model_version"].endswith(f"@{LABELS}")
        assert len(contender_rows(store.latest())) == 2

        # every report on the topic is valid under the schema the monitor trusts
        check = validator("model_health")
        for message in consume_until(settings, settings.topic_model_health, lambda m: len(m) >= len(points)):
            check(message)
            assert message["schema_version"] == 2, "v2: a promotion would carry its time"

        metrics = _samples(worker.url)
        assert metrics[("fraud_label_delay_seconds_count", ())] == LABELS
        bucket = (("le", "21600.0"),)  # 6 h
        assert metrics[("fraud_label_delay_seconds_bucket", bucket)] == LABELS
        assert metrics[("fraud_label_delay_seconds_bucket", (("le", "3600.0"),))] == 0
        assert metrics[("fraud_model_precision_floor", ())] == 0.25
        assert metrics[("fraud_model_generation", ())] == report["generation"]
        flagged = {k[1]: v for k, v in metrics.items() if k[0] == "fraud_model_flagged_at_review"}
        assert flagged[(("candidate", champion["name"]), ("role", "champion"))] >= 0
        assert metrics[("fraud_model_last_learnt_timestamp_seconds", ())] > 0

        _the_page_shows_it(dash_duo, feed, settings, name, report["model_version"])


def _the_page_shows_it(dash_duo, feed: KafkaFeed, settings, worker: str, version: str) -> None:
    """The /model-health page, opened by its URL (through the login) and from the navigation."""
    champion = version.split("@")[0].split(".")[0]
    app = create_app(feed.state, settings, accounts=make_accounts())
    dash_duo.start_server(app, navigate=False, port=free_port())
    dash_duo.driver.set_window_size(1400, 1250)
    login_browser(dash_duo.driver, f"{dash_duo.server.url}{HEALTH_PATH}", *VIEWER)  # a viewer sees it all
    assert dash_duo.driver.current_url.endswith(HEALTH_PATH), "the login leads back to the page"
    dash_duo.wait_for_contains_text("#model-health-summary", f"{worker}: {version}, generation 0", 20)
    assert not dash_duo.find_element("#main-page").is_displayed(), "the dashboard's sections are not shown"
    summary = dash_duo.find_element("#model-health-summary").text
    assert f"{LABELS} labels learnt" in summary and f"Labels learnt in the last hour: {LABELS}." in summary
    assert "Alert precision from analysts' verdicts: 66.7% (2 confirmed fraud of 3 alerts" in summary
    table = dash_duo.find_element("#model-health-table").text.splitlines()
    assert [row.split()[:3] for row in table[1:]] == [
        [worker, champion, "champion"],
        [worker, "boosting" if champion == "logistic" else "logistic", "challenger"],
    ], table

    wait = WebDriverWait(dash_duo.driver, 20, ignored_exceptions=RERENDERED)
    traces = {name: (total, ys) for name, total, ys in wait.until(lambda d: d.execute_script(_TRACES))}
    assert (traces["legitimate labels"][0], traces["fraud labels"][0]) == (LABELS - FRAUDS, FRAUDS)
    assert traces["labels by delay"][1] == [0, LABELS, 0, 0, 0, 0, 0]
    assert set(traces[f"generation, {worker}"][1]) == {0}, "generation 0: no promotion yet"
    now = time.time()
    expected = score_histogram(feed.state.scored.sample(now - HOURS_SHOWN * 3600))
    assert sum(expected["fraud"]) == FRAUDS and sum(expected["legitimate"]) == LABELS - FRAUDS
    for outcome, counts in expected.items():
        assert traces[f"score, {outcome} ({sum(counts)})"][0] == sum(counts), outcome
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dash_duo.find_element("#page").screenshot(str(SCREENSHOTS / "monitor-model-health.png"))

    # the navigation: to the dashboard (the page's components go) and back
    dash_duo.find_element("#nav-dashboard").click()
    dash_duo.wait_for_element("#fraud-graph", timeout=20)
    wait.until(lambda d: dash_duo.find_element("#main-page").is_displayed())
    assert dash_duo.driver.find_elements("css selector", "#model-health-section") == []
    assert not dash_duo.driver.current_url.endswith(HEALTH_PATH)
    dash_duo.find_element("#nav-model-health").click()
    dash_duo.wait_for_contains_text("#model-health-summary", f"{worker}: {champion}", 20)
    assert dash_duo.driver.current_url.endswith(HEALTH_PATH)
    # a dashboard opened on a type, then the model health: the "Dashboard" link goes back to that type
    dash_duo.driver.get(f"{dash_duo.server.url}/?type=Identity+Theft")
    dash_duo.wait_for_element("#fraud-graph", timeout=20)
    wait.until(
        lambda d: "type=Identity+Theft" in dash_duo.find_element("#nav-dashboard").get_attribute("href")
    )
    dash_duo.find_element("#nav-model-health").click()
    dash_duo.wait_for_contains_text("#model-health-summary", f"{worker}: {champion}", 20)
    dash_duo.find_element("#nav-dashboard").click()
    wait.until(lambda d: dash_duo.find_element("#main-page").is_displayed())
    assert dash_duo.driver.current_url.endswith("/?type=Identity+Theft")
    _no_browser_errors(dash_duo)
