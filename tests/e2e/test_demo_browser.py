"""A new user's steps in the browser, as the README gives them, against `fraud demo` on the real
broker (issue 19's "done when"): log in with the demo's login, open a transaction the demo blocked
and read why in plain words, try a rule on the last day of traffic, enable it, see the worker apply
it without a restart and the audit trail record it. It also takes the README's screenshot of the
demo (docs/screenshots/demo-monitor.png with UPDATE_SCREENSHOTS=1, else in tests/artifacts)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from pipeline.config import load_settings
from tests.e2e.test_demo import _demo_env
from tests.monitor.logins import login_browser
from tests.monitor.test_browser import RERENDERED, SCREENSHOTS, _choose, _type_draft
from tests.support import consume_until, start_demo

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.browser]

if shutil.which("chromium") and "DASH_TEST_CHROMEPATH" not in os.environ:
    os.environ["DASH_TEST_CHROMEPATH"] = shutil.which("chromium") or ""

RULE_ID = "DEMO-large-amount"
DRAFT = (
    f"id: {RULE_ID}\nfraud_type: unauthorized_transactions\naction: review\n"
    "when: amount >= 100\nreason: '{amount:.0f} {currency} is a large amount'\n"
)
HITS = re.compile(r"(\d[\d,]*) hits in (\d[\d,]*) transactions")


def _first_blocked(driver) -> str | None:
    """The transaction of the queue's first row once the queue shows blocked alerts only (read in
    one call: the refresh re-renders the rows every 2 s)."""
    cells = driver.execute_script(
        "return Array.from(document.querySelectorAll('#alert-queue tbody tr'))"
        ".map(r => Array.from(r.querySelectorAll('td')).map(td => td.innerText.trim()));"
    )
    # columns: transaction, event time, type, decision, ...
    rows = [c for c in cells or [] if len(c) > 3]
    return rows[0][0] if rows and all(c[3] == "block" for c in rows) else None


def _click_row(driver, transaction_id: str) -> bool:
    """Click the queue's row of ``transaction_id`` (found and clicked in one call)."""
    return bool(driver.execute_script(
        "const row = Array.from(document.querySelectorAll('#alert-queue tbody tr'))"
        ".find(r => r.querySelector('td') && r.querySelector('td').innerText.trim() === arguments[0]);"
        "if (row) { row.click(); return true; } return false;",
        transaction_id,
    ))  # fmt: skip


def _explanation(driver) -> tuple[list[str], str]:
    """The names of the bars of the alert's explanation (none: the section's note instead)."""
    names = driver.execute_script(
        "const g = document.querySelector('#alert-explanation .js-plotly-plot');"
        "return g && g.data ? Array.from(g.data[0].y) : null;"
    )
    return (names or [], driver.find_element(By.ID, "alert-explanation").text)


_PLOTTED = (
    "const g = document.querySelector('#fraud-graph .js-plotly-plot');"
    "return g && g.data ? g.data.filter(t => t.y && t.y.length >= 2).length : 0;"
)


def _wait_for_blocks(url: str) -> dict:
    """The summary once the demo has blocked transactions of every fraud type's traffic."""
    summary: dict = {}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        summary = requests.get(f"{url}api/summary", timeout=5).json()
        if summary["outcomes"].get("block", 0) >= 3 and all(summary["fraud_rate_by_type"].values()):
            return summary
        time.sleep(2)
    raise AssertionError(f"no blocked transactions of every type in 180 s: {summary}")


def test_a_new_user_sees_why_the_demo_blocked_and_tries_and_enables_a_rule(
    dash_duo, kafka_bootstrap: str, tmp_path: Path
) -> None:
    unique = f"demob-{os.getpid()}-{int(time.time())}"
    env = _demo_env(unique, kafka_bootstrap, tmp_path, FRAUD_TOPIC_LISTS=f"{unique}-list-updates")
    output = tmp_path / "demo.out"
    demo, url = start_demo(env, output)
    try:
        _wait_for_blocks(url)
        driver = dash_duo.driver
        driver.set_window_size(1400, 1110)
        login_browser(driver, url, "analyst", "analyst")  # the demo's login, printed at its start
        wait = WebDriverWait(driver, 30, ignored_exceptions=RERENDERED)
        wait.until(lambda d: re.search(r"block [1-9]", d.find_element(By.ID, "headline-outcomes").text))
        wait.until(lambda d: d.execute_script(
            "const g = document.querySelector('#fraud-graph .js-plotly-plot');"
            "return !!(g && g.data && g.data.length && g.data[0].y && g.data[0].y.length);"
        ))  # fmt: skip
        driver.set_window_size(1400, 1500)

        # 1. a blocked transaction, and why, in plain words
        dash_duo.find_element("#queue-decision input[value='block']").click()
        # the queue and the detail are re-rendered by the refresh: read them again when stale
        transaction_id = wait.until(lambda d: _first_blocked(d))
        wait.until(lambda d: _click_row(d, transaction_id))
        dash_duo.wait_for_contains_text("#alert-detail", f"Alert {transaction_id}", timeout=30)
        fields = wait.until(lambda d: d.find_element(By.ID, "alert-fields").text)
        assert re.search(r"Decision\s+block", fields), fields
        reasons = wait.until(
            lambda d: [li.text for li in d.find_elements(By.CSS_SELECTOR, "#alert-reasons li")]
        )
        for reason in reasons:  # sentences with the transaction's values, not templates or rule ids
            assert len(reason.split()) >= 3 and "{" not in reason, reason
            assert not re.fullmatch(r"[A-Z]+-[\w-]+", reason), reason
        explained = wait.until(lambda d: _explanation(d))
        if explained[0]:  # the model's factors, named in plain language (no feature names)
            assert all(re.search(r"[a-z]+_[a-z]+", name) is None for name in explained[0]), explained
        print(f"blocked {transaction_id}: {reasons}; model factors: {explained[0] or explained[1]}")

        # 2. a rule tried on the last day of traffic
        section = dash_duo.find_element("#whatif-section")
        driver.execute_script("arguments[0].scrollIntoView();", section)
        assert dash_duo.find_element("#whatif-days").get_attribute("value") == "1", "the last day by default"
        _type_draft(dash_duo, DRAFT)
        dash_duo.find_element("#whatif-run").click()
        dash_duo.wait_for_contains_text("#whatif-status", f"{RULE_ID}: ", timeout=30)
        status = dash_duo.find_element("#whatif-status").text
        match = HITS.search(status)
        assert match, status
        hits, evaluated = (int(g.replace(",", "")) for g in match.groups())
        assert 0 < hits <= evaluated, status
        print(f"what-if: {status}")

        # the README's screenshot: the dashboard under the navigation bar, all types (before
        # the rule below adds its alerts)
        driver.set_window_size(1400, 1110)
        driver.execute_script("window.scrollTo(0, 0);")
        _choose(dash_duo, "#fraud-type", "All types")
        WebDriverWait(driver, 120, ignored_exceptions=RERENDERED).until(
            lambda d: d.execute_script(_PLOTTED) == 3  # two minutes of each type at least
        )
        assert "Model health" in driver.find_element(By.ID, "nav").text, "the navigation bar"
        time.sleep(1)  # the chart's transition
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / "demo-monitor.png"))
        driver.set_window_size(1400, 1500)

        # 3. enabled from the monitor: the worker applies it without a restart
        wait.until(lambda d: d.find_element(By.ID, "whatif-enable").is_enabled())
        dash_duo.find_element("#whatif-enable").click()
        dash_duo.wait_for_contains_text("#whatif-enable-status", f"Enabled: {RULE_ID}", timeout=30)
        settings = load_settings(kafka_bootstrap_servers=kafka_bootstrap)
        decisions = consume_until(
            settings, env["FRAUD_TOPIC_DECISIONS"],
            lambda got: any(RULE_ID in d.get("rule_hits", ()) for d in got), timeout=120,
        )  # fmt: skip
        hit = next(d for d in decisions if RULE_ID in d.get("rule_hits", ()))
        assert hit["amount"] >= 100 and any("is a large amount" in r for r in hit["reasons"]), hit

        # 4. the audit trail says who enabled it
        audit = dash_duo.find_element("#audit-section")
        driver.execute_script("arguments[0].scrollIntoView();", audit)
        dash_duo.wait_for_contains_text("#audit-table", RULE_ID, timeout=30)
        (row_text,) = [r for r in dash_duo.find_element("#audit-table").text.splitlines() if RULE_ID in r]
        assert "analyst Rule change" in row_text, row_text
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(60)
    assert code == 0, output.read_text()
