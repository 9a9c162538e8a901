"""Model health against a real worker: the worker reports what its model learnt (labels, frauds,
label delays, champion and challengers' recent figures) on ``<app id>-model-health`` and as
Prometheus metrics, and the monitor's feed reads the reports into the figures of its section."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from monitor.consumer import KafkaFeed
from monitor.model_health import contender_rows, delay_distribution, labels_per_hour
from pipeline.contracts.json_schemas import validator
from tests.e2e.test_restart import decisions_for, label, transaction
from tests.support import consume_until, produce

pytestmark = pytest.mark.kafka

LABELS, FRAUDS = 40, 8


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_worker_reports_what_its_model_learnt_and_the_monitor_reads_it(
    make_settings, start_worker
) -> None:
    settings = make_settings(model_health_interval_seconds=0.5, model_health_min_precision=0.25)
    worker = start_worker(settings)
    # scored three hours after they happened... no: they happened 3 h ago, their labels come now
    txns = [transaction(f"health-{i}", 180, card_token=f"tok_health{i:06d}") for i in range(LABELS)]
    produce(settings, settings.topic_transactions, [(t["card_token"], t) for t in txns])
    decisions_for(settings, {t["transaction_id"] for t in txns})
    produce(settings, settings.topic_labels, [label(t, i < FRAUDS) for i, t in enumerate(txns)])

    with KafkaFeed(settings) as feed:
        store = feed.state.model_health

        def learnt() -> int:
            return sum(p.interval_labels for p in store.points())

        assert feed.wait_until(lambda: learnt() == LABELS, 60), f"{learnt()} learnt\n{worker.log()}"
        points = store.points()
        [(name, report)] = store.latest().items()
    assert name.endswith(f":{settings.worker_web_port}")
    assert sum(p.interval_frauds for p in points) == FRAUDS
    assert delay_distribution(points) == [0, LABELS, 0, 0, 0, 0, 0], "3 h from event to label"
    assert sum(h.labels for h in labels_per_hour(points, points[0].at, points[-1].at)) == LABELS
    assert (report["labels_learnt"], report["frauds_learnt"], report["review_threshold"]) == (
        LABELS,
        FRAUDS,
        0.2,
    )
    roles = sorted(c["role"] for c in report["contenders"])
    assert roles == ["challenger", "champion"], "logistic and boosting compete from the start"
    champion = next(c for c in report["contenders"] if c["role"] == "champion")
    # a batch learnt before the model had learnt anything was not scored first: it is not compared
    assert champion["learnt"] == LABELS and 0 < champion["labels"] <= LABELS
    assert 0 < champion["frauds"] <= FRAUDS
    assert report["model_version"].endswith(f"@{LABELS}")
    assert len(contender_rows(store.latest())) == 2

    # every report on the topic is valid under the schema the monitor trusts
    check = validator("model_health")
    for message in consume_until(settings, settings.topic_model_health, lambda m: len(m) >= len(points)):
        check(message)

    metrics = _samples(worker.url)
    assert metrics[("fraud_label_delay_seconds_count", ())] == LABELS
    bucket = (("le", "21600.0"),)  # 6 h
    assert metrics[("fraud_label_delay_seconds_bucket", bucket)] == LABELS
    assert metrics[("fraud_label_delay_seconds_bucket", (("le", "3600.0"),))] == 0
    assert metrics[("fraud_model_precision_floor", ())] == 0.25
    assert metrics[("fraud_model_generation", ())] == report["generation"]
    flagged = {k[1]: v for k, v in metrics.items() if k[0] == "fraud_model_flagged_at_review"}
    assert flagged[(("candidate", champion["name"]), ("role", "champion"))] >= 0
    assert metrics[("fraud_model_last_learnt_timestamp_seconds", ())] > 0
