"""Pure figure builders: data in, plotly figures out (no Kafka, no Dash)."""

from __future__ import annotations

import plotly.graph_objects as go

from monitor.aggregation import RateSeries
from pipeline.config import FRAUD_TYPE_NAMES

EMPTY_MESSAGE = "Waiting for decisions…"
LINE_COLOR = "#c0392b"


def fraud_rate_title(fraud_type: str) -> str:
    """Title of the fraud-rate chart of one fraud type code."""
    return f"{FRAUD_TYPE_NAMES[fraud_type]}: flagged share of transactions per minute"


def fraud_rate_figure(series: RateSeries, fraud_type: str) -> go.Figure:
    """Line chart of one type's fraud rate per minute, y axis in percent.

    With no data the chart is an empty frame that says "Waiting for decisions…".
    """
    name = FRAUD_TYPE_NAMES[fraud_type]
    fig = go.Figure()
    fig.update_layout(
        title={"text": fraud_rate_title(fraud_type)},
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        uirevision=fraud_type,  # keep zoom across refreshes, reset it on another type
        showlegend=False,
    )
    if not series.minutes:
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
    fig.add_trace(
        go.Scatter(
            # plotly.js ignores UTC offsets, so hand it naive UTC times and say so on the axis
            x=[m.replace(tzinfo=None) for m in series.minutes],
            y=list(series.rates),
            mode="lines+markers" if len(series.minutes) <= 120 else "lines",
            name=name,
            line={"color": LINE_COLOR, "width": 2},
            hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{y:.2%}<extra>" + name + "</extra>",
        )
    )
    fig.update_xaxes(title_text="Minute of event time (UTC)")
    fig.update_yaxes(title_text="Fraud rate", tickformat=".1%", rangemode="tozero")
    return fig
