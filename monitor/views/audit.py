"""The monitor's "Audit trail" section: every verdict, list change and rule enabled (who, when,
what, before and after), newest first, filtered by kind, who and subject. It only reads: the
events are written by monitor/audit.py as the changes are made, and read back from
``<app id>-audit`` (``monitor.state.audit``). Card tokens are shortened, as everywhere on the page."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, dcc, html

from monitor.state.audit import KIND_NAMES, KINDS, AuditEvent, AuditStore, audit_row
from monitor.views.shared import CELL_STYLE, REFRESH_ID

AUDIT_SECTION_ID = "audit-section"
AUDIT_KIND_ID = "audit-kind"
AUDIT_WHO_ID = "audit-who"
AUDIT_SUBJECT_ID = "audit-subject"
AUDIT_TABLE_ID = "audit-table"
AUDIT_COUNT_ID = "audit-count"
ALL_KINDS = "all"
SHOWN = 200
AUDIT_COLUMNS = ("When (UTC)", "Who", "What", "Subject", "Before", "After")


def audit_table(events: list[AuditEvent]) -> html.Table:
    head = html.Thead(html.Tr([html.Th(c, style=CELL_STYLE) for c in AUDIT_COLUMNS]))
    body = html.Tbody([html.Tr([html.Td(v, style=CELL_STYLE) for v in audit_row(e)]) for e in events[:SHOWN]])
    return html.Table([head, body], style={"borderCollapse": "collapse", "fontSize": "12px"})


def filtered(store: AuditStore, kind: Any, who: Any, subject: Any) -> list[AuditEvent]:
    chosen_kind = kind if kind in KINDS else None
    return store.events(
        kind=chosen_kind,
        who=who if isinstance(who, str) else None,
        subject=subject if isinstance(subject, str) else None,
    )


def audit_section() -> html.Div:
    options = [{"label": "All changes", "value": ALL_KINDS}]
    options += [{"label": KIND_NAMES[k], "value": k} for k in KINDS]
    return html.Div(
        [
            html.H2("Audit trail", style={"fontSize": "18px"}),
            html.P(
                "Every verdict, list change and rule enabled in the monitor, and every change of the "
                "rule file made outside it (who: system, as the workers reloaded it): who, when, what, "
                "before and after (kept for good on the audit topic). Newest first.",
                style={"fontSize": "12px", "color": "#666"},
            ),
            html.Div(
                [
                    html.Div(
                        dcc.Dropdown(id=AUDIT_KIND_ID, options=options, value=ALL_KINDS, clearable=False),
                        style={"flex": "0 0 180px"},
                    ),
                    dcc.Input(
                        id=AUDIT_WHO_ID,
                        type="text",
                        placeholder="who",
                        debounce=True,
                        style={"width": "160px"},
                    ),
                    dcc.Input(
                        id=AUDIT_SUBJECT_ID,
                        type="text",
                        placeholder="subject",
                        debounce=True,
                        style={"width": "220px"},
                    ),
                    html.Span(id=AUDIT_COUNT_ID, style={"fontSize": "13px"}),
                ],
                style={"display": "flex", "gap": "8px", "alignItems": "center", "margin": "6px 0"},
            ),
            html.Div(id=AUDIT_TABLE_ID),
        ],
        id=AUDIT_SECTION_ID,
        style={"borderTop": "1px solid #ddd", "marginTop": "16px", "paddingTop": "8px"},
    )


def register_audit_callbacks(app: Dash, store: AuditStore) -> None:
    @app.callback(
        Output(AUDIT_TABLE_ID, "children"),
        Output(AUDIT_COUNT_ID, "children"),
        Input(REFRESH_ID, "n_intervals"),
        Input(AUDIT_KIND_ID, "value"),
        Input(AUDIT_WHO_ID, "value"),
        Input(AUDIT_SUBJECT_ID, "value"),
    )
    def _refresh(_n: int | None, kind: Any, who: Any, subject: Any) -> tuple[Any, str]:
        events = filtered(store, kind, who, subject)
        shown = f" (the newest {SHOWN} shown)" if len(events) > SHOWN else ""
        return audit_table(events), f"{len(events):,} changes{shown}"
