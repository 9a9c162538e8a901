"""Pure figure builders: data in, plotly figures out (no Kafka, no Dash)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from monitor.state.decisions import RateSeries
from pipeline.config import FRAUD_TYPE_NAMES, FRAUD_TYPES
from pipeline.detection.explanations import Factor

EMPTY_MESSAGE = "Waiting for decisions…"
LINE_COLOR = "#c0392b"
TYPE_COLORS: dict[str, str] = {
    "unauthorized_transactions": "#c0392b",
    "identity_theft": "#2471a3",
    "malicious_behavior": "#b9770e",
}
ALL_TYPES_TITLE = "All types: flagged share of transactions per minute"


def _template(dark: bool) -> str:
    return "plotly_dark" if dark else "plotly_white"


def fraud_rate_title(fraud_type: str) -> str:
    """Title of the fraud-rate chart of one fraud type code."""
    return f"{FRAUD_TYPE_NAMES[fraud_type]}: flagged share of transactions per minute"


def _empty(fig: go.Figure) -> go.Figure:
    fig.add_annotation(
        text=EMPTY_MESSAGE,
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        showarrow=False,
        font={"size": 18, "color": "#7f8c8d"},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _trace(series: RateSeries, fraud_type: str, color: str) -> go.Scatter:
    name = FRAUD_TYPE_NAMES[fraud_type]
    return go.Scatter(
        # plotly.js ignores UTC offsets, so hand it naive UTC times and say so on the axis
        x=[m.replace(tzinfo=None) for m in series.minutes],
        y=list(series.rates),
        mode="lines+markers" if len(series.minutes) <= 120 else "lines",
        name=name,
        line={"color": color, "width": 2},
        hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{y:.2%}<extra>" + name + "</extra>",
    )


def all_types_figure(series_by_type: Mapping[str, RateSeries], *, dark: bool = False) -> go.Figure:
    """The three types' fraud rates overlaid on one chart (one line each, with a legend)."""
    fig = go.Figure()
    fig.update_layout(
        title={"text": ALL_TYPES_TITLE},
        template=_template(dark),
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        uirevision="all",
        showlegend=True,
        legend={"orientation": "h", "y": -0.2},
    )
    if not any(series_by_type[t].minutes for t in FRAUD_TYPES if t in series_by_type):
        return _empty(fig)
    for code in FRAUD_TYPES:
        series = series_by_type.get(code)
        if series is not None:
            fig.add_trace(_trace(series, code, TYPE_COLORS[code]))
    fig.update_xaxes(title_text="Minute of event time (UTC)")
    fig.update_yaxes(title_text="Fraud rate", tickformat=".1%", rangemode="tozero")
    return fig


def fraud_rate_figure(series: RateSeries, fraud_type: str, *, dark: bool = False) -> go.Figure:
    """Line chart of one type's fraud rate per minute, y axis in percent.

    With no data the chart is an empty frame that says "Waiting for decisions…".
    """
    fig = go.Figure()
    fig.update_layout(
        title={"text": fraud_rate_title(fraud_type)},
        template=_template(dark),
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        uirevision=fraud_type,  # keep zoom across refreshes, reset it on another type
        showlegend=False,
    )
    if not series.minutes:
        return _empty(fig)
    fig.add_trace(_trace(series, fraud_type, LINE_COLOR))
    fig.update_xaxes(title_text="Minute of event time (UTC)")
    fig.update_yaxes(title_text="Fraud rate", tickformat=".1%", rangemode="tozero")
    return fig


FACTOR_COLOR = "#c0392b"
EXPLANATION_FONT = "#8a939b"
"""A grey readable on the light and the dark page (the chart's background is transparent)."""
_LABEL_WIDTH = 44


def _wrapped(name: str, width: int = _LABEL_WIDTH) -> str:
    """A factor's name over lines of at most ``width`` characters (plotly breaks lines at <br>)."""
    return "<br>".join(textwrap.wrap(name, width, break_long_words=False))


def explanation_figure(factors: Sequence[Factor]) -> go.Figure:
    """The factors of an alert's score as horizontal bars, largest on top: each named in plain
    language, its length what it added to the score's log-odds, its value and the typical one on
    hover."""
    names = [_wrapped(f.name) for f in factors]
    hover = [
        f"value {f.value:,.4g}" + ("" if f.typical is None else f" · typical here {f.typical:,.4g}")
        for f in factors
    ]
    fig = go.Figure(
        go.Bar(
            x=[f.contribution for f in factors],
            y=names,
            orientation="h",
            marker={"color": FACTOR_COLOR},
            text=[f"+{f.contribution:.2f}" for f in factors],
            textposition="auto",
            customdata=hover,
            hovertemplate="%{customdata}<br>+%{x:.3f} log-odds<extra></extra>",
        )
    )
    lines = sum(name.count("<br>") + 1 for name in names)
    fig.update_layout(
        template="plotly_white",
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font={"color": EXPLANATION_FONT, "size": 11},
        height=60 + 18 * lines + 8 * len(factors),
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
        showlegend=False,
        bargap=0.25,
    )
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(title_text="Added to the score (log-odds)", rangemode="tozero", gridcolor="#8a939b44")
    return fig
