"""The monitor's "Rule what-if" section: an analyst drafts a rule, runs it over the last days of
decided transactions, sees what it would have done (a table and a chart), then enables it.

``try_draft`` and ``enable_draft`` are the server-side paths the callbacks call: the draft is
checked by ``monitor.rule_drafts`` (refused with its line and the reason), evaluated by
``monitor.whatif`` over the ``monitor.state.scored.ScoredStore``, and enabled through the rule
file the workers reload (``monitor.rules_file``). ``enable_draft`` refuses anyone but an analyst,
whatever the browser sends; like the verdict buttons, the form goes through Dash's callback route
(a JSON POST that needs the session cookie).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, NamedTuple

import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from monitor.auth import current_user
from monitor.rule_drafts import (
    DRAFT_EXAMPLE,
    DraftError,
    RuleChangeNotAllowedError,
    check_may_enable_rules,
    parse_draft,
)
from monitor.rules_file import RuleNotAuditedError, RulesFile
from monitor.state.scored import MAX_DAYS, MAX_ROWS, ScoredStore
from monitor.users import User
from monitor.views.shared import BUTTON_STYLE, CELL_STYLE, ERROR_STYLE, OK_STYLE
from monitor.whatif import WhatIfError, evaluate, result_rows, whatif_figure
from pipeline.detection.rules import RuleError, RuleSet

logger = logging.getLogger(__name__)

WHATIF_SECTION_ID = "whatif-section"
DRAFT_ID = "rule-draft"
DAYS_ID = "whatif-days"
RUN_ID = "whatif-run"
ENABLE_ID = "whatif-enable"
STATUS_ID = "whatif-status"
ENABLE_STATUS_ID = "whatif-enable-status"
TABLE_ID = "whatif-table"
GRAPH_ID = "whatif-graph"
NOTE_ID = "whatif-note"
DEFAULT_DAYS = 1


class Feedback(NamedTuple):
    text: str
    style: dict[str, str]


class Tried(NamedTuple):
    """What the 'Try' button shows: a status line, the table's rows and the chart."""

    feedback: Feedback
    rows: list[tuple[str, str]]
    figure: go.Figure | None


def _in_force(rules: RulesFile) -> RuleSet | None:
    try:
        return rules.in_force()
    except RuleError as exc:  # the draft is still checked; enabling will say why it cannot
        logger.warning("the rule file does not load: %s", exc)
        return None


def _refused(exc: DraftError) -> Feedback:
    where = f"Line {exc.line}: " if exc.line is not None else ""
    return Feedback(f"Draft refused. {where}{exc.reason}", ERROR_STYLE)


def _days(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_DAYS:
        raise DraftError(None, f"days must be a number above 0 and at most {MAX_DAYS}")
    return float(value)


def try_draft(store: ScoredStore, rules: RulesFile, text: str | None, days: Any, now: float) -> Tried:
    """Check the draft and run it over the last ``days`` (before ``now``, seconds) of transactions."""
    try:
        draft = parse_draft(text, _in_force(rules))
        window = _days(days)
    except DraftError as exc:
        return Tried(_refused(exc), [], None)
    sample = store.sample(now - window * 86400)
    try:
        result = evaluate(draft.rule, sample, days=window)
    except WhatIfError as exc:
        return Tried(Feedback(f"Draft refused. {exc}.", ERROR_STYLE), [], None)
    text = (
        f"{draft.rule.id}: {result.hits:,} hits in {result.evaluated:,} transactions of the last {window:g} "
        f"day(s) (the monitor keeps {sample.kept:,} at most {MAX_ROWS:,}, {MAX_DAYS} days)."
    )
    return Tried(Feedback(text, OK_STYLE), result_rows(result), whatif_figure(result))


def enable_draft(rules: RulesFile, user: User | None, text: str | None, now: datetime) -> Feedback:
    """Enable the draft (analysts only): it goes into the rule file, which the workers reload."""
    try:
        analyst = check_may_enable_rules(user)
        draft = parse_draft(text, rules.in_force())
        rules.enable(draft, who=analyst.name, at=now)
    except RuleChangeNotAllowedError as exc:
        logger.warning("rule change refused: %s", exc)
        return Feedback(f"Not allowed: {exc}.", ERROR_STYLE)
    except DraftError as exc:
        return _refused(exc)
    except RuleNotAuditedError as exc:  # in the file and in force: say so, and what went wrong
        return Feedback(f"Enabled: {draft.rule.id} is in force in {rules.path.name}; {exc}", ERROR_STYLE)
    except RuleError as exc:
        return Feedback(f"Not enabled: {exc}", ERROR_STYLE)
    logger.info("rule %s enabled by %s", draft.rule.id, analyst.name)
    return Feedback(
        f"Enabled: {draft.rule.id} added to {rules.path.name} by {analyst.name}; "
        "the workers apply it within FRAUD_RULES_RELOAD_SECONDS.",
        OK_STYLE,
    )


# --- the page ------------------------------------------------------------------------------------
def table_of(rows: list[tuple[str, str]]) -> html.Table | None:
    if not rows:
        return None
    body = [
        html.Tr([html.Th(what, style=CELL_STYLE), html.Td(value, style=CELL_STYLE)]) for what, value in rows
    ]
    return html.Table(html.Tbody(body), style={"borderCollapse": "collapse", "fontSize": "13px"})


def whatif_section() -> html.Div:
    """The section's components (filled by the callbacks)."""
    return html.Div(
        [
            html.H2("Rule what-if", style={"fontSize": "18px"}),
            html.P(
                "Draft one rule in the rule file's syntax, try it on the last days of decided "
                "transactions, then enable it: the workers reload the rule file without a restart.",
                style={"fontSize": "12px", "color": "#666"},
            ),
            dcc.Textarea(
                id=DRAFT_ID,
                value=DRAFT_EXAMPLE,
                spellCheck=False,
                style={"width": "100%", "maxWidth": "760px", "height": "130px", "fontFamily": "monospace"},
            ),
            html.Div(
                [
                    html.Label("Last days", htmlFor=DAYS_ID, style={"fontSize": "13px"}),
                    dcc.Input(
                        id=DAYS_ID,
                        type="number",
                        value=DEFAULT_DAYS,
                        min=1,
                        max=MAX_DAYS,
                        style={"width": "60px"},
                    ),
                    html.Button(
                        "Try on past transactions",
                        id=RUN_ID,
                        style={**BUTTON_STYLE, "background": "#2c3e50", "color": "#fff"},
                    ),
                    html.Button("Enable rule", id=ENABLE_ID, disabled=True, style=BUTTON_STYLE),
                ],
                style={"display": "flex", "gap": "8px", "alignItems": "center", "margin": "6px 0"},
            ),
            html.Div(id=STATUS_ID, role="status"),
            html.Div(id=ENABLE_STATUS_ID, role="status"),
            html.Div(id=NOTE_ID, style={"fontSize": "12px", "color": "#666", "marginTop": "6px"}),
            html.Div(
                [
                    html.Div(id=TABLE_ID, style={"minWidth": "420px"}),
                    dcc.Graph(id=GRAPH_ID, figure=go.Figure(), style={"flex": "1", "minWidth": "420px"}),
                ],
                style={"display": "flex", "gap": "16px", "flexWrap": "wrap"},
            ),
        ],
        id=WHATIF_SECTION_ID,
        style={"borderTop": "1px solid #ddd", "marginTop": "16px", "paddingTop": "8px"},
    )


def access_view(user: User | None) -> tuple[str, bool]:
    """(note, enable disabled): anyone may try a draft, only analysts enable it."""
    if user is not None and user.role == "analyst":
        return "", False
    who = f"a {user.role}" if user is not None else "not logged in"
    return f"You are {who}: you can try drafts, only analysts can enable them.", True


def register_whatif_callbacks(app: Dash, store: ScoredStore, rules: RulesFile, *, url_id: str) -> None:
    """Wire the section to the scored transactions and the rule file."""

    @app.callback(Output(NOTE_ID, "children"), Output(ENABLE_ID, "disabled"), Input(url_id, "pathname"))
    def _access(_path: str | None) -> tuple[str, bool]:
        return access_view(current_user())

    @app.callback(
        Output(STATUS_ID, "children"),
        Output(STATUS_ID, "style"),
        Output(TABLE_ID, "children"),
        Output(GRAPH_ID, "figure"),
        Input(RUN_ID, "n_clicks"),
        State(DRAFT_ID, "value"),
        State(DAYS_ID, "value"),
        prevent_initial_call=True,
    )
    def _run(_run: int | None, text: str | None, days: Any) -> tuple[Any, ...]:
        tried = try_draft(store, rules, text, days, time.time())
        figure = tried.figure if tried.figure is not None else go.Figure()
        return tried.feedback.text, tried.feedback.style, table_of(tried.rows), figure

    @app.callback(
        Output(ENABLE_STATUS_ID, "children"),
        Output(ENABLE_STATUS_ID, "style"),
        Input(ENABLE_ID, "n_clicks"),
        State(DRAFT_ID, "value"),
        prevent_initial_call=True,
    )
    def _enable(clicks: int | None, text: str | None) -> tuple[Any, ...]:
        if not clicks:
            raise PreventUpdate
        feedback = enable_draft(rules, current_user(), text, datetime.now(UTC))
        return feedback.text, feedback.style
