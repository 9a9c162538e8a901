"""The toolbar at the top right: who is signed in, the Excel and PDF exports, dark mode."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from dash import ClientsideFunction, Dash, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from monitor.auth import current_user
from monitor.reports.data import collect_report, report_filename
from monitor.reports.excel import build_excel
from monitor.reports.pdf import build_pdf
from monitor.state import MonitorState
from monitor.timerange import RangeSpec
from monitor.users import User
from monitor.views.shared import BUTTON_STYLE, PAGE_ID, THEME_ID
from monitor.views.time_range import VIEW_RANGE_ID

USER_INFO_ID = "user-info"
EXPORT_EXCEL_ID = "export-excel"
EXPORT_PDF_ID = "export-pdf"
DOWNLOAD_ID = "report-download"
THEME_TOGGLE_ID = "theme-toggle"


def toolbar() -> html.Div:
    """The toolbar's components (the user's name is filled in by the page's header callback)."""
    return html.Div(
        [
            html.Span(id=USER_INFO_ID, style={"marginRight": "16px", "fontSize": "13px"}),
            html.Button("Export Excel", id=EXPORT_EXCEL_ID, style=BUTTON_STYLE),
            html.Button("Export PDF", id=EXPORT_PDF_ID, style=BUTTON_STYLE),
            html.Button("Dark mode", id=THEME_TOGGLE_ID, style=BUTTON_STYLE),
            dcc.Download(id=DOWNLOAD_ID),
        ],
        style={"float": "right", "display": "flex", "alignItems": "center"},
    )


def user_info(name: str | None, role: str | None) -> list[Any]:
    """'Signed in as alice (analyst) · Log out'."""
    if name is None:
        return []
    return [f"Signed in as {name} ({role}) · ", html.A("Log out", href="/logout", id="logout-link")]


def export_report(
    state: MonitorState,
    kind: Literal["xlsx", "pdf"],
    user: User | None,
    now: datetime | None = None,
    range_data: Any = None,
) -> dict[str, Any]:
    """The report of the chosen time range as ``dcc.Download`` data (an Excel workbook or a PDF)."""
    spec = RangeSpec.from_data(range_data)
    data = collect_report(
        state,
        generated_by=user.name if user else "unknown",
        now=now,
        within=spec.resolve(state.decisions.now()),
        range_text=spec.describe(),
    )
    content = build_excel(data) if kind == "xlsx" else build_pdf(data)
    mime = (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        if kind == "xlsx"
        else "application/pdf"
    )
    return dcc.send_bytes(content, report_filename(data, kind), type=mime)


def register_toolbar_callbacks(app: Dash, state: MonitorState) -> None:
    """Wire dark mode (in the browser) and the exports of ``state``."""
    # The theme lives in the browser (localStorage), so it is switched without a server round trip.
    app.clientside_callback(
        ClientsideFunction(namespace="monitor", function_name="theme"),
        Output(THEME_ID, "data"),
        Output(PAGE_ID, "className"),
        Output(THEME_TOGGLE_ID, "children"),
        Input(THEME_TOGGLE_ID, "n_clicks"),
        State(THEME_ID, "data"),
    )

    @app.callback(
        Output(DOWNLOAD_ID, "data"),
        Input(EXPORT_EXCEL_ID, "n_clicks"),
        Input(EXPORT_PDF_ID, "n_clicks"),
        State(VIEW_RANGE_ID, "data"),
        prevent_initial_call=True,
    )
    def _export(_excel: int | None, _pdf: int | None, range_data: Any) -> dict[str, Any]:
        if ctx.triggered_id not in (EXPORT_EXCEL_ID, EXPORT_PDF_ID):
            raise PreventUpdate
        kind = "xlsx" if ctx.triggered_id == EXPORT_EXCEL_ID else "pdf"
        return export_report(state, kind, current_user(), range_data=range_data)
