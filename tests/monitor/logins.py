"""Test users and logging in, through Flask's test client, requests or the browser."""

from __future__ import annotations

import re
from typing import Any

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.security import generate_password_hash

from monitor.users import Account, Accounts

ANALYST = ("alice", "alice-secret")
VIEWER = ("victor", "victor-secret")
_FAST = "pbkdf2:sha256:1000"  # cheap hashes: the tests log in often


def make_accounts() -> Accounts:
    """alice (analyst) and victor (viewer)."""
    return Accounts(
        [
            Account(ANALYST[0], "analyst", generate_password_hash(ANALYST[1], method=_FAST)),
            Account(VIEWER[0], "viewer", generate_password_hash(VIEWER[1], method=_FAST)),
        ]
    )


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the login form carries a CSRF token"
    return match.group(1)


def login_client(client: Any, name: str, password: str, next_url: str = "/") -> Any:
    """Log a Flask test client in; returns the POST response (302 on success)."""
    form = client.get("/login").get_data(as_text=True)
    return client.post(
        "/login",
        data={"username": name, "password": password, "csrf_token": csrf_token(form), "next": next_url},
    )


def login_browser(driver: Any, url: str, name: str, password: str, timeout: float = 20) -> None:
    """Open ``url`` (which sends the browser to the login page), log in, wait for the dashboard."""
    driver.get(url)
    wait = WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))
    wait.until(EC.visibility_of_element_located((By.ID, "username"))).send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-button").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Fraud Detection Dashboard"))
