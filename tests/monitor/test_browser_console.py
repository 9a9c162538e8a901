"""The console in headless Chromium over the real broker: the "all types" overlay, the time range
(graph, headline, amounts at risk, queue, URL), the queue's filters, order and pages, dark mode kept per
browser, and refreshes that update values without rebuilding the page."""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from monitor.consumer import KafkaFeed
from monitor.state.decisions import floor_minute
from pipeline.config import FRAUD_TYPES, Settings
from tests.monitor.conftest import alert_record, decision_record
from tests.monitor.test_browser import RERENDERED, SCREENSHOTS, _choose, _no_browser_errors, _serve
from tests.monitor.test_feed_kafka import _produce

pytestmark = [pytest.mark.kafka, pytest.mark.browser, pytest.mark.slow]

RECENT_ALERTS = 24
"""Alerts r00..r23 in the last few minutes; o1 and o2 two hours ago."""
MINUTE_STARTS = (0, 5, 12, 16)
"""The first recent alert of each minute: uneven, so that each type has its own rate per minute."""


def _recent_decisions(base: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(decisions, alerts): 24 recent alerts cycling through the types, every third one blocked, scores
    0.55..0.99; 2 alerts two hours before; 36 allowed transactions (6 of them two hours before)."""
    decisions, alerts = [], []
    for i in range(RECENT_ALERTS):
        minute = bisect.bisect_right(MINUTE_STARTS, i) - 1
        record = decision_record(
            f"r{i:02d}",
            minute=minute,
            second=(i - MINUTE_STARTS[minute]) * 5 + 1,
            decision="block" if i % 3 == 0 else "review",
            fraud_type=FRAUD_TYPES[i % 3],
            amount=10.0 * (i + 1),
            score=round(0.55 + i * 0.44 / (RECENT_ALERTS - 1), 2),
            base=base,
        )
        decisions.append(record)
        alerts.append(alert_record(record))
    old = base - timedelta(hours=2)
    for tx, decision, fraud_type in (
        ("o1", "block", "identity_theft"),
        ("o2", "review", "malicious_behavior"),
    ):
        record = decision_record(tx, decision=decision, fraud_type=fraud_type, amount=500.0, base=old)
        decisions.append(record)
        alerts.append(alert_record(record))
    decisions += [
        decision_record(f"a{i:02d}", minute=i % 4, second=40 + i % 10, base=base) for i in range(30)
    ]
    decisions += [decision_record(f"z{i}", second=40 + i, base=old) for i in range(6)]
    for record in decisions:  # decided now, so the headline's staleness stays fresh for a while
        record["decided_at"] = datetime.now(UTC).isoformat(timespec="milliseconds")
    return decisions, alerts


@pytest.fixture
def live(make_settings) -> Settings:
    """Decisions of the last five minutes and of two hours ago, with their alerts, on a fresh broker topic."""
    settings = make_settings()
    base = floor_minute(datetime.now(UTC)) - timedelta(minutes=4)
    decisions, alerts = _recent_decisions(base)
    _produce(settings, settings.topic_decisions, [orjson.dumps(d) for d in decisions])
    _produce(settings, settings.topic_alerts, [orjson.dumps(a) for a in alerts])
    return settings


def _read_all(feed: KafkaFeed) -> bool:
    return feed.state.decisions.transaction_count == RECENT_ALERTS + 2 + 36 and len(feed.state.alerts) == 26


def _wait(dash_duo, timeout: float = 20) -> WebDriverWait:
    return WebDriverWait(dash_duo.driver, timeout, ignored_exceptions=RERENDERED)


def _queue_ids(dash_duo) -> list[str]:
    rows = dash_duo.driver.execute_script(
        "return Array.from(document.querySelectorAll('#alert-queue tbody tr'))"
        ".map(r => r.cells.length ? r.cells[0].textContent : '');"
    )
    return list(rows or [])


def _queue_scores(dash_duo) -> list[float]:
    cells = dash_duo.driver.execute_script(
        "return Array.from(document.querySelectorAll('#alert-queue tbody tr'))"
        ".map(r => r.cells.length > 4 ? r.cells[4].textContent : '');"
    )
    return [float(text) for text in cells or []]


def _wait_queue(dash_duo, predicate, what: str) -> list[str]:
    try:
        _wait(dash_duo).until(lambda _: predicate(_queue_ids(dash_duo)))
    except Exception:
        raise AssertionError(f"queue: {what}; shows {_queue_ids(dash_duo)}") from None
    return _queue_ids(dash_duo)


def _click_label(dash_duo, container: str, text: str) -> None:
    for label in dash_duo.find_elements(f"{container} label"):
        if label.text.strip() == text:
            label.click()
            return
    raise AssertionError(f"no option {text!r} in {container}")


def _checked(dash_duo, container: str) -> str:
    return dash_duo.find_element(f"{container} input:checked").get_attribute("value")


def _plotted(dash_duo) -> list[dict[str, Any]]:
    return dash_duo.driver.execute_script(
        "const g = document.querySelector('#fraud-graph .js-plotly-plot');"
        "return g && g.data ? g.data.map(t => ({name: t.name, n: (t.y || []).length})) : [];"
    )


def _query(dash_duo) -> dict[str, list[str]]:
    return parse_qs(urlsplit(dash_duo.driver.current_url).query)


def _risk_total(dash_duo) -> list[str]:
    return [td.text for td in dash_duo.find_elements("#at-risk-table tbody tr:last-child td")]


def test_all_types_and_time_range_drive_every_view_and_the_url(dash_duo, live: Settings) -> None:
    with KafkaFeed(live) as feed:
        assert feed.wait_until(lambda: _read_all(feed), 60)
        url = _serve(dash_duo, feed, live)
        wait = _wait(dash_duo)

        # all history: 26 alerts (the two old ones included), 62 transactions
        dash_duo.wait_for_contains_text("#headline-outcomes", "allow 36 · review 17 · block 9", timeout=20)
        _wait_queue(dash_duo, lambda ids: len(ids) == 25, "25 rows on the first page")
        wait.until(lambda _: _risk_total(dash_duo)[:2] == ["All types", "26"])

        _choose(dash_duo, "#fraud-type", "All types")
        wait.until(
            lambda _: (
                [t["name"] for t in _plotted(dash_duo)]
                == ["Unauthorized Transactions", "Identity Theft", "Malicious Behavior"]
            )
        )
        dash_duo.wait_for_contains_text("#fraud-graph", "All types", timeout=20)
        wait.until(lambda _: _query(dash_duo).get("type") == ["All types"])

        _click_label(dash_duo, "#time-range", "Last 15 min")
        wait.until(lambda _: _query(dash_duo) == {"type": ["All types"], "range": ["15m"]})
        dash_duo.wait_for_contains_text("#headline-outcomes", "allow 30 · review 16 · block 8", timeout=20)
        wait.until(lambda _: _risk_total(dash_duo)[:2] == ["All types", "24"])
        ids = _wait_queue(dash_duo, lambda ids: "o1" not in ids and len(ids) == 24, "only the recent alerts")
        assert ids[:2] == ["r23", "r22"], "newest first"
        wait.until(lambda _: all(t["n"] <= 16 for t in _plotted(dash_duo)) and _plotted(dash_duo))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        dash_duo.driver.save_screenshot(str(SCREENSHOTS / "monitor-all-types.png"))

        # a custom range: a mistyped bound is explained, a good one is applied and kept in the URL
        _click_label(dash_duo, "#time-range", "Custom (UTC)")
        start = dash_duo.find_element("#range-start")
        start.send_keys("two hours ago", Keys.ENTER)
        dash_duo.wait_for_contains_text(
            "#range-error", "is not a time; type YYYY-MM-DD HH:MM (UTC)", timeout=20
        )
        old_minute = floor_minute(datetime.now(UTC)) - timedelta(hours=3)
        start.send_keys(Keys.CONTROL, "a")
        start.send_keys(old_minute.strftime("%Y-%m-%d %H:%M"), Keys.ENTER)
        end = dash_duo.find_element("#range-end")
        end.send_keys((old_minute + timedelta(hours=2, minutes=30)).strftime("%Y-%m-%d %H:%M"), Keys.ENTER)
        wait.until(lambda _: dash_duo.find_element("#range-error").text == "")
        _wait_queue(dash_duo, lambda ids: sorted(ids) == ["o1", "o2"], "only the two old alerts")
        dash_duo.wait_for_contains_text("#headline-outcomes", "allow 6 · review 1 · block 1", timeout=20)
        wait.until(lambda _: _query(dash_duo).get("range") == ["custom"] and "to" in _query(dash_duo))
        shared = dash_duo.driver.current_url

        # a shared link restores type and range
        dash_duo.driver.get(f"{url}?type=Identity+Theft&range=1h")
        wait.until(
            EC.text_to_be_present_in_element(
                (By.CSS_SELECTOR, "#fraud-type .dash-dropdown-value"), "Identity Theft"
            )
        )
        wait.until(lambda _: _checked(dash_duo, "#time-range") == "1h")
        dash_duo.wait_for_contains_text("#headline-outcomes", "allow 30 · review 16 · block 8", timeout=20)
        dash_duo.wait_for_contains_text("#fraud-graph", "Identity Theft", timeout=20)
        dash_duo.driver.get(shared)
        wait.until(lambda _: _checked(dash_duo, "#time-range") == "custom")
        wait.until(lambda _: dash_duo.find_element("#range-start").get_attribute("value") != "")
        _wait_queue(dash_duo, lambda ids: sorted(ids) == ["o1", "o2"], "the shared custom range")
        wait.until(lambda _: len(_plotted(dash_duo)) == 3)
        _no_browser_errors(dash_duo)


def test_queue_filters_and_pages(dash_duo, live: Settings) -> None:
    with KafkaFeed(live) as feed:
        assert feed.wait_until(lambda: _read_all(feed), 60)
        _serve(dash_duo, feed, live)
        _wait_queue(dash_duo, lambda ids: len(ids) == 25, "25 rows on the first page")

        _choose(dash_duo, "#queue-page-size", "10")
        ids = _wait_queue(dash_duo, lambda ids: len(ids) == 10, "10 rows per page")
        assert ids == [f"r{i:02d}" for i in range(23, 13, -1)]
        dash_duo.wait_for_text_to_equal("#queue-page-info", "1–10 of 26 alerts · page 1 of 3", timeout=20)
        assert not dash_duo.find_element("#queue-prev").is_enabled()
        dash_duo.find_element("#queue-next").click()
        _wait_queue(dash_duo, lambda ids: ids[:1] == ["r13"], "the second page")
        dash_duo.find_element("#queue-next").click()
        _wait_queue(dash_duo, lambda ids: ids == ["r03", "r02", "r01", "r00", "o2", "o1"], "the last page")
        dash_duo.wait_for_text_to_equal("#queue-page-info", "21–26 of 26 alerts · page 3 of 3", timeout=20)
        assert not dash_duo.find_element("#queue-next").is_enabled()
        dash_duo.find_element("#queue-prev").click()
        _wait_queue(dash_duo, lambda ids: ids[:1] == ["r13"], "back to the second page")

        # filters go back to the first page
        _click_label(dash_duo, "#queue-decision", "block")
        ids = _wait_queue(dash_duo, lambda ids: ids[:1] == ["r21"], "blocked alerts, newest first")
        assert ids == ["r21", "r18", "r15", "r12", "r09", "r06", "r03", "r00", "o1"]
        _choose(dash_duo, "#queue-type", "Identity Theft")
        _wait_queue(dash_duo, lambda ids: ids == ["o1"], "blocked identity thefts")
        _click_label(dash_duo, "#queue-decision", "any")
        _wait_queue(dash_duo, lambda ids: ids[:2] == ["r22", "r19"] and len(ids) == 9, "identity thefts")
        score = dash_duo.find_element("#queue-min-score")
        score.send_keys("0.9", Keys.ENTER)
        _wait_queue(dash_duo, lambda ids: ids == ["r22", "r19", "o1"], "identity thefts scored 0.9 or more")
        dash_duo.wait_for_text_to_equal("#queue-page-info", "1–3 of 3 alerts · page 1 of 1", timeout=20)
        rows = dash_duo.find_elements("#alert-queue tbody tr")
        assert all(float(r.find_elements(By.TAG_NAME, "td")[4].text) >= 0.9 for r in rows)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        dash_duo.driver.save_screenshot(str(SCREENSHOTS / "monitor-queue-filtered.png"))
        # by score: o1 (0.95) moves above r19 (0.91), the first row is the highest score (r22, 0.97)
        _click_label(dash_duo, "#queue-order", "Highest score first")
        _wait_queue(dash_duo, lambda ids: ids == ["r22", "o1", "r19"], "identity thefts by score")
        scores = _queue_scores(dash_duo)
        assert scores == sorted(scores, reverse=True) and scores[0] == 0.97, scores
        dash_duo.wait_for_text_to_equal("#queue-prev", "‹ Higher scores", timeout=20)
        _choose(dash_duo, "#queue-type", "Malicious Behavior")
        _wait_queue(dash_duo, lambda ids: ids == ["r23", "r20"], "malicious, 0.9 or more")
        _no_browser_errors(dash_duo)


_WATCHED = "['h1', '#fraud-graph', '#fraud-graph .js-plotly-plot', '#alert-queue', '#headline-staleness']"
_MARK = f"for (const sel of {_WATCHED}) {{ document.querySelector(sel).dataset.kept = 'yes'; }}"
_KEPT = (
    f"return {_WATCHED}.map(sel => {{ const e = document.querySelector(sel);"
    " return e ? e.dataset.kept || 'new' : 'gone'; });"
)


def test_dark_mode_is_kept_and_refreshes_do_not_rebuild_the_page(dash_duo, live: Settings) -> None:
    with KafkaFeed(live) as feed:
        assert feed.wait_until(lambda: _read_all(feed), 60)
        url = _serve(dash_duo, feed, live)
        wait = _wait(dash_duo)
        driver = dash_duo.driver
        _wait_queue(dash_duo, lambda ids: len(ids) == 25, "the queue")
        dash_duo.wait_for_element("#fraud-graph .js-plotly-plot", timeout=20)

        # refresh ticks update the figures in place: the same DOM nodes carry new values
        driver.execute_script(_MARK)
        first = dash_duo.find_element("#headline-staleness").text
        wait.until(lambda _: dash_duo.find_element("#headline-staleness").text != first)
        later = dash_duo.find_element("#headline-staleness").text
        wait.until(lambda _: dash_duo.find_element("#headline-staleness").text != later)
        assert driver.execute_script(_KEPT) == ["yes"] * 5, "two refreshes rebuilt part of the page"
        # a new alert arrives: the queue's table is updated, not replaced
        record = decision_record(
            "n1", decision="block", fraud_type="identity_theft", base=floor_minute(datetime.now(UTC))
        )
        _produce(live, live.topic_decisions, [orjson.dumps(record)])
        _produce(live, live.topic_alerts, [orjson.dumps(alert_record(record))])
        _wait_queue(dash_duo, lambda ids: ids[:1] == ["n1"], "the new alert on top")
        assert driver.execute_script(_KEPT) == ["yes"] * 5

        assert dash_duo.find_element("#theme-toggle").text == "Dark mode"
        dash_duo.find_element("#theme-toggle").click()
        wait.until(lambda _: "theme-dark" in dash_duo.find_element("#page").get_attribute("class"))
        dash_duo.wait_for_text_to_equal("#theme-toggle", "Light mode", timeout=20)
        background = driver.execute_script("return getComputedStyle(document.body).backgroundColor;")
        assert background == "rgb(20, 23, 26)", background
        wait.until(
            lambda _: (
                driver.execute_script(
                    "const g = document.querySelector('#fraud-graph .js-plotly-plot');"
                    "return g && g.layout && g._fullLayout.paper_bgcolor;"
                )
                == "rgb(17,17,17)"
            )
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / "monitor-dark.png"))

        # kept per browser: a reload (and a new tab's page) opens dark
        driver.get(url)
        wait.until(lambda _: "theme-dark" in dash_duo.find_element("#page").get_attribute("class"))
        dash_duo.wait_for_text_to_equal("#theme-toggle", "Light mode", timeout=20)
        assert driver.execute_script("return localStorage.getItem('theme');") == '{"dark":true}'
        dash_duo.find_element("#theme-toggle").click()
        wait.until(lambda _: "theme-light" in dash_duo.find_element("#page").get_attribute("class"))
        driver.get(url)
        dash_duo.wait_for_text_to_equal("#theme-toggle", "Dark mode", timeout=20)
        assert "theme-light" in dash_duo.find_element("#page").get_attribute("class")
        _no_browser_errors(dash_duo)
