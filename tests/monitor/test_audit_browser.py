"""The "Audit trail" section in a real headless Chromium, fed from the real broker: audit events as
the monitor writes them (monitor/audit.py) and as a worker writes a rule file's change made outside
the monitor (pipeline/worker/rule_audit.py, who "system") on ``<app id>-audit``, filtered by kind and
by who."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from monitor.app import create_app
from monitor.audit import audit_event
from monitor.consumer import KafkaFeed
from pipeline.config import REPO_ROOT
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.rules import parse_rules
from pipeline.worker.rule_audit import file_changes
from tests.conftest import free_port
from tests.monitor.logins import VIEWER, login_browser, make_accounts
from tests.monitor.test_browser import RERENDERED, SCREENSHOTS, _choose, _no_browser_errors
from tests.monitor.test_feed_kafka import _produce

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

if shutil.which("chromium") and "DASH_TEST_CHROMEPATH" not in os.environ:
    os.environ["DASH_TEST_CHROMEPATH"] = shutil.which("chromium") or ""

TOKEN = "tok_4f9a2c1b7d3e"


def _events(now: datetime) -> list[dict]:
    at = [now - timedelta(minutes=m) for m in (30, 20, 10, 5)]
    listed = {
        "action": "add",
        "list": "block",
        "entity_kind": "card",
        "value": TOKEN,
        "reason": "Customer reported the card stolen",
        "who": "alice",
        "at": at[0].isoformat(),
    }
    first = {"is_fraud": True, "fraud_type": "identity_theft", "comment": "called the customer"}
    second = {"is_fraud": False, "fraud_type": None, "comment": "customer confirmed"}
    rule = {"rule_id": "WHATIF-large-abroad", "rule": {"action": "review", "when": "amount >= 500"}}
    return [
        audit_event(
            "list_change", who="alice", at=at[0], subject=f"block:card:{TOKEN}", before=None, after=listed
        ),
        audit_event("verdict", who="alice", at=at[1], subject="tx-000000077", before=None, after=first),
        audit_event("verdict", who="bob", at=at[2], subject="tx-000000077", before=first, after=second),
        audit_event(
            "rule_change", who="bob", at=at[3], subject="WHATIF-large-abroad", before=None, after=rule
        ),
    ]


def _system_event(at: datetime) -> dict:
    """A worker's event for the shipped rule file with a rule's threshold edited by hand."""
    text = (REPO_ROOT / "pipeline" / "detection" / "rules.yaml").read_text()
    edited = text.replace("terminal_small_amount_cards_10m >= 8", "terminal_small_amount_cards_10m >= 6", 1)
    before, after = (parse_rules(t, FEATURE_NAMES) for t in (text, edited))
    (event,) = file_changes(before, after, text=edited, file=REPO_ROOT / "rules.yaml", changed_at=at)
    return event


def _rows(dash_duo) -> list[str]:
    return dash_duo.find_element("#audit-table").text.splitlines()[1:]


def test_the_audit_trail_lists_every_change_and_filters_them(dash_duo, make_settings) -> None:
    settings = make_settings()
    now = datetime.now(UTC)
    events = [*_events(now), _system_event(now - timedelta(minutes=1))]
    _produce(settings, settings.topic_audit, [orjson.dumps(e) for e in events])
    with KafkaFeed(settings) as feed:
        assert feed.wait_until(lambda: len(feed.state.audit) == 5 and feed.ready, 60), feed.failure
        app = create_app(feed.state, settings, accounts=make_accounts())
        dash_duo.start_server(app, navigate=False, port=free_port())
        dash_duo.driver.set_window_size(1400, 1500)
        login_browser(dash_duo.driver, f"{dash_duo.server.url}/", *VIEWER)
        section = dash_duo.find_element("#audit-section")
        dash_duo.driver.execute_script("arguments[0].scrollIntoView();", section)
        dash_duo.wait_for_text_to_equal("#audit-count", "5 changes", timeout=20)
        assert "every change of the rule file made outside it (who: system" in section.text
        rows = _rows(dash_duo)
        assert [r.split(" ")[2] for r in rows] == ["system", "bob", "bob", "alice", "alice"], "newest first"
        assert "Rule change MB-card-testing-burst" in rows[0], "the rule file edited outside the monitor"
        assert (
            "terminal_small_amount_cards_10m >= 8" in rows[0]
            and "terminal_small_amount_cards_10m >= 6" in rows[0]
        )
        assert "Rule change WHATIF-large-abroad" in rows[1]
        assert "is_fraud=True; fraud_type=identity_theft" in rows[2] and "is_fraud=False" in rows[2]
        assert "block:card:tok_4f9a…3e" in rows[4] and TOKEN not in section.text, "tokens shortened"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        section.screenshot(str(SCREENSHOTS / "monitor-audit-trail.png"))

        _choose(dash_duo, "#audit-kind", "Verdict")
        dash_duo.wait_for_text_to_equal("#audit-count", "2 changes", timeout=20)
        who = dash_duo.find_element("#audit-who")
        who.send_keys("BOB", Keys.ENTER)
        dash_duo.wait_for_text_to_equal("#audit-count", "1 changes", timeout=20)
        wait = WebDriverWait(dash_duo.driver, 20, ignored_exceptions=RERENDERED)
        wait.until(lambda _d: len(_rows(dash_duo)) == 1)
        assert "customer confirmed" in _rows(dash_duo)[0]
        _no_browser_errors(dash_duo)
