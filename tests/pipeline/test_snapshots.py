"""SnapshotStore: round trip, checksum and signature refusal with fallback, pruning."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import pickle
from pathlib import Path

import pytest

from pipeline.detection.model import OnlineFraudModel
from pipeline.detection.snapshots import SnapshotError, SnapshotStore

KEY = b"test-key-1"


def model_with(labels: int) -> OnlineFraudModel:
    model = OnlineFraudModel()
    for i in range(labels):
        model.learn(f"tx-{i}", {"f0": float(i % 7), "f1": 1.0}, i % 3 == 0, "identity_theft")
    return model


def pkl_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.pkl"))


def test_save_and_load_latest_round_trip(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "snaps", KEY)
    assert store.load_latest() is None  # no folder yet
    model = model_with(30)
    path = store.save(model, model.labels_learnt)
    assert path.name.startswith("model-") and path.name.endswith(f"-{model.labels_learnt}.pkl")
    meta = json.loads(path.with_suffix(".json").read_text())
    payload = path.read_bytes()
    assert meta["file"] == path.name
    assert meta["sha256"] == hashlib.sha256(payload).hexdigest()
    assert meta["hmac_sha256"] == hmac.new(KEY, payload, hashlib.sha256).hexdigest()
    assert meta["labels_learnt"] == model.labels_learnt
    restored = store.load_latest()
    assert isinstance(restored, OnlineFraudModel)
    assert restored.version == model.version
    probe = {"f0": 3.0, "f1": 1.0}
    assert restored.predict(probe) == model.predict(probe)
    assert not list((tmp_path / "snaps").glob("*.tmp"))


def test_load_latest_picks_the_newest(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, KEY)
    for labels in (1, 2, 3):
        store.save({"labels": labels}, labels)
    assert store.load_latest() == {"labels": 3}
    assert [p.name.rsplit("-", 1)[1] for p in store.snapshots()] == ["3.pkl", "2.pkl", "1.pkl"]


def test_corrupted_snapshot_is_refused_and_the_previous_one_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SnapshotStore(tmp_path, KEY)
    store.save({"generation": 1}, 10)
    newest = store.save({"generation": 2}, 20)
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x01  # flip one bit
    newest.write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match="checksum mismatch"):
        store.load(newest)
    with caplog.at_level(logging.WARNING, logger="pipeline.detection.snapshots"):
        assert store.load_latest() == {"generation": 1}
    assert any("checksum mismatch" in record.getMessage() for record in caplog.records)


def test_snapshot_signed_with_another_key_is_refused(tmp_path: Path) -> None:
    SnapshotStore(tmp_path, KEY).save({"generation": 1}, 10)
    foreign = SnapshotStore(tmp_path, b"someone-else").save({"generation": 2}, 20)
    store = SnapshotStore(tmp_path, KEY)
    with pytest.raises(SnapshotError, match="signature mismatch"):
        store.load(foreign)
    assert store.load_latest() == {"generation": 1}


def test_tampered_payload_with_recomputed_checksum_and_foreign_signature_is_refused(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, KEY)
    store.save({"generation": 1}, 10)
    newest = store.save({"generation": 2}, 20)
    evil = pickle.dumps({"generation": "evil"})
    newest.write_bytes(evil)
    meta_path = newest.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = hashlib.sha256(evil).hexdigest()
    meta["hmac_sha256"] = hmac.new(b"guessed-key", evil, hashlib.sha256).hexdigest()
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SnapshotError, match="signature mismatch"):
        store.load(newest)
    assert store.load_latest() == {"generation": 1}


def test_missing_sidecar_or_signature_is_refused(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, KEY)
    store.save("first", 1)
    second = store.save("second", 2)
    third = store.save("third", 3)
    third.with_suffix(".json").unlink()
    meta_path = second.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    del meta["hmac_sha256"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SnapshotError, match="unreadable"):
        store.load(third)
    with pytest.raises(SnapshotError, match="signature mismatch"):
        store.load(second)
    assert store.load_latest() == "first"


def test_all_snapshots_bad_gives_none(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, KEY)
    only = store.save("x", 1)
    only.write_bytes(b"garbage")
    assert store.load_latest() is None


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, KEY, keep=3)
    for labels in range(1, 7):
        store.save({"labels": labels}, labels)
    kept = pkl_files(tmp_path)
    assert len(kept) == 3
    assert sorted(p.name.rsplit("-", 1)[1] for p in kept) == ["4.pkl", "5.pkl", "6.pkl"]
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == sorted(p.stem for p in kept)
    assert store.load_latest() == {"labels": 6}
