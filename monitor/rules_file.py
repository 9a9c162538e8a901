"""The rule file's edge in the monitor: the rules in force, and enabling a checked draft.

The worker reloads its rule file when it changes (``pipeline.worker.upkeep.RuleReloader``, every
``FRAUD_RULES_RELOAD_SECONDS``), so the monitor enables a rule by writing that file
(``FRAUD_RULES_FILE``; the monitor and the workers must see the same file): the new text comes
from ``monitor.rule_drafts.with_rule`` (checked, the rules in force plus the draft) and replaces
the file at once (a temporary file beside it, then ``os.replace``), so a worker never reads half a
file.
"""

from __future__ import annotations

import os
import tempfile
import threading
from datetime import datetime
from pathlib import Path

from monitor.rule_drafts import Draft, with_rule
from pipeline.detection.features import FEATURE_NAMES
from pipeline.detection.rules import RuleError, RuleSet, load_rules, read_rule_file


class RuleNotAuditedError(RuleError):
    """The rule was enabled (it is in the file, in force) but its audit event was not published."""


class RulesFile:
    """The rule file the workers read."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def in_force(self) -> RuleSet:
        """The rules the file holds now; raises RuleError when it does not load."""
        return load_rules(self.path, FEATURE_NAMES)

    def enable(self, draft: Draft, *, who: str, at: datetime) -> None:
        """Add ``draft`` to the file; raises RuleError (nothing written) when it cannot be added."""
        with self._lock:
            text = read_rule_file(self.path)
            new_text = with_rule(text, draft, who=who, at=at)
            handle, temporary = tempfile.mkstemp(prefix=".rules-", suffix=".yaml", dir=self.path.parent)
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    out.write(new_text)
                os.chmod(temporary, self.path.stat().st_mode & 0o777)
                os.replace(temporary, self.path)
            except OSError as exc:
                Path(temporary).unlink(missing_ok=True)
                raise RuleError(f"{self.path}: cannot write rule file ({exc.strerror})") from None
