"""The Dash app through Flask's test client: page, layout, callbacks wiring, /metrics, /healthz."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dash import Dash, dcc, html

from monitor.aggregation import AlertStore, DecisionAggregator, MonitorState
from monitor.app import create_app
from monitor.metrics import MonitorMetrics
from pipeline.config import load_settings


@pytest.fixture
def state(make_decision, make_alert) -> MonitorState:
    st = MonitorState(DecisionAggregator(60), AlertStore(50))
    for i in range(4):
        st.decisions.add(make_decision(f"a{i}"))
    flagged = make_decision("x1", decision="block", fraud_type="identity_theft")
    st.decisions.add(flagged)
    st.alerts.add(make_alert(flagged))
    return st


@pytest.fixture
def metrics() -> MonitorMetrics:
    return MonitorMetrics()


@pytest.fixture
def app(state, metrics) -> Dash:
    return create_app(state, load_settings(), registry=metrics.registry)


def _walk(component: Any):
    yield component
    children = getattr(component, "children", None)
    if isinstance(children, list | tuple):
        for child in children:
            yield from _walk(child)
    elif children is not None and hasattr(children, "to_plotly_json"):
        yield from _walk(children)


def test_layout_has_the_seed_components(app) -> None:
    components = list(_walk(app.layout))
    [h1] = [c for c in components if isinstance(c, html.H1)]
    assert h1.children == "Fraud Detection Dashboard"
    [graph] = [c for c in components if isinstance(c, dcc.Graph)]
    assert graph.id == "fraud-graph"
    [label] = [c for c in components if isinstance(c, html.Label)]
    assert label.children == "Select fraud type:"
    [dropdown] = [c for c in components if isinstance(c, dcc.Dropdown)]
    assert dropdown.id == "fraud-type"
    names = ["Unauthorized Transactions", "Identity Theft", "Malicious Behavior"]
    assert dropdown.options == [{"label": n, "value": n} for n in names]
    assert dropdown.value == "Unauthorized Transactions"
    [interval] = [c for c in components if isinstance(c, dcc.Interval)]
    assert (interval.id, interval.interval) == ("refresh", 2000)
    assert [c.id for c in components if isinstance(c, html.Table)] == ["alert-queue"]


def test_http_routes(app) -> None:
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    layout = client.get("/_dash-layout")
    assert layout.status_code == 200
    text = layout.get_data(as_text=True)
    for needle in ('"fraud-graph"', '"fraud-type"', "Fraud Detection Dashboard", "Select fraud type:"):
        assert needle in text
    health = client.get("/healthz")
    assert (health.status_code, health.get_data(as_text=True)) == (200, "ok")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    body = metrics.get_data(as_text=True)
    assert "fraud_monitor_messages_consumed_total" in body
    assert "fraud_monitor_malformed_messages_total 0.0" in body
    assert "fraud_monitor_last_decision_timestamp_seconds 0.0" in body


def test_metrics_serves_the_injected_registry(app, metrics) -> None:
    metrics.messages_consumed.labels(topic="decisions").inc(3)
    metrics.malformed_messages.inc()
    body = app.server.test_client().get("/metrics").get_data(as_text=True)
    assert 'fraud_monitor_messages_consumed_total{topic="decisions"} 3.0' in body
    assert "fraud_monitor_malformed_messages_total 1.0" in body


def test_default_registry_still_serves_monitor_metrics(state) -> None:
    body = create_app(state, load_settings()).server.test_client().get("/metrics").get_data(as_text=True)
    assert "fraud_monitor_messages_consumed_total" in body


def _update(client, outputs: list[tuple[str, str]], inputs: list[dict], state: list[dict]) -> Any:
    """POST a multi-output callback request as the browser would."""
    body = {
        "output": "..{}..".format("...".join(f"{i}.{p}" for i, p in outputs)),
        "outputs": [{"id": i, "property": p} for i, p in outputs],
        "inputs": inputs,
        "state": state,
        "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"],
    }
    return client.post("/_dash-update-component", json=body)


def test_graph_callback_is_wired_to_the_dropdown(app) -> None:
    client = app.server.test_client()
    deps = {d["output"] for d in client.get("/_dash-dependencies").get_json()}
    assert "..fraud-graph.figure...graph-rendered.data.." in deps
    response = _update(
        client,
        [("fraud-graph", "figure"), ("graph-rendered", "data")],
        [
            {"id": "refresh", "property": "n_intervals", "value": 1},
            {"id": "fraud-type", "property": "value", "value": "Identity Theft"},
        ],
        [{"id": "graph-rendered", "property": "data", "value": None}],
    )
    assert response.status_code == 200
    figure = json.loads(response.get_data(as_text=True))["response"]["fraud-graph"]["figure"]
    assert figure["data"][0]["y"] == [0.2]
    assert "Identity Theft" in figure["layout"]["title"]["text"]
    # Same key again: nothing changed, Dash answers 204 No Content.
    key = json.loads(response.get_data(as_text=True))["response"]["graph-rendered"]["data"]
    again = _update(
        client,
        [("fraud-graph", "figure"), ("graph-rendered", "data")],
        [
            {"id": "refresh", "property": "n_intervals", "value": 2},
            {"id": "fraud-type", "property": "value", "value": "Identity Theft"},
        ],
        [{"id": "graph-rendered", "property": "data", "value": key}],
    )
    assert again.status_code == 204
