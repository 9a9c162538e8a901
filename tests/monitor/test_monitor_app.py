"""The Dash app through Flask's test client: login, page, layout, callbacks wiring, /metrics, /healthz."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from typing import Any

import openpyxl
import pytest
from dash import Dash, dcc, html

from monitor.app import create_app
from monitor.auth import COOKIE_NAME
from monitor.metrics import MonitorMetrics
from monitor.state import MonitorState
from monitor.state.alerts import AlertStore
from monitor.state.decisions import DecisionAggregator
from pipeline.config import load_settings
from tests.monitor.logins import ANALYST, VIEWER, login_client, make_accounts


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
def published() -> list[Mapping[str, Any]]:
    """Labels the app published (a fake publisher: no broker in these tests)."""
    return []


@pytest.fixture
def app(state, metrics, published) -> Dash:
    return create_app(
        state, load_settings(), registry=metrics.registry, publish=published.append, accounts=make_accounts()
    )


@pytest.fixture
def analyst(app):
    client = app.server.test_client()
    assert login_client(client, *ANALYST).status_code == 302
    return client


@pytest.fixture
def viewer(app):
    client = app.server.test_client()
    assert login_client(client, *VIEWER).status_code == 302
    return client


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
    graphs = [c for c in components if isinstance(c, dcc.Graph)]
    assert [graph.id for graph in graphs] == ["fraud-graph", "whatif-graph"]
    labels = [c for c in components if isinstance(c, html.Label) and c.htmlFor == "fraud-type"]
    assert [label.children for label in labels] == ["Select fraud type:"]
    [dropdown] = [c for c in components if isinstance(c, dcc.Dropdown) and c.id == "fraud-type"]
    names = ["Unauthorized Transactions", "Identity Theft", "Malicious Behavior"]
    assert dropdown.options == [{"label": n, "value": n} for n in [*names, "All types"]]
    assert dropdown.value == "Unauthorized Transactions"
    [interval] = [c for c in components if isinstance(c, dcc.Interval)]
    assert (interval.id, interval.interval) == ("refresh", 2000)
    assert [c.id for c in components if isinstance(c, html.Table)] == ["alert-queue"]
    for wanted in ("audit-section", "audit-kind", "audit-who", "audit-subject", "nav-model-health"):
        assert wanted in {getattr(c, "id", None) for c in components}
    [link] = [c for c in components if getattr(c, "id", None) == "nav-model-health"]
    assert (link.children, link.href) == ("Model health", "/model-health")
    # the model-health page is put in by the router (/model-health), known to Dash's check of callbacks
    assert "model-health-section" not in {getattr(c, "id", None) for c in components}
    checked = {getattr(c, "id", None) for c in _walk(app.validation_layout)}
    assert {"model-health-section", "model-health-graph", "model-health-refresh", "main-page"} <= checked
    ids = {getattr(c, "id", None) for c in components}
    for wanted in ("url", "alert-select", "confirm-fraud", "mark-legitimate", "export-excel", "export-pdf"):
        assert wanted in ids
    for wanted in ("time-range", "range-start", "range-end", "at-risk", "queue-type", "queue-decision"):
        assert wanted in ids
    [order] = [c for c in components if isinstance(c, dcc.RadioItems) and c.id == "queue-order"]
    assert [(o["label"], o["value"]) for o in order.options] == [
        ("Newest first", "newest"),
        ("Highest score first", "score"),
    ]
    assert order.value == "newest"
    [heading] = [
        c for c in components if isinstance(c, html.H2) and str(c.children).startswith("Alert queue")
    ]
    assert heading.children == "Alert queue (click a row for its detail)", "the order control names the order"
    [theme] = [c for c in components if isinstance(c, dcc.Store) and c.id == "theme"]
    assert theme.storage_type == "local", "dark mode is kept per browser"
    [location] = [c for c in components if isinstance(c, dcc.Location)]
    assert location.refresh is False
    [download] = [c for c in components if isinstance(c, dcc.Download)]
    assert download.id == "report-download"


def test_every_dash_route_needs_a_login_but_machine_endpoints_do_not(app) -> None:
    client = app.server.test_client()
    page = client.get("/?type=Identity+Theft")
    assert page.status_code == 302
    assert page.headers["Location"] == "/login?next=%2F%3Ftype%3DIdentity%2BTheft"
    assert client.get("/model-health").headers["Location"] == "/login?next=%2Fmodel-health"
    for path in ("/_dash-layout", "/_dash-dependencies"):
        assert client.get(path).status_code == 401
    refused = client.post("/_dash-update-component", json={"output": "x.y", "inputs": []})
    assert refused.status_code == 401
    assert client.get("/_dash-component-suites/dash/deps/react@18.3.1.min.js").status_code == 401
    for path in ("/healthz", "/metrics", "/api/summary"):
        assert client.get(path).status_code == 200, path
    login = client.get("/login?next=/")
    assert login.status_code == 200
    assert 'id="username"' in login.get_data(as_text=True)


def test_http_routes(analyst) -> None:
    client = analyst
    for path in ("/", "/model-health"):
        page = client.get(path)
        assert page.status_code == 200 and "_dash-config" in page.get_data(as_text=True), path
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


def test_login_refusals_and_logout(app) -> None:
    client = app.server.test_client()
    wrong = login_client(client, ANALYST[0], "wrong")
    assert wrong.status_code == 401
    assert "Wrong user name or password." in wrong.get_data(as_text=True)
    unknown = login_client(client, "mallory", ANALYST[1])
    assert unknown.status_code == 401
    no_token = client.post("/login", data={"username": ANALYST[0], "password": ANALYST[1]})
    assert no_token.status_code == 400
    assert client.get("/").status_code == 302
    # an open redirect is refused: after login the browser stays on this site
    ok = login_client(client, *ANALYST, next_url="https://evil.example/")
    assert (ok.status_code, ok.headers["Location"]) == (302, "/")
    assert client.get("/").status_code == 200
    assert client.get("/logout").status_code == 302
    assert client.get("/").status_code == 302, "logged out for good"


def test_session_cookie_is_locked_down(state) -> None:
    app = create_app(
        state,
        load_settings(monitor_cookie_secure=True, monitor_secret_key="k" * 32),
        publish=lambda _label: None,
        accounts=make_accounts(),
    )
    client = app.server.test_client()
    response = login_client(client, *ANALYST)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    for flag in ("HttpOnly", "SameSite=Lax", "Secure"):
        assert flag in cookie
    assert app.server.secret_key == "k" * 32
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"


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


def test_graph_callback_is_wired_to_the_dropdown(analyst) -> None:
    client = analyst
    deps = {d["output"] for d in client.get("/_dash-dependencies").get_json()}
    assert "..fraud-graph.figure...graph-rendered.data.." in deps
    response = _update(
        client,
        [("fraud-graph", "figure"), ("graph-rendered", "data")],
        [
            {"id": "refresh", "property": "n_intervals", "value": 1},
            {"id": "fraud-type", "property": "value", "value": "Identity Theft"},
            {"id": "view-range", "property": "data", "value": {"range": "all"}},
            {"id": "theme", "property": "data", "value": None},
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
            {"id": "view-range", "property": "data", "value": {"range": "all"}},
            {"id": "theme", "property": "data", "value": None},
        ],
        [{"id": "graph-rendered", "property": "data", "value": key}],
    )
    assert again.status_code == 204


_QUEUE_CONTROLS = ["queue-type", "queue-decision", "queue-min-score", "queue-order", "queue-page-size"]


def test_queue_callbacks_take_the_order_like_the_other_filters(analyst) -> None:
    deps = analyst.get("/_dash-dependencies").get_json()
    by_output = {d["output"]: [i["id"] for i in d["inputs"]] for d in deps}
    [queue] = [inputs for output, inputs in by_output.items() if "alert-queue.children" in output]
    assert queue == ["refresh", "view-range", *_QUEUE_CONTROLS, "queue-page"]
    assert by_output["queue-page.data"] == ["queue-prev", "queue-next", "view-range", *_QUEUE_CONTROLS]
    outputs = [
        ("alert-queue", "children"),
        ("alert-select", "options"),
        ("alerts-rendered", "data"),
        ("queue-pages", "data"),
        ("queue-page-info", "children"),
        ("queue-prev", "disabled"),
        ("queue-next", "disabled"),
        ("queue-prev", "children"),
        ("queue-next", "children"),
    ]
    values = {"queue-type": "any", "queue-decision": "any", "queue-order": "score", "queue-page-size": 25}
    body = {
        "output": "..{}..".format("...".join(f"{i}.{p}" for i, p in outputs)),
        "outputs": [{"id": i, "property": p} for i, p in outputs],
        "inputs": [
            {"id": "refresh", "property": "n_intervals", "value": 1},
            {"id": "view-range", "property": "data", "value": {"range": "all"}},
            *({"id": c, "property": "value", "value": values.get(c)} for c in _QUEUE_CONTROLS),
            {"id": "queue-page", "property": "data", "value": 0},
        ],
        "state": [{"id": "alerts-rendered", "property": "data", "value": None}],
        "changedPropIds": ["queue-order.value"],
    }
    response = analyst.post("/_dash-update-component", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    answer = response.get_json()["response"]
    assert [o["value"] for o in answer["alert-select"]["options"]] == ["x1"]
    assert (answer["queue-prev"]["children"], answer["queue-next"]["children"]) == (
        "‹ Higher scores",
        "Lower scores ›",
    )


def _verdict(client, action: str, transaction_id: str, fraud_type: str = "Identity Theft") -> Any:
    button = {"confirm": "confirm-fraud", "legitimate": "mark-legitimate"}[action]
    body = {
        "output": "..verdict-status.children...verdict-status.style..",
        "outputs": [
            {"id": "verdict-status", "property": "children"},
            {"id": "verdict-status", "property": "style"},
        ],
        "inputs": [
            {"id": "confirm-fraud", "property": "n_clicks", "value": 1 if action == "confirm" else None},
            {"id": "mark-legitimate", "property": "n_clicks", "value": 1 if action != "confirm" else None},
        ],
        "state": [
            {"id": "alert-select", "property": "value", "value": transaction_id},
            {"id": "verdict-fraud-type", "property": "value", "value": fraud_type},
            {"id": "verdict-comment", "property": "value", "value": None},
        ],
        "changedPropIds": [f"{button}.n_clicks"],
    }
    return client.post("/_dash-update-component", json=body)


def test_viewer_cannot_give_a_verdict_even_by_calling_the_callback(viewer, published, state) -> None:
    response = _verdict(viewer, "confirm", "x1")
    assert response.status_code == 200
    text = response.get_json()["response"]["verdict-status"]["children"]
    assert text.startswith("Not allowed: victor is a viewer")
    assert published == []
    assert state.verdicts.get("x1") is None


def test_analyst_verdict_is_published_and_shown(analyst, published, state) -> None:
    response = _verdict(analyst, "confirm", "x1", "Identity Theft")
    text = response.get_json()["response"]["verdict-status"]["children"]
    assert text == "Recorded: x1 confirmed as fraud (Identity Theft) by alice."
    [label] = published
    assert (label["transaction_id"], label["card_token"], label["analyst"]) == (
        "x1",
        "tok_4f9a2c1b7d3e",
        "alice",
    )
    assert (label["is_fraud"], label["fraud_type"], label["source"]) == (True, "identity_theft", "analyst")
    verdict = state.verdicts.get("x1")
    assert verdict is not None and verdict.analyst == "alice"
    _verdict(analyst, "legitimate", "x1")
    assert published[-1]["is_fraud"] is False and published[-1]["fraud_type"] is None
    assert state.verdicts.get("x1").outcome == "legitimate"


def test_export_excel_callback_downloads_a_workbook(viewer) -> None:
    body = {
        "output": "report-download.data",
        "outputs": {"id": "report-download", "property": "data"},
        "inputs": [
            {"id": "export-excel", "property": "n_clicks", "value": 1},
            {"id": "export-pdf", "property": "n_clicks", "value": None},
        ],
        "state": [{"id": "view-range", "property": "data", "value": {"range": "all"}}],
        "changedPropIds": ["export-excel.n_clicks"],
    }
    data = viewer.post("/_dash-update-component", json=body).get_json()["response"]["report-download"]["data"]
    assert data["filename"].startswith("fraud-report-") and data["filename"].endswith(".xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(base64.b64decode(data["content"])))
    assert workbook.sheetnames == ["Summary", "Rates by type", "Alerts", "Audit"]
    summary = {row[0]: row[1] for row in workbook["Summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["Generated by"] == "victor"


def test_url_keeps_the_fraud_type_and_range(analyst) -> None:
    controls = ["fraud-type", "time-range", "range-start", "range-end"]

    def call(search: str | None, values: list[Any], changed: str) -> Any:
        body = {
            "output": "..url.search..." + "...".join(f"{c}.value" for c in controls) + "..",
            "outputs": [{"id": "url", "property": "search"}]
            + [{"id": c, "property": "value"} for c in controls],
            "inputs": [{"id": "url", "property": "search", "value": search}]
            + [{"id": c, "property": "value", "value": v} for c, v in zip(controls, values, strict=True)],
            "state": [],
            "changedPropIds": [changed],
        }
        return analyst.post("/_dash-update-component", json=body)

    opened = call("?type=Identity+Theft", ["Unauthorized Transactions", "all", None, None], "url.search")
    assert opened.get_json()["response"] == {"fraud-type": {"value": "Identity Theft"}}
    shared = call(
        "?type=All+types&range=custom&from=2026-11-28+09%3A00&to=2026-11-28+09%3A30",
        ["Unauthorized Transactions", "all", None, None],
        "url.search",
    )
    assert shared.get_json()["response"] == {
        "fraud-type": {"value": "All types"},
        "time-range": {"value": "custom"},
        "range-start": {"value": "2026-11-28 09:00"},
        "range-end": {"value": "2026-11-28 09:30"},
    }
    chosen = call("", ["Malicious Behavior", "all", None, None], "fraud-type.value")
    assert chosen.get_json()["response"] == {"url": {"search": "?type=Malicious+Behavior"}}
    ranged = call("?type=Malicious+Behavior", ["Malicious Behavior", "1h", None, None], "time-range.value")
    assert ranged.get_json()["response"] == {"url": {"search": "?type=Malicious+Behavior&range=1h"}}
    assert call("?type=Phishing", ["Identity Theft", "all", None, None], "url.search").status_code == 204
