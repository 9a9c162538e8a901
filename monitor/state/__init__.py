"""The monitor's state, one store per concept; pure (no Kafka, no Dash) and thread-safe.

The stores: ``decisions`` (per-minute counts of decisions: the rates, headline figures and amounts
at risk), ``alerts`` (the alert queue, with the filter of the queue), ``verdicts`` (the analysts'
verdicts), ``scored`` (decided transactions with their features and labels, for the rule what-if),
``model_health`` (the workers' model-health reports), ``audit`` (the audit trail) and
``shared_lists`` (the block and allow lists). ``totals`` holds the figures summed from the counts
(``Headline``, ``AtRisk``), ``records`` what every store checks in a record (ids, timestamps by the
pipeline's parser, ``InvalidRecordError``). ``MonitorState`` puts the decisions, alerts and verdicts
together: the feed (``monitor.consumer``) writes it, the views read it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.state.alerts import AlertStore
from monitor.state.audit import AuditStore
from monitor.state.decisions import DecisionAggregator
from monitor.state.model_health import ModelHealthStore
from monitor.state.scored import ScoredStore
from monitor.state.verdicts import VerdictStore
from pipeline.config import Settings

__all__ = ["MonitorState"]


@dataclass(frozen=True, slots=True)
class MonitorState:
    """Everything the dashboard shows: what the feed writes and the callbacks read."""

    decisions: DecisionAggregator
    alerts: AlertStore
    verdicts: VerdictStore = field(default_factory=VerdictStore)
    scored: ScoredStore = field(default_factory=ScoredStore)
    model_health: ModelHealthStore = field(default_factory=ModelHealthStore)
    audit: AuditStore = field(default_factory=AuditStore)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> MonitorState:
        """Empty state bounded by the monitor settings."""
        return cls(
            DecisionAggregator.from_settings(settings, clock=clock),
            AlertStore.from_settings(settings),
            VerdictStore.from_settings(settings),
            ScoredStore(),
        )
