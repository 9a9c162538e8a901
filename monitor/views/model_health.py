"""The monitor's "Model health" page (``HEALTH_PATH``): is the model learning, and how precise has it been?

A summary line (each worker's champion, generation and labels learnt, labels learnt in the last
hour, the live alert precision from analysts' verdicts), a table of each worker's champion and
challengers with their recent average precision and precision at the review threshold (computed by
the worker from labels), and four charts: labels learnt per hour, label delays, generations and
promotions over time, and the model score by outcome. The figures are in ``monitor.model_health``
(pure); the reports come from the workers (``<app id>-model-health``, ``monitor.state.model_health``).
The page only reads: nothing in it changes anything. Its components exist only while the page is
shown (``monitor.views.page`` puts them in when the URL's path is ``HEALTH_PATH``), with an interval
of their own: the dashboard's sections do not compute these figures, and this page does not refresh
theirs.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html, no_update

from monitor.model_health import (
    CONTENDER_COLUMNS,
    HOUR,
    contender_rows,
    delay_distribution,
    generation_changes,
    health_figure,
    labels_per_hour,
    latest_points,
    score_histogram,
    summary,
    verdict_precision,
)
from monitor.state import MonitorState
from monitor.views.shared import CELL_STYLE, REFRESH_MS

HEALTH_PATH = "/model-health"
"""The page's URL path."""
HEALTH_SECTION_ID = "model-health-section"
HEALTH_REFRESH_ID = "model-health-refresh"
HEALTH_SUMMARY_ID = "model-health-summary"
HEALTH_TABLE_ID = "model-health-table"
HEALTH_GRAPH_ID = "model-health-graph"
HEALTH_RENDERED_ID = "model-health-rendered"
HOURS_SHOWN = 24
"""Labels per hour, delays and the score distribution cover the last day."""


class HealthView(NamedTuple):
    summary: str
    table: html.Table | None
    figure: go.Figure


def contenders_table(rows: list[tuple[str, ...]]) -> html.Table | None:
    if not rows:
        return None
    head = html.Thead(html.Tr([html.Th(c, style=CELL_STYLE) for c in CONTENDER_COLUMNS]))
    body = html.Tbody(
        [
            html.Tr(
                [html.Td(v, style=CELL_STYLE) for v in row],
                style={"fontWeight": "bold"} if row[2] == "champion" else {},
            )
            for row in rows
        ]
    )
    return html.Table([head, body], style={"borderCollapse": "collapse", "fontSize": "13px"})


def health_summary(state: MonitorState, now: float) -> str:
    """The summary line as of ``now`` (seconds)."""
    recent = state.model_health.points(now - HOUR)
    verdicts = verdict_precision(state.verdicts.snapshot().values())
    return summary(state.model_health.latest(), recent, now, verdicts)


def health_view(state: MonitorState, now: float) -> HealthView:
    """Everything the section shows as of ``now`` (seconds)."""
    since = now - HOURS_SHOWN * HOUR
    all_points = state.model_health.points()
    recent = [p for p in all_points if p.at >= since]
    figure = health_figure(
        labels_per_hour(recent, since, now),
        delay_distribution(recent),
        generation_changes(all_points),
        score_histogram(state.scored.sample(since)),
        window=(since, now),
        ends=latest_points(all_points),
    )
    table = contenders_table(contender_rows(state.model_health.latest()))
    return HealthView(health_summary(state, now), table, figure)


def health_page() -> html.Div:
    """The page's components (filled by the callback)."""
    return html.Div(
        [
            html.H2("Model health", style={"fontSize": "18px"}),
            html.P(
                "What the online model has learnt and how precise it has been: each worker reports "
                "its champion and challengers, scored on their recent labels before learning them. "
                "Labels per hour, delays and scores cover the last 24 hours.",
                style={"fontSize": "12px", "color": "#666"},
            ),
            html.Div(id=HEALTH_SUMMARY_ID, role="status", style={"fontSize": "13px", "margin": "6px 0"}),
            html.Div(id=HEALTH_TABLE_ID),
            dcc.Graph(id=HEALTH_GRAPH_ID, figure=go.Figure()),
            dcc.Store(id=HEALTH_RENDERED_ID),
            dcc.Interval(id=HEALTH_REFRESH_ID, interval=REFRESH_MS),
        ],
        id=HEALTH_SECTION_ID,
    )


def register_health_callbacks(app: Dash, state: MonitorState) -> None:
    """Refresh the page every ``REFRESH_MS`` while it is shown; the table and charts only when a
    store changed."""

    @app.callback(
        Output(HEALTH_SUMMARY_ID, "children"),
        Output(HEALTH_TABLE_ID, "children"),
        Output(HEALTH_GRAPH_ID, "figure"),
        Output(HEALTH_RENDERED_ID, "data"),
        Input(HEALTH_REFRESH_ID, "n_intervals"),
        State(HEALTH_RENDERED_ID, "data"),
    )
    def _refresh(_n: int | None, rendered: Any) -> tuple[Any, ...]:
        now = time.time()
        versions = [state.model_health.version, state.scored.version, state.verdicts.version, int(now // 60)]
        if versions == rendered:
            return health_summary(state, now), no_update, no_update, no_update
        view = health_view(state, now)
        return view.summary, view.table, view.figure, versions
