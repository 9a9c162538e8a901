"""README's relative links (screenshots of the monitor included) point at files in the repository."""

from __future__ import annotations

import re

from pipeline.config import REPO_ROOT

_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def test_readme_links_resolve() -> None:
    text = (REPO_ROOT / "README.md").read_text("utf-8")
    local = [link for link in _LINK.findall(text) if "://" not in link and not link.startswith("mailto:")]
    assert any(link.startswith("docs/screenshots/") for link in local), "the README shows the monitor"
    missing = [link for link in local if not (REPO_ROOT / link).is_file()]
    assert not missing, f"README links to missing files: {missing}"
