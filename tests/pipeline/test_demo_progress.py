"""What `fraud demo` shows while it waits for a process (pipeline/tools/children.py, demo.py),
from the answers of its readiness endpoint, without a broker."""

from __future__ import annotations

import io

from pipeline.tools.children import progress_bar, readiness_of
from pipeline.tools.demo import ProgressDisplay, format_progress

RECOVERING = {
    "state": "recovering",
    "recovery": {"restored": 12_000, "total": 48_000, "records_per_second": 2_400.0, "seconds_left": 15.0},
}


def test_readiness_from_the_answers() -> None:
    assert readiness_of(None, None).summary == "not answering yet"
    assert readiness_of(200, {"ready": True}).ready
    assert readiness_of(503, {"state": "rebalancing"}).summary == "joining its consumer group"
    assert readiness_of(503, None).summary == "starting"  # the monitor's /healthz before it is up
    recovering = readiness_of(503, RECOVERING)
    assert recovering.fraction == 0.25 and recovering.progress == ("recovering", 12_000)
    assert recovering.summary == "restoring its tables 12,000 of 48,000 records, 2,400/s, about 15 s left"
    assert readiness_of(
        503, {**RECOVERING, "recovery": {**RECOVERING["recovery"], "restored": 13_000}}
    ).progress != (recovering.progress), "each record restored is progress"


def test_progress_bar_and_line() -> None:
    assert progress_bar(0.25, width=8) == "[##......]  25%"
    assert progress_bar(1.5, width=4) == "[####] 100%"
    assert format_progress("worker", readiness_of(503, RECOVERING)).startswith(
        "worker: [######..................]  25% restoring its tables 12,000 of 48,000"
    )


def test_a_file_gets_a_line_per_step_and_at_most_one_every_few_seconds_within_one() -> None:
    out = io.StringIO()
    show = ProgressDisplay("worker", out, every=3600)
    show(readiness_of(None, None))
    show(readiness_of(503, RECOVERING))
    show(readiness_of(503, {**RECOVERING, "recovery": {**RECOVERING["recovery"], "restored": 20_000}}))
    show(readiness_of(200, {"ready": True}))
    show.close()
    assert out.getvalue().splitlines() == [
        "worker: not answering yet",
        "worker: [######..................]  25% restoring its tables 12,000 of 48,000 records, "
        "2,400/s, about 15 s left",
        "worker: ready",
    ]
