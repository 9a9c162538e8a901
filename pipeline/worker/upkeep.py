"""The worker's periodic upkeep: reloading the rule file when it changes (each change of what is in
force audited, pipeline/worker/rule_audit.py), and model snapshots."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.detection.detector import Detector
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.rules import RuleError, parse_rules, read_rule_file
from pipeline.detection.snapshots import SnapshotStore
from pipeline.worker.rule_audit import RuleFileAudit
from pipeline.worker.telemetry import PipelineMetrics

log = logging.getLogger(__name__)


class RuleReloader:
    """Loads the rule file again when it changed; a malformed file is refused and the rules in
    force stay. Tables and the model are untouched. With an ``audit``, each change of the rules
    in force is an audit event (the monitor's own are skipped: pipeline/worker/rule_audit.py)."""

    def __init__(
        self, path: Path, detector: Detector, metrics: PipelineMetrics, audit: RuleFileAudit | None = None
    ) -> None:
        self.path = path
        self.detector = detector
        self.metrics = metrics
        self.audit = audit
        self._mtime = _mtime(path)

    async def reload_if_changed(self) -> None:
        mtime = _mtime(self.path)
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            text = read_rule_file(self.path)
            rules = parse_rules(text, FEATURE_NAMES, source=str(self.path))
        except RuleError as exc:
            self.metrics.rule_reloads.labels("refused").inc()
            log.error("rule file refused, the previous rules stay in force: %s", exc)
            return
        before, self.detector.engine.rules = self.detector.engine.rules, rules
        self.metrics.rule_reloads.labels("loaded").inc()
        log.info("rules reloaded from %s: %d rules", self.path, len(rules.rules))
        if self.audit is not None and mtime is not None:
            try:
                audited = self.audit.reloaded(before, rules, text=text, file=self.path, mtime=mtime)
            except Exception:  # the rules are in force: an audit failure is logged, never raised
                log.exception("the rule file's changes were not audited")
                return
            log.info("rule file changes audited: %d events", audited)


class ModelSnapshots:
    """Saves the detector's model when it has learnt something since the last snapshot."""

    def __init__(self, store: SnapshotStore, detector: Detector, metrics: PipelineMetrics) -> None:
        self.store = store
        self.detector = detector
        self.metrics = metrics
        self._labels = detector.engine.model.labels_learnt

    async def save_if_changed(self) -> None:
        model = self.detector.engine.model
        if model.labels_learnt == self._labels:
            return
        path = self.store.save(model, model.labels_learnt)
        self._labels = model.labels_learnt
        self.metrics.model_snapshots.inc()
        log.info("model snapshot %s (%s)", path.name, model.version)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
