"""The headline row: transactions per second, decisions by outcome, alert rate, blocked amount,
and the time since the last decision (red once it is stale)."""

from __future__ import annotations

from typing import Any, NamedTuple

from dash import Dash, Input, Output, html

from monitor.formatting import format_amounts
from monitor.state import MonitorState
from monitor.state.records import DECISIONS
from monitor.timerange import EVERYTHING, TimeRange
from monitor.views.shared import REFRESH_ID
from monitor.views.time_range import VIEW_RANGE_ID, view_range

TPS_ID = "headline-tps"
OUTCOMES_ID = "headline-outcomes"
ALERT_RATE_ID = "headline-alert-rate"
BLOCKED_ID = "headline-blocked"
STALENESS_ID = "headline-staleness"

STALE_AFTER_SECONDS = 30.0
STALE_STYLE: dict[str, str] = {"color": "red", "fontWeight": "bold"}
FRESH_STYLE: dict[str, str] = {"color": "inherit"}
_CARD_STYLE = {
    "border": "1px solid #ddd",
    "borderRadius": "6px",
    "padding": "8px 14px",
    "minWidth": "150px",
}


def _headline_card(label: str, value_id: str) -> html.Div:
    return html.Div(
        [html.Div(label, style={"fontSize": "12px", "color": "#666"}), html.Div("–", id=value_id)],
        style=_CARD_STYLE,
    )


def headline_row() -> html.Div:
    """The row of headline cards (filled by the callback)."""
    return html.Div(
        [
            _headline_card("Transactions/s (last minute)", TPS_ID),
            _headline_card("Decisions by outcome", OUTCOMES_ID),
            _headline_card("Alert rate", ALERT_RATE_ID),
            _headline_card("Blocked amount", BLOCKED_ID),
            _headline_card("Since last decision", STALENESS_ID),
        ],
        style={"display": "flex", "gap": "12px", "flexWrap": "wrap", "marginBottom": "16px"},
    )


class HeadlineView(NamedTuple):
    """Texts of the headline row (the outputs of ``update_headline``, in order)."""

    tx_per_second: str
    outcomes: str
    alert_rate: str
    blocked_amount: str
    staleness: str
    staleness_style: dict[str, str]


def update_headline(
    state: MonitorState, stale_after: float = STALE_AFTER_SECONDS, within: TimeRange = EVERYTHING
) -> HeadlineView:
    """Headline texts over ``within``; the time since the last decision turns red past ``stale_after``
    seconds (transactions per second and staleness are always the latest, whatever the range)."""
    h = state.decisions.headline(within)
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


def register_headline_callbacks(app: Dash, state: MonitorState, stale_after: float) -> None:
    """Refresh the row from ``state`` on every tick and when the range changes."""

    @app.callback(
        Output(TPS_ID, "children"),
        Output(OUTCOMES_ID, "children"),
        Output(ALERT_RATE_ID, "children"),
        Output(BLOCKED_ID, "children"),
        Output(STALENESS_ID, "children"),
        Output(STALENESS_ID, "style"),
        Input(REFRESH_ID, "n_intervals"),
        Input(VIEW_RANGE_ID, "data"),
    )
    def _headline(_n: int | None, range_data: Any) -> tuple[Any, ...]:
        within, _ = view_range(state, range_data)
        return tuple(update_headline(state, stale_after, within))
