"""The detector and the model snapshot store, built from the settings: the one place for both
(the worker, ``fraud backtest``, ``fraud bench`` and the benchmarks build them here)."""

from __future__ import annotations

from typing import Literal

from pipeline.config import Settings
from pipeline.detection.detector import Detector
from pipeline.detection.engine import DetectionEngine
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.model import OnlineFraudModel
from pipeline.detection.rules import RuleSet, load_rules
from pipeline.detection.snapshots import SnapshotStore

Mode = Literal["combined", "rules", "model"]
"""combined: rules, model and anomalies, as the worker runs; rules: the rule file alone (nothing
learnt); model: the learned model alone (no rules, anomalies or alert budget)."""


def build_detector(
    settings: Settings, mode: Mode = "combined", model: OnlineFraudModel | None = None
) -> Detector:
    """A detector with the rule file and thresholds of ``settings`` and ``model`` (a new one if None)."""
    rules = load_rules(settings.rules_file, FEATURE_NAMES) if mode != "model" else RuleSet(())
    engine = DetectionEngine(
        rules=rules,
        model=model or OnlineFraudModel(),
        learning=mode != "rules",
        alert_budget=None if mode == "model" else settings.alert_budget,
        anomaly_budget=settings.anomaly_budget if mode == "combined" else None,
        review_threshold=settings.review_threshold,
        block_threshold=settings.block_threshold,
        model_review_threshold=settings.model_review_threshold,
        model_block_threshold=settings.model_block_threshold,
        model_min_labels=10**12 if mode == "rules" else (0 if mode == "model" else settings.model_min_labels),
    )
    return Detector(engine)


def snapshot_store(settings: Settings) -> SnapshotStore:
    """The store of this application's model snapshots (checksummed, signed with the snapshot key)."""
    return SnapshotStore(
        settings.data_dir / settings.app_id / "models",
        settings.model_snapshot_key.get_secret_value().encode(),
    )
