"""Model snapshots on disk: versioned, checksummed, signed, written atomically.

A snapshot is ``<dir>/model-<UTC time>-<labels>.pkl`` with a JSON sidecar holding its SHA-256
and an HMAC-SHA256 signature. Loading verifies both and skips (with a warning) any snapshot
that fails, falling back to the previous one, so a corrupt or tampered file is never loaded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class SnapshotError(RuntimeError):
    """A snapshot failed its checksum or signature, or could not be read."""


class SnapshotStore:
    """Saves and restores pickled models in one folder."""

    def __init__(self, directory: Path, key: bytes, keep: int = 10) -> None:
        self.directory = directory
        self._key = key
        self.keep = keep

    def save(self, model: Any, labels_learnt: int) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.directory / f"model-{stamp}-{labels_learnt}.pkl"
        meta = {
            "file": path.name,
            "sha256": hashlib.sha256(payload).hexdigest(),
            "hmac_sha256": hmac.new(self._key, payload, hashlib.sha256).hexdigest(),
            "labels_learnt": labels_learnt,
            "saved_at": datetime.now(UTC).isoformat(),
        }
        _atomic_write(path, payload)
        _atomic_write(path.with_suffix(".json"), json.dumps(meta, indent=2).encode())
        self._prune()
        return path

    def snapshots(self) -> list[Path]:
        """Snapshot files, newest first."""
        return sorted(self.directory.glob("model-*.pkl"), reverse=True)

    def load(self, path: Path) -> Any:
        try:
            payload = path.read_bytes()
            meta = json.loads(path.with_suffix(".json").read_text())
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"{path.name}: unreadable ({exc})") from None
        if hashlib.sha256(payload).hexdigest() != meta.get("sha256"):
            raise SnapshotError(f"{path.name}: checksum mismatch (corrupt file)")
        signature = hmac.new(self._key, payload, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, str(meta.get("hmac_sha256"))):
            raise SnapshotError(f"{path.name}: signature mismatch (tampered, or signed with another key)")
        try:
            return pickle.loads(payload)
        except Exception as exc:  # signed by us but not loadable here (e.g. saved by other code)
            raise SnapshotError(f"{path.name}: cannot be loaded ({type(exc).__name__}: {exc})") from None

    def describe(self) -> list[dict[str, Any]]:
        """Every snapshot, newest first, with its metadata and whether it verifies."""
        rows = []
        for path in self.snapshots():
            try:
                meta = json.loads(path.with_suffix(".json").read_text())
            except (OSError, ValueError):
                meta = {}
            try:
                self.load(path)
                status = "ok"
            except SnapshotError as exc:
                status = str(exc)
            rows.append(
                {
                    "name": path.name,
                    "labels_learnt": meta.get("labels_learnt"),
                    "saved_at": meta.get("saved_at"),
                    "status": status,
                }
            )
        return rows

    def rollback(self, name: str) -> Path:
        """Make snapshot ``name`` the newest again (saved anew, so history is kept)."""
        path = self.directory / name
        if not path.exists():
            raise SnapshotError(f"{name}: no such snapshot in {self.directory}")
        model = self.load(path)
        return self.save(model, getattr(model, "labels_learnt", 0))

    def load_latest(self) -> Any | None:
        """The newest snapshot that verifies, or None when there is none."""
        for path in self.snapshots():
            try:
                model = self.load(path)
            except SnapshotError as exc:
                log.warning("skipping model snapshot: %s; trying the previous one", exc)
                continue
            log.info("restored model snapshot %s", path.name)
            return model
        return None

    def _prune(self) -> None:
        for old in self.snapshots()[self.keep :]:
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
