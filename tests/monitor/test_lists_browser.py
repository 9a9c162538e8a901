"""The lists section in a real headless Chromium against the real broker: an analyst adds an entry
through the page (it lands on the list-updates topic and shows shortened), removes it again; a
viewer sees the form disabled."""

from __future__ import annotations

import os
import shutil

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from monitor.app import create_app
from monitor.lists_feed import ListFeed, ListPublisher
from monitor.state import MonitorState
from pipeline.contracts.json_schemas import validator
from tests.conftest import free_port
from tests.monitor.conftest import alert_record, decision_record
from tests.monitor.logins import ANALYST, VIEWER, login_browser, make_accounts
from tests.monitor.test_browser import RERENDERED, SCREENSHOTS, _choose, _no_browser_errors
from tests.support import consume_until

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

if shutil.which("chromium") and "DASH_TEST_CHROMEPATH" not in os.environ:
    os.environ["DASH_TEST_CHROMEPATH"] = shutil.which("chromium") or ""

TOKEN = "tok_browser0042ab"


def _serve(dash_duo, settings, feed: ListFeed, publisher: ListPublisher, user: tuple[str, str]) -> None:
    state = MonitorState.from_settings(settings)
    state.alerts.add(alert_record(decision_record("x1", decision="block", fraud_type="identity_theft")))
    app = create_app(
        state,
        settings,
        accounts=make_accounts(),
        publish=lambda _label: None,
        lists=feed.lists,
        publish_list=publisher.publish,
    )
    dash_duo.start_server(app, navigate=False, port=free_port())
    dash_duo.driver.set_window_size(1400, 1800)
    url = f"{dash_duo.server.url}/"
    login_browser(dash_duo.driver, url, *user)
    dash_duo.server_url = url


def test_an_analyst_adds_and_removes_a_list_entry_through_the_page(dash_duo, make_settings) -> None:
    settings = make_settings()
    publisher = ListPublisher(settings)
    with ListFeed(settings) as feed:
        assert feed.wait_ready(30), feed.failure
        _serve(dash_duo, settings, feed, publisher, ANALYST)
        wait = WebDriverWait(dash_duo.driver, 20, ignored_exceptions=RERENDERED)
        dash_duo.wait_for_contains_text("#lists-table", "No entries from the monitor yet.", timeout=20)
        wait.until(lambda d: d.find_element(By.ID, "list-add").is_enabled())

        # a card number is refused on the server and never echoed
        dash_duo.find_element("#list-value").send_keys("4111 1111 1111 1111")
        dash_duo.find_element("#list-reason").send_keys("stolen")
        dash_duo.find_element("#list-add").click()
        dash_duo.wait_for_contains_text("#list-status", "that looks like a card number", timeout=20)
        assert "4111" not in dash_duo.find_element("#list-status").text

        value = dash_duo.find_element("#list-value")
        dash_duo.clear_input(value)  # through React's events: WebElement.clear() leaves Dash's value
        value.send_keys(TOKEN)
        dash_duo.find_element("#list-add").click()
        dash_duo.wait_for_text_to_equal(
            "#list-status", "Recorded: card tok_brow…ab added to the block list by alice.", timeout=30
        )
        updates = consume_until(settings, settings.topic_lists, lambda m: len(m) >= 1, 60)
        [update] = updates
        validator("list_update")(update)
        assert (update["action"], update["list"], update["value"], update["who"], update["reason"]) == (
            "add",
            "block",
            TOKEN,
            "alice",
            "stolen",
        )
        dash_duo.wait_for_contains_text("#lists-table", "tok_brow…ab", timeout=20)
        page = dash_duo.driver.page_source
        assert TOKEN not in page, "the page never holds the whole token"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        section = dash_duo.find_element("#lists-section")
        dash_duo.driver.execute_script("arguments[0].scrollIntoView();", section)
        section.screenshot(str(SCREENSHOTS / "monitor-lists.png"))

        _choose(dash_duo, "#list-remove-select", "block · card · tok_brow…ab")
        dash_duo.find_element("#list-remove").click()
        dash_duo.wait_for_text_to_equal(
            "#list-status", "Recorded: card tok_brow…ab removed from the block list by alice.", timeout=30
        )
        updates = consume_until(settings, settings.topic_lists, lambda m: len(m) >= 2, 60)
        assert [u["action"] for u in updates] == ["add", "remove"]
        dash_duo.wait_for_contains_text("#lists-table", "No entries from the monitor yet.", timeout=20)

        # the card of an alert, without typing its token (the page shows it shortened)
        _choose(dash_duo, "#list-from-alert", "x1 · block · card tok_4f9a…3e")
        dash_duo.find_element("#list-add").click()
        dash_duo.wait_for_text_to_equal(
            "#list-status", "Recorded: card tok_4f9a…3e added to the block list by alice.", timeout=30
        )
        updates = consume_until(settings, settings.topic_lists, lambda m: len(m) >= 3, 60)
        assert (updates[-1]["action"], updates[-1]["value"]) == ("add", "tok_4f9a2c1b7d3e")
        dash_duo.wait_for_contains_text("#lists-table", "tok_4f9a…3e", timeout=20)
        assert "tok_4f9a2c1b7d3e" not in dash_duo.driver.page_source
        _no_browser_errors(dash_duo)
    publisher.close()


def test_a_viewer_sees_the_lists_read_only(dash_duo, make_settings) -> None:
    settings = make_settings()
    publisher = ListPublisher(settings)
    with ListFeed(settings) as feed:
        assert feed.wait_ready(30), feed.failure
        _serve(dash_duo, settings, feed, publisher, VIEWER)
        dash_duo.wait_for_contains_text("#list-note", "only analysts can change the lists", timeout=20)
        assert not dash_duo.find_element("#list-add").is_enabled()
        assert not dash_duo.find_element("#list-remove").is_enabled()
    publisher.close()
