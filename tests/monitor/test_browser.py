"""The monitor in a real headless Chromium, fed from the real broker: login, the fraud-rate chart
per type (kept in the URL), an alert's explanation and analyst verdicts on the alert queue, and the
report downloads."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl
import orjson
import pytest
import requests
from confluent_kafka import Consumer
from pypdf import PdfReader
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from monitor.app import create_app
from monitor.consumer import KafkaFeed
from monitor.rules_file import RulesFile
from monitor.state.scored import pending_labels_topic
from monitor.views.rates import update_graph
from pipeline.config import FRAUD_TYPE_NAMES, REPO_ROOT, Settings
from pipeline.contracts.json_schemas import validator
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.rules import load_rules
from tests.conftest import free_port
from tests.monitor.conftest import EXPLANATION
from tests.monitor.logins import ANALYST, VIEWER, login_browser, make_accounts
from tests.monitor.test_feed_kafka import _all_read, _produce, published  # noqa: F401 - fixture reused
from tests.monitor.test_rule_whatif import entry
from tests.support import consume_until

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

if shutil.which("chromium") and "DASH_TEST_CHROMEPATH" not in os.environ:
    os.environ["DASH_TEST_CHROMEPATH"] = shutil.which("chromium") or ""

# Dash re-renders the queue every refresh: an element found a moment ago may be gone; look again.
RERENDERED = (StaleElementReferenceException,)

# Screenshots go to tests/artifacts (ignored by git); UPDATE_SCREENSHOTS=1 refreshes those in docs/.
SCREENSHOTS = (
    REPO_ROOT / ("docs" if os.environ.get("UPDATE_SCREENSHOTS") else "tests/artifacts") / "screenshots"
)


def _rounded(series: list[list[float]] | None) -> list[list[float]] | None:
    return None if series is None else [[round(v, 9) for v in trace] for trace in series]


def _choose(dash_duo, dropdown: str, label: str) -> None:
    """Open a dcc.Dropdown (Dash 4 renders it as a button with a popover) and click an option."""
    wait = WebDriverWait(dash_duo.driver, 20, ignored_exceptions=RERENDERED)
    button = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, dropdown)))
    if button.get_attribute("aria-expanded") != "true":
        button.click()
    options = wait.until(EC.visibility_of_any_elements_located((By.CSS_SELECTOR, ".dash-dropdown-option")))
    matching = [option for option in options if option.text == label]
    assert matching, f"no option {label!r} among {[o.text for o in options]}"
    matching[0].click()
    if button.get_attribute("aria-expanded") == "true":  # choosing the current value leaves it open
        ActionChains(dash_duo.driver).send_keys(Keys.ESCAPE).perform()
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, f"{dropdown} .dash-dropdown-value"), label))


def _plotted_series(dash_duo) -> list[list[float]]:
    return dash_duo.driver.execute_script(
        "const g = document.querySelector('#fraud-graph .js-plotly-plot');"
        "return g && g.data ? g.data.map(t => Array.from(t.y || [])) : null;"
    )


def _serve(dash_duo, feed: KafkaFeed, settings: Settings, user: tuple[str, str] | None = ANALYST) -> str:
    """Serve the monitor over ``feed``; log ``user`` in (None: stay logged out). Returns the URL."""
    assert shutil.which("chromedriver"), "chromium-driver is installed by deploy/bootstrap.sh --test"
    app = create_app(feed.state, settings, accounts=make_accounts())
    dash_duo.start_server(app, navigate=False, port=free_port())
    dash_duo.driver.set_window_size(1400, 1500)
    url = f"{dash_duo.server.url}/"
    if user is not None:
        login_browser(dash_duo.driver, url, *user)
        dash_duo.server_url = url  # what dash_duo navigates to; it waits for the Dash page
    return url


def _no_browser_errors(dash_duo) -> None:
    assert not [e for e in dash_duo.get_logs() or [] if e.get("level") == "SEVERE"], (
        "no errors in the browser"
    )


def test_monitor_page_shows_each_fraud_type_from_kafka(dash_duo, published: Settings) -> None:  # noqa: F811
    with KafkaFeed(published) as feed:
        assert feed.wait_until(lambda: _all_read(feed, published), 60)
        url = _serve(dash_duo, feed, published)
        dash_duo.driver.set_window_size(1280, 1000)

        dash_duo.wait_for_text_to_equal("h1", "Fraud Detection Dashboard", timeout=20)
        assert "Select fraud type:" in dash_duo.find_element("label").text
        dash_duo.wait_for_element("#fraud-graph", timeout=20)
        dash_duo.wait_for_element("#fraud-type", timeout=20)

        shown: dict[str, list[list[float]]] = {}
        for code, name in FRAUD_TYPE_NAMES.items():
            _choose(dash_duo, "#fraud-type", name)
            expected_figure, _ = update_graph(feed.state, name, None)
            expected = [list(trace["y"]) for trace in expected_figure["data"]]
            dash_duo.wait_for_contains_text("#fraud-graph", name, timeout=20)
            dash_duo.wait_for_element("#fraud-graph .js-plotly-plot", timeout=20)
            try:
                want = _rounded(expected)
                WebDriverWait(dash_duo.driver, 20, ignored_exceptions=RERENDERED).until(
                    lambda _, want=want: _rounded(_plotted_series(dash_duo)) == want
                )
            except TimeoutException:
                raise AssertionError((code, _plotted_series(dash_duo), expected)) from None
            series = _plotted_series(dash_duo)
            shown[code] = series
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            dash_duo.driver.save_screenshot(str(SCREENSHOTS / f"monitor-{code}.png"))
        assert shown["unauthorized_transactions"] != shown["malicious_behavior"], (
            "each type draws its own data"
        )
        # the chosen type is in the URL, and a shared link opens on it
        assert dash_duo.driver.current_url.endswith("/?type=Malicious+Behavior")
        dash_duo.wait_for_page(f"{url}?type=Identity+Theft", timeout=20)
        wait = WebDriverWait(dash_duo.driver, 20, ignored_exceptions=RERENDERED)
        wait.until(
            EC.text_to_be_present_in_element(
                (By.CSS_SELECTOR, "#fraud-type .dash-dropdown-value"), "Identity Theft"
            )
        )
        dash_duo.wait_for_contains_text("#fraud-graph", "Identity Theft", timeout=20)
        _no_browser_errors(dash_duo)


def test_login_is_enforced(dash_duo, published: Settings) -> None:  # noqa: F811
    with KafkaFeed(published) as feed:
        url = _serve(dash_duo, feed, published, user=None)
        driver = dash_duo.driver
        driver.get(f"{url}?type=Identity+Theft")
        wait = WebDriverWait(driver, 20, ignored_exceptions=RERENDERED)
        wait.until(EC.visibility_of_element_located((By.ID, "username")))
        assert "/login?next=" in driver.current_url, "an unauthenticated visitor gets the login page"
        assert not driver.find_elements(By.ID, "react-entry-point")
        driver.find_element(By.ID, "username").send_keys(ANALYST[0])
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.set_window_size(900, 520)
        driver.save_screenshot(str(SCREENSHOTS / "monitor-login.png"))
        driver.set_window_size(1400, 1500)
        driver.find_element(By.ID, "password").send_keys("wrong password")
        driver.find_element(By.ID, "login-button").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "login-error"), "Wrong user name or password."))

        driver.find_element(By.ID, "username").send_keys(ANALYST[0])
        driver.find_element(By.ID, "password").send_keys(ANALYST[1])
        driver.find_element(By.ID, "login-button").click()
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Fraud Detection Dashboard"))
        assert driver.current_url.endswith("/?type=Identity+Theft"), "back where the visitor wanted to go"
        dash_duo.wait_for_contains_text("#user-info", "Signed in as alice (analyst)", timeout=20)
        dash_duo.wait_for_contains_text("#fraud-graph", "Identity Theft", timeout=20)

        # Dash's own routes refuse a client without the session; machine endpoints do not
        assert requests.get(f"{url}_dash-layout", timeout=5).status_code == 401
        for path in ("healthz", "metrics", "api/summary"):
            assert requests.get(f"{url}{path}", timeout=5).status_code == 200, path

        driver.find_element(By.ID, "logout-link").click()
        wait.until(EC.visibility_of_element_located((By.ID, "username")))
        driver.get(url)
        wait.until(EC.visibility_of_element_located((By.ID, "username")))
        assert "/login" in driver.current_url, "logged out for good"


def _queue_row(dash_duo, transaction_id: str):
    dash_duo.wait_for_contains_text("#alert-queue", transaction_id, timeout=20)
    for row in dash_duo.find_elements("#alert-queue tbody tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        if cells and cells[0].text == transaction_id:
            return row
    raise AssertionError(f"no queue row {transaction_id}")


def _verdict_cell(dash_duo, transaction_id: str) -> str:
    return _queue_row(dash_duo, transaction_id).find_elements(By.TAG_NAME, "td")[-1].text


def _pick_radio(dash_duo, label: str) -> None:
    for option in dash_duo.find_elements("#verdict-fraud-type label"):
        if option.text.strip() == label:
            option.click()
            return
    raise AssertionError(f"no radio option {label!r}")


EXPLANATION_BARS = [
    "5.2× this card's 30-day mean amount",
    "terminal had 3 confirmed frauds in 7 days<br>(30-day pace 1.4)",
    "first payment of this card from this device",
]


def _explained(dash_duo) -> list[list[Any]] | None:
    """The names and lengths of the bars of the alert's explanation, as plotted."""
    return dash_duo.driver.execute_script(
        "const g = document.querySelector('#alert-explanation .js-plotly-plot');"
        "return g && g.data ? [Array.from(g.data[0].y), Array.from(g.data[0].x)] : null;"
    )


def _analyst_labels(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["transaction_id"]: m for m in messages if m.get("source") == "analyst"}


def test_analyst_confirms_an_alert_and_the_label_is_published(dash_duo, published: Settings) -> None:  # noqa: F811
    with KafkaFeed(published) as feed:
        assert feed.wait_until(lambda: _all_read(feed, published), 60)
        _serve(dash_duo, feed, published, user=ANALYST)
        wait = WebDriverWait(dash_duo.driver, 20, ignored_exceptions=RERENDERED)

        _queue_row(dash_duo, "u2").click()  # a row opens its detail
        dash_duo.wait_for_contains_text("#alert-detail", "Alert u2", timeout=20)
        dash_duo.wait_for_contains_text("#alert-detail", "No verdict yet.", timeout=20)
        detail = dash_duo.find_element("#alert-detail").text
        for needle in ("tok_4f9a…3e", "cust-000123", "t-00042-web", "test reason", "amount", "u1"):
            assert needle in detail, needle
        assert "tok_4f9a2c1b7d3e" not in detail
        # u2 is an alert v2: its factors as bars, named in plain language, largest first
        dash_duo.wait_for_element("#alert-explanation .js-plotly-plot", timeout=20)
        lengths = [factor["contribution"] for factor in EXPLANATION["factors"]]
        wait.until(lambda _: _explained(dash_duo) == [EXPLANATION_BARS, lengths])
        shown = dash_duo.find_element("#alert-explanation").text
        assert "5.2× this card's 30-day mean amount" in shown and "+2.31" in shown, shown
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        section = dash_duo.find_element("#alert-explanation")
        dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", section)
        section.screenshot(str(SCREENSHOTS / "monitor-alert-explanation.png"))
        wait.until(lambda d: d.find_element(By.ID, "confirm-fraud").is_enabled())
        checked = dash_duo.find_element("#verdict-fraud-type input:checked")
        assert checked.get_attribute("value") == "Unauthorized Transactions", (
            "the alert's type is preselected"
        )
        _pick_radio(dash_duo, "Identity Theft")
        dash_duo.find_element("#verdict-comment").send_keys("customer confirmed by phone")
        dash_duo.find_element("#confirm-fraud").click()
        dash_duo.wait_for_text_to_equal(
            "#verdict-status", "Recorded: u2 confirmed as fraud (Identity Theft) by alice.", timeout=30
        )
        labels = consume_until(published, published.topic_labels, lambda m: "u2" in _analyst_labels(m), 60)
        label = _analyst_labels(labels)["u2"]
        validator("label")(label)
        assert (label["is_fraud"], label["fraud_type"], label["analyst"], label["card_token"]) == (
            True,
            "identity_theft",
            "alice",
            "tok_4f9a2c1b7d3e",
        )
        assert label["comment"] == "customer confirmed by phone"
        dash_duo.wait_for_contains_text(
            "#alert-verdict", "Confirmed fraud (Identity Theft) by alice", timeout=20
        )
        wait.until(lambda _: _verdict_cell(dash_duo, "u2").startswith("fraud · alice · "))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        dash_duo.driver.save_screenshot(str(SCREENSHOTS / "monitor-alert-detail.png"))

        # the chooser works too: mark another alert legitimate
        _choose(dash_duo, "#alert-select", "i1 · Identity Theft · review 0.60")
        dash_duo.wait_for_contains_text("#alert-detail", "Alert i1", timeout=20)
        wait.until(lambda d: d.find_element(By.ID, "mark-legitimate").is_enabled())
        dash_duo.find_element("#mark-legitimate").click()
        dash_duo.wait_for_text_to_equal(
            "#verdict-status", "Recorded: i1 marked legitimate by alice.", timeout=30
        )
        labels = consume_until(published, published.topic_labels, lambda m: "i1" in _analyst_labels(m), 60)
        assert _analyst_labels(labels)["i1"]["is_fraud"] is False
        wait.until(lambda _: _verdict_cell(dash_duo, "i1").startswith("legitimate · alice · "))
        _no_browser_errors(dash_duo)


def _read_topic(settings: Settings, topic: str, seconds: float) -> list[dict[str, Any]]:
    """Everything on ``topic`` that can be read within ``seconds``."""
    consumer = Consumer(
        settings.confluent_config(
            **{"group.id": f"test-reader-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
        )
    )
    consumer.subscribe([topic])
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            messages += [orjson.loads(m.value()) for m in consumer.consume(100, 0.5) if not m.error()]
    finally:
        consumer.close()
    return messages


_FORGED_VERDICT = """
const done = arguments[arguments.length - 1];
const body = {
  output: "..verdict-status.children...verdict-status.style..",
  outputs: [{id: "verdict-status", property: "children"}, {id: "verdict-status", property: "style"}],
  inputs: [{id: "confirm-fraud", property: "n_clicks", value: 1},
           {id: "mark-legitimate", property: "n_clicks", value: null}],
  state: [{id: "alert-select", property: "value", value: "u2"},
          {id: "verdict-fraud-type", property: "value", value: "Identity Theft"},
          {id: "verdict-comment", property: "value", value: null}],
  changedPropIds: ["confirm-fraud.n_clicks"]
};
fetch("/_dash-update-component", {method: "POST", headers: {"Content-Type": "application/json"},
                                   body: JSON.stringify(body)})
  .then(r => r.text().then(t => done([r.status, t]))).catch(e => done([0, String(e)]));
"""


def test_a_viewer_cannot_give_verdicts(dash_duo, published: Settings) -> None:  # noqa: F811
    with KafkaFeed(published) as feed:
        assert feed.wait_until(lambda: _all_read(feed, published), 60)
        _serve(dash_duo, feed, published, user=VIEWER)
        dash_duo.wait_for_contains_text("#user-info", "Signed in as victor (viewer)", timeout=20)
        dash_duo.wait_for_contains_text("#verdict-note", "only analysts can give verdicts", timeout=20)
        _queue_row(dash_duo, "u2").click()
        dash_duo.wait_for_contains_text("#alert-detail", "Alert u2", timeout=20)
        assert not dash_duo.find_element("#confirm-fraud").is_enabled()
        assert not dash_duo.find_element("#mark-legitimate").is_enabled()

        # forging the callback request in the viewer's session is refused on the server
        status, text = dash_duo.driver.execute_async_script(_FORGED_VERDICT)
        assert status == 200, text
        answer = json.loads(text)["response"]["verdict-status"]["children"]
        assert answer == "Not allowed: victor is a viewer: only analysts may give verdicts."
        assert not _analyst_labels(_read_topic(published, published.topic_labels, 5)), "nothing was published"
        assert feed.state.verdicts.get("u2") is None


def _downloaded(folder: Path, suffix: str, timeout: float = 30) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in folder.glob(f"*{suffix}") if p.stat().st_size > 0]
        if found:
            time.sleep(0.3)  # let the browser finish writing
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no {suffix} downloaded into {folder}: {list(folder.iterdir())}")


def test_both_exports_download_valid_files(dash_duo, published: Settings) -> None:  # noqa: F811
    with KafkaFeed(published) as feed:
        assert feed.wait_until(lambda: _all_read(feed, published), 60)
        _serve(dash_duo, feed, published, user=VIEWER)  # viewers may export
        dash_duo.wait_for_contains_text("#alert-queue", "u2", timeout=20)
        folder = Path(dash_duo.download_path)

        dash_duo.find_element("#export-excel").click()
        workbook = openpyxl.load_workbook(io.BytesIO(_downloaded(folder, ".xlsx").read_bytes()))
        assert workbook.sheetnames == ["Summary", "Rates by type", "Alerts", "Audit"]
        summary = {row[0]: row[1] for row in workbook["Summary"].iter_rows(min_row=2, values_only=True)}
        assert (summary["Transactions"], summary["Generated by"]) == (14, "victor")
        assert [row[0] for row in workbook["Alerts"].iter_rows(min_row=2, values_only=True)] == [
            "m1",
            "u2",
            "i1",
            "u1",
        ], "highest score first, ties newest first"
        assert workbook["Rates by type"].max_row == 3  # header and two minutes

        dash_duo.find_element("#export-pdf").click()
        pdf = _downloaded(folder, ".pdf").read_bytes()
        text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
        assert "Fraud Detection Report" in text
        assert "Period: 2026-11-28 09:00 to 2026-11-28 09:02 UTC" in text
        for name in FRAUD_TYPE_NAMES.values():
            assert f"{name}: fraud rate per minute" in text
        assert "u2" in text and "tok_4f9a…3e" in text and "tok_4f9a2c1b7d3e" not in text
        _no_browser_errors(dash_duo)


DRAFT = (
    "id: WHATIF-large-abroad\nfraud_type: unauthorized_transactions\naction: block\n"
    "when: amount >= 500 and is_foreign == 1\nreason: '{amount:.0f} {currency} abroad'\n"
)


def _type_draft(dash_duo, text: str) -> None:
    box = dash_duo.find_element("#rule-draft")
    box.send_keys(Keys.CONTROL, "a")  # the whole text (clear_input selects one word of a textarea)
    box.send_keys(Keys.DELETE)
    box.send_keys(text)


def test_an_analyst_tries_a_rule_on_past_transactions_and_enables_it(
    dash_duo, make_settings, tmp_path
) -> None:
    """The what-if over transactions the worker's pending-labels changelog carries (produced here as
    the worker writes them), labels from the labels topic; the rule enabled into the rule file."""
    settings = make_settings()
    now = datetime.now(UTC)
    entries = [entry(f"w{i}", hours_ago=20 - i, amount=100 + 60 * i, now=now) for i in range(20)]
    entries += [entry("w-alerted", hours_ago=2, amount=900, decision="block", rule_hits=["R"], now=now)]
    entries += [entry("w-old", hours_ago=30, amount=900, now=now)]  # beyond the last day
    _produce(settings, pending_labels_topic(settings), [orjson.dumps(e) for e in entries])
    labels = [{"transaction_id": tx, "card_token": "tok_4f9a2c1b7d3e", "is_fraud": fraud,
               "source": "chargeback", "labelled_at": now.isoformat(),
               "fraud_type": "unauthorized_transactions" if fraud else None}
              for tx, fraud in (("w15", True), ("w16", True), ("w17", False), ("w1", True))]  # fmt: skip
    _produce(settings, settings.topic_labels, [orjson.dumps(label) for label in labels])
    rules = RulesFile(tmp_path / "rules.yaml")
    rules.path.write_text((REPO_ROOT / "pipeline" / "detection" / "rules.yaml").read_text())
    with KafkaFeed(settings) as feed:
        assert feed.wait_until(lambda: len(feed.state.scored) == 22 and feed.ready, 60), feed.failure
        app = create_app(feed.state, settings, accounts=make_accounts(), rules=rules)
        dash_duo.start_server(app, navigate=False, port=free_port())
        dash_duo.driver.set_window_size(1400, 1500)
        login_browser(dash_duo.driver, f"{dash_duo.server.url}/", *ANALYST)
        wait = WebDriverWait(dash_duo.driver, 20, ignored_exceptions=RERENDERED)
        wait.until(lambda d: d.find_element(By.ID, "whatif-enable").is_enabled())

        _type_draft(dash_duo, DRAFT.replace("amount >= 500", "amount >= "))
        dash_duo.find_element("#whatif-run").click()
        dash_duo.wait_for_contains_text(
            "#whatif-status", "Draft refused. Line 4: cannot parse when", timeout=20
        )

        _type_draft(dash_duo, DRAFT)
        dash_duo.find_element("#whatif-run").click()
        # amounts 520..1240 are hits (w7..w19) and the alerted one; w-old is outside the day
        dash_duo.wait_for_contains_text(
            "#whatif-status", "WHATIF-large-abroad: 14 hits in 21 transactions", 20
        )
        table = dash_duo.find_element("#whatif-table").text
        assert "Labelled precision 66.7% (2 frauds of 3 labelled hits)" in table
        assert "Labelled frauds caught 2 of 3" in table
        assert "1 already alerted (0 by the model alone, no rule)" in table and "New alerts 13" in table
        traces = dash_duo.driver.execute_script(
            "const g = document.querySelector('#whatif-graph .js-plotly-plot');"
            "return g && g.data ? g.data.map(t => [t.name, Array.from(t.y).reduce((a, b) => a + b, 0)])"
            " : null;"
        )
        assert traces == [["New alerts", 13], ["Already alerted", 1]]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        section = dash_duo.find_element("#whatif-section")
        dash_duo.driver.execute_script("arguments[0].scrollIntoView();", section)

        dash_duo.find_element("#whatif-enable").click()
        dash_duo.wait_for_contains_text("#whatif-enable-status", "Enabled: WHATIF-large-abroad", timeout=20)
        section.screenshot(str(SCREENSHOTS / "monitor-rule-whatif.png"))
        in_force = load_rules(rules.path, FEATURE_NAMES)  # as the workers' RuleReloader loads it
        assert in_force.rules[-1].id == "WHATIF-large-abroad"
        _no_browser_errors(dash_duo)
