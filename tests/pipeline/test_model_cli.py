"""`fraud model list|export|rollback` on real snapshot files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.detection.model import OnlineFraudModel
from pipeline.detection.snapshots import SnapshotStore
from pipeline.tools.cli import main


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SnapshotStore:
    for key in [k for k in __import__("os").environ if k.startswith("FRAUD_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("FRAUD_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("FRAUD_APP_ID", "cli-test")
    monkeypatch.setenv("FRAUD_MODEL_SNAPSHOT_KEY", "k1")
    return SnapshotStore(tmp_path / "var" / "cli-test" / "models", b"k1")


def test_list_export_and_rollback(
    store: SnapshotStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old_model = OnlineFraudModel()
    old_model.labels_learnt = 10
    old = store.save(old_model, 10)
    new_model = OnlineFraudModel()
    new_model.labels_learnt = 20
    new = store.save(new_model, 20)
    corrupt = bytearray(new.read_bytes())
    corrupt[-3] ^= 0xFF
    new.write_bytes(bytes(corrupt))

    assert main(["model", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].startswith(new.name) and "checksum mismatch" in listing[0]
    assert listing[1].startswith(old.name) and listing[1].endswith("ok")

    assert main(["model", "export", old.name, "--to", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / old.name).read_bytes() == old.read_bytes()
    assert main(["model", "export", new.name, "--to", str(tmp_path / "out2")]) == 2, (
        "a corrupt file is refused"
    )

    assert main(["model", "rollback", old.name]) == 0
    assert store.load_latest().labels_learnt == 10
    assert store.snapshots()[0] not in (old, new), "rolled back as a new snapshot; history kept"
    assert main(["model", "rollback"]) == 2
