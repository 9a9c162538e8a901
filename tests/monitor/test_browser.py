"""The monitor in a real headless Chromium, fed from the real broker."""

from __future__ import annotations

import os
import shutil

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from monitor.app import create_app
from monitor.callbacks import update_graph
from monitor.consumer import KafkaFeed
from pipeline.config import FRAUD_TYPE_NAMES, REPO_ROOT, Settings
from tests.conftest import free_port
from tests.monitor.test_feed_kafka import _all_read, published  # noqa: F401 - fixture reused

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

if shutil.which("chromium") and "DASH_TEST_CHROMEPATH" not in os.environ:
    os.environ["DASH_TEST_CHROMEPATH"] = shutil.which("chromium") or ""

SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"


def _rounded(series: list[list[float]] | None) -> list[list[float]] | None:
    return None if series is None else [[round(v, 9) for v in trace] for trace in series]


def _choose(dash_duo, dropdown: str, label: str) -> None:
    """Open a dcc.Dropdown (Dash 4 renders it as a button with a popover) and click an option."""
    wait = WebDriverWait(dash_duo.driver, 20)
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


def test_monitor_page_shows_each_fraud_type_from_kafka(dash_duo, published: Settings) -> None:  # noqa: F811
    assert shutil.which("chromedriver"), "chromium-driver is installed by deploy/bootstrap.sh --test"
    with KafkaFeed(published) as feed:
        assert feed.wait_until(lambda: _all_read(feed, published), 60)
        app = create_app(feed.state, published)
        dash_duo.start_server(app, port=free_port())
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
                WebDriverWait(dash_duo.driver, 20).until(
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
        assert not [e for e in dash_duo.get_logs() or [] if e.get("level") == "SEVERE"], (
            "no errors in the browser"
        )
