"""Ids, constants and styles that several sections of the page use (no callbacks here)."""

from __future__ import annotations

from typing import Any

from pipeline.config import FRAUD_TYPE_NAMES

PAGE_ID = "page"
"""The page's outermost component (its class name says light or dark)."""
URL_ID = "url"
REFRESH_ID = "refresh"
"""The interval that refreshes every section."""
THEME_ID = "theme"
"""The store (in the browser's localStorage) that says whether dark mode is on."""
REFRESH_MS = 2000

DEFAULT_FRAUD_TYPE_NAME = FRAUD_TYPE_NAMES["unauthorized_transactions"]
FRAUD_TYPE_CODES: dict[str, str] = {name: code for code, name in FRAUD_TYPE_NAMES.items()}
"""Display name (the dropdowns' value) -> fraud type code."""

CELL_STYLE = {"borderBottom": "1px solid #eee", "padding": "4px 8px", "textAlign": "left"}
BUTTON_STYLE = {"padding": "6px 14px", "marginRight": "8px", "border": "0", "borderRadius": "4px"}
OK_STYLE: dict[str, str] = {"color": "#1e8449", "fontWeight": "bold", "marginTop": "8px"}
ERROR_STYLE: dict[str, str] = {"color": "#c0392b", "fontWeight": "bold", "marginTop": "8px"}


def is_dark(theme: Any) -> bool:
    """True when the ``theme`` store says dark mode."""
    return isinstance(theme, dict) and theme.get("dark") is True
