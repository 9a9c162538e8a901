"""The demo's rule file: a copy in the data dir, so enabling a rule in the monitor never edits the
repository's file, and a copy that stays (with the rules enabled) for the next demo."""

from __future__ import annotations

from pipeline.config import REPO_ROOT, load_settings
from pipeline.tools.demo import demo_rules_file


def test_the_demo_rules_are_a_copy_in_the_data_dir_kept_between_demos(tmp_path) -> None:
    settings = load_settings(data_dir=tmp_path / "var")
    copy = demo_rules_file(settings)
    shipped = REPO_ROOT / "pipeline" / "detection" / "rules.yaml"
    assert copy == tmp_path / "var" / "demo-rules.yaml" and copy.read_text() == shipped.read_text()
    copy.write_text(copy.read_text() + "# an enabled rule\n")
    assert demo_rules_file(settings).read_text().endswith("# an enabled rule\n"), "kept for the next demo"


def test_a_rule_file_chosen_in_the_settings_is_used_as_it_is() -> None:
    assert "rules_file" not in load_settings().model_fields_set, "the demo makes its copy"
    assert "rules_file" in load_settings(rules_file=REPO_ROOT / "x.yaml").model_fields_set, (
        "the demo keeps it"
    )
