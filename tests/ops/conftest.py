"""Fixtures of the operations tests: the Prometheus tools from Debian's `prometheus` package
(installed by `deploy/bootstrap.sh --test`)."""

from __future__ import annotations

import os
import shutil

import pytest

from pipeline.config import REPO_ROOT

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "rules.yml"
RULES_TEST_FILE = PROMETHEUS_DIR / "rules.test.yml"


def require_binary(name: str) -> str:
    """The path of ``name``; missing, the test fails on CI (CI=true) and is skipped elsewhere."""
    path = shutil.which(name)
    if path:
        return path
    reason = f"`{name}` is not installed (Debian package `prometheus`: deploy/bootstrap.sh --test)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}, and CI=true requires it")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_binary("prometheus")
