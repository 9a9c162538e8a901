"""Callback bodies as plain functions: read the shared state, call the pure builders.

``monitor.app`` wires them to Dash; tests call them directly.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import plotly.graph_objects as go
from dash import html
from dash.exceptions import PreventUpdate

from monitor.aggregation import DECISIONS, MonitorState
from monitor.figures import fraud_rate_figure
from monitor.layout import FRAUD_TYPE_CODES, FRESH_STYLE, STALE_STYLE, alert_table, format_amounts

STALE_AFTER_SECONDS = 30.0
ALERT_ROWS = 100


class HeadlineView(NamedTuple):
    """Texts of the headline row (the outputs of ``update_headline``, in order)."""

    tx_per_second: str
    outcomes: str
    alert_rate: str
    blocked_amount: str
    staleness: str
    staleness_style: dict[str, str]


def update_graph(state: MonitorState, fraud_type_name: str | None, rendered: Any) -> tuple[go.Figure, str]:
    """The fraud-rate figure of the chosen type and the key of what it shows.

    Raises PreventUpdate when the type is unknown or neither it nor the data changed since
    ``rendered`` (the key returned last time, kept in a ``dcc.Store`` per browser tab).
    """
    code = FRAUD_TYPE_CODES.get(fraud_type_name or "")
    if code is None:
        raise PreventUpdate
    key = f"{code}@{state.decisions.version}"
    if key == rendered:
        raise PreventUpdate
    return fraud_rate_figure(state.decisions.fraud_rate_series(code), code), key


def update_headline(state: MonitorState, stale_after: float = STALE_AFTER_SECONDS) -> HeadlineView:
    """Headline texts; the time since the last decision turns red past ``stale_after`` seconds."""
    h = state.decisions.headline()
    age = h.seconds_since_last_decision
    if age is None:
        staleness, stale = "no decisions yet", True
    else:
        staleness, stale = f"{age:.0f} s", age > stale_after
    return HeadlineView(
        tx_per_second=f"{h.tx_per_second:.1f}",
        outcomes=" · ".join(f"{d} {h.outcomes[d]:,}" for d in DECISIONS),
        alert_rate=f"{h.alert_rate:.2%} ({h.flagged:,} of {h.total:,})",
        blocked_amount=format_amounts(h.blocked_amount),
        staleness=staleness,
        staleness_style=STALE_STYLE if stale else FRESH_STYLE,
    )


def update_alert_queue(
    state: MonitorState, rendered: Any, limit: int = ALERT_ROWS
) -> tuple[list[html.Thead | html.Tbody], int]:
    """Rows of the newest ``limit`` alerts and the store version they show.

    Raises PreventUpdate when no alert arrived since version ``rendered``.
    """
    version = state.alerts.version
    if version == rendered:
        raise PreventUpdate
    return alert_table(state.alerts.newest(limit)), version
