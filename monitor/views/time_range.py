"""The time range selector (all history, the last 15 min / 1 h / 24 h, or custom UTC bounds).

The chosen range is kept in the ``view-range`` store; every section that shows figures resolves
it at the state's clock with ``view_range`` each time it is drawn, so "last 15 min" slides.
"""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html, no_update

from monitor.state import MonitorState
from monitor.timerange import (
    DEFAULT_RANGE,
    RANGE_LABELS,
    InvalidRangeError,
    RangeSpec,
    TimeRange,
    floor_range,
)
from monitor.views.shared import ERROR_STYLE

TIME_RANGE_ID = "time-range"
RANGE_START_ID = "range-start"
RANGE_END_ID = "range-end"
RANGE_ERROR_ID = "range-error"
VIEW_RANGE_ID = "view-range"
"""The store of the range in force (``RangeSpec.to_data``)."""


def range_selector() -> html.Div:
    """Time range: all history, the last 15 min / 1 h / 24 h, or custom UTC bounds."""
    text_input = {"width": "215px", "marginRight": "8px"}
    return html.Div(
        [
            html.Label("Time range:", htmlFor=TIME_RANGE_ID, style={"marginRight": "8px"}),
            dcc.RadioItems(
                id=TIME_RANGE_ID,
                options=[{"label": label, "value": value} for value, label in RANGE_LABELS.items()],
                value=DEFAULT_RANGE,
                inline=True,
                inputStyle={"marginRight": "4px"},
                labelStyle={"marginRight": "12px"},
            ),
            dcc.Input(
                id=RANGE_START_ID,
                type="text",
                placeholder="from YYYY-MM-DD HH:MM",
                debounce=True,
                style=text_input,
            ),
            dcc.Input(
                id=RANGE_END_ID,
                type="text",
                placeholder="to YYYY-MM-DD HH:MM",
                debounce=True,
                style=text_input,
            ),
            html.Span(id=RANGE_ERROR_ID, role="alert", style=ERROR_STYLE | {"marginTop": "0"}),
        ],
        style={
            "display": "flex",
            "alignItems": "center",
            "flexWrap": "wrap",
            "gap": "4px",
            "margin": "10px 0",
        },
    )


def view_range(state: MonitorState, range_data: Any) -> tuple[TimeRange, str]:
    """The range of the ``view-range`` store resolved at the state's clock, and a key of it that
    changes at most once a minute for the sliding ranges."""
    spec = RangeSpec.from_data(range_data)
    rng = spec.resolve(state.decisions.now())
    return rng, f"{spec.choice}:{floor_range(rng)}"


def update_view_range(choice: str | None, start_text: str | None, end_text: str | None) -> tuple[Any, str]:
    """The ``view-range`` store's data from the range controls, and an error text ('' when fine).

    A custom range that cannot be read leaves the store as it was (``no_update``) and says why.
    """
    try:
        spec = RangeSpec.build(choice, start_text, end_text)
    except InvalidRangeError as exc:
        return no_update, str(exc)
    return spec.to_data(), ""


def register_time_range_callbacks(app: Dash) -> None:
    """Fill the ``view-range`` store from the controls (or say why a custom range is refused)."""

    @app.callback(
        Output(VIEW_RANGE_ID, "data"),
        Output(RANGE_ERROR_ID, "children"),
        Input(TIME_RANGE_ID, "value"),
        Input(RANGE_START_ID, "value"),
        Input(RANGE_END_ID, "value"),
    )
    def _range(choice: str | None, start: str | None, end: str | None) -> tuple[Any, str]:
        return update_view_range(choice, start, end)
