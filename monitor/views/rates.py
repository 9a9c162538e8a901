"""The fraud-rate chart: one fraud type's flagged share per minute, or all three overlaid."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from monitor.figures import all_types_figure, fraud_rate_figure
from monitor.state import MonitorState
from monitor.state.decisions import RateSeries
from monitor.views.shared import DEFAULT_FRAUD_TYPE_NAME, FRAUD_TYPE_CODES, REFRESH_ID, THEME_ID, is_dark
from monitor.views.time_range import VIEW_RANGE_ID, view_range
from pipeline.config import FRAUD_TYPE_NAMES, FRAUD_TYPES

FRAUD_TYPE_LABEL = "Select fraud type:"
FRAUD_TYPE_ID = "fraud-type"
GRAPH_ID = "fraud-graph"
GRAPH_RENDERED_ID = "graph-rendered"
"""The store of the key of what the chart shows (per browser tab)."""
ALL_TYPES_NAME = "All types"
"""The fraud-type choice that overlays the three types on one chart."""


def type_chooser() -> list[Any]:
    """The label and the dropdown of the fraud type to chart."""
    return [
        html.Label(FRAUD_TYPE_LABEL, htmlFor=FRAUD_TYPE_ID),
        dcc.Dropdown(
            id=FRAUD_TYPE_ID,
            options=[{"label": FRAUD_TYPE_NAMES[c], "value": FRAUD_TYPE_NAMES[c]} for c in FRAUD_TYPES]
            + [{"label": ALL_TYPES_NAME, "value": ALL_TYPES_NAME}],
            value=DEFAULT_FRAUD_TYPE_NAME,
            clearable=False,
            style={"maxWidth": "360px"},
        ),
    ]


def rate_graph() -> dcc.Graph:
    """The chart, empty ("Waiting for decisions…") until the first callback fills it."""
    default_code = FRAUD_TYPE_CODES[DEFAULT_FRAUD_TYPE_NAME]
    return dcc.Graph(id=GRAPH_ID, figure=fraud_rate_figure(RateSeries([], []), default_code))


def update_graph(
    state: MonitorState,
    fraud_type_name: str | None,
    rendered: Any,
    range_data: Any = None,
    dark: bool = False,
) -> tuple[go.Figure, str]:
    """The fraud-rate figure of the chosen type (or of all three overlaid) and the key of what it shows.

    Raises PreventUpdate when the type is unknown or neither it, the range, the theme nor the data
    changed since ``rendered`` (the key returned last time, kept in a ``dcc.Store`` per browser tab).
    """
    all_types = fraud_type_name == ALL_TYPES_NAME
    code = "all" if all_types else FRAUD_TYPE_CODES.get(fraud_type_name or "")
    if code is None:
        raise PreventUpdate
    rng, range_key = view_range(state, range_data)
    key = f"{code}@{state.decisions.version}@{range_key}@{'dark' if dark else 'light'}"
    if key == rendered:
        raise PreventUpdate
    if all_types:
        series = {c: state.decisions.fraud_rate_series(c, within=rng) for c in FRAUD_TYPE_CODES.values()}
        return all_types_figure(series, dark=dark), key
    return fraud_rate_figure(state.decisions.fraud_rate_series(code, within=rng), code, dark=dark), key


def register_rates_callbacks(app: Dash, state: MonitorState) -> None:
    """Redraw the chart from ``state`` when the data, the type, the range or the theme changed."""

    @app.callback(
        Output(GRAPH_ID, "figure"),
        Output(GRAPH_RENDERED_ID, "data"),
        Input(REFRESH_ID, "n_intervals"),
        Input(FRAUD_TYPE_ID, "value"),
        Input(VIEW_RANGE_ID, "data"),
        Input(THEME_ID, "data"),
        State(GRAPH_RENDERED_ID, "data"),
    )
    def _graph(
        _n: int | None, fraud_type_name: str | None, range_data: Any, theme: Any, rendered: Any
    ) -> tuple[Any, str]:
        return update_graph(state, fraud_type_name, rendered, range_data, is_dark(theme))
