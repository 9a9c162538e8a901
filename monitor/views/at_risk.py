"""The "At risk in the time range" table: alerted and blocked transactions and amounts by type."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, html
from dash.exceptions import PreventUpdate

from monitor.formatting import format_amounts
from monitor.state import MonitorState
from monitor.state.totals import AtRisk, RiskFigures
from monitor.views.shared import CELL_STYLE, REFRESH_ID
from monitor.views.time_range import VIEW_RANGE_ID, view_range
from pipeline.config import FRAUD_TYPE_NAMES, FRAUD_TYPES

AT_RISK_ID = "at-risk"
RISK_RENDERED_ID = "risk-rendered"
RISK_COLUMNS = ("Type", "Alerted", "Amount alerted", "Blocked", "Amount blocked")


def at_risk_section() -> list[Any]:
    """The heading and the place of the table (filled by the callback)."""
    return [html.H2("At risk in the time range", style={"fontSize": "18px"}), html.Div(id=AT_RISK_ID)]


def risk_cells(name: str, figures: RiskFigures) -> list[str]:
    """One row of the at-risk table, in ``RISK_COLUMNS`` order."""
    return [
        name,
        f"{figures.alerted:,}",
        format_amounts(figures.alerted_amount),
        f"{figures.blocked:,}",
        format_amounts(figures.blocked_amount),
    ]


def risk_table(risk: AtRisk) -> html.Table:
    """Counts and amounts of alerted (review or block) and blocked transactions by type, and in all."""
    rows = [risk_cells(FRAUD_TYPE_NAMES[c], risk.by_type[c]) for c in FRAUD_TYPES if c in risk.by_type]
    if None in risk.by_type:
        rows.append(risk_cells("No type", risk.by_type[None]))
    rows.append(risk_cells("All types", risk.total))
    header = html.Thead(html.Tr([html.Th(c, style=CELL_STYLE) for c in RISK_COLUMNS]))
    body = html.Tbody(
        [
            html.Tr(
                [html.Td(text, style=CELL_STYLE) for text in cells],
                style={"fontWeight": "bold"} if i == len(rows) - 1 else {},
            )
            for i, cells in enumerate(rows)
        ]
    )
    return html.Table(
        [header, body], id="at-risk-table", style={"borderCollapse": "collapse", "fontSize": "13px"}
    )


def update_at_risk(state: MonitorState, range_data: Any, rendered: Any) -> tuple[Any, str]:
    """The at-risk table of the range and its key; PreventUpdate when nothing changed."""
    rng, range_key = view_range(state, range_data)
    key = f"{state.decisions.version}@{range_key}"
    if key == rendered:
        raise PreventUpdate
    return risk_table(state.decisions.at_risk(rng)), key


def register_at_risk_callbacks(app: Dash, state: MonitorState) -> None:
    """Redraw the table from ``state`` when the counts or the range changed."""

    @app.callback(
        Output(AT_RISK_ID, "children"),
        Output(RISK_RENDERED_ID, "data"),
        Input(REFRESH_ID, "n_intervals"),
        Input(VIEW_RANGE_ID, "data"),
        State(RISK_RENDERED_ID, "data"),
    )
    def _risk(_n: int | None, range_data: Any, rendered: Any) -> tuple[Any, str]:
        return update_at_risk(state, range_data, rendered)
