from pathlib import Path

from certctl_operator.generated import file_drift


def test_no_drift_when_the_file_matches(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("kind: A\n", encoding="utf-8")
    assert file_drift(path, "kind: A\n") == ""


def test_drift_is_a_unified_diff_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("kind: A\n", encoding="utf-8")
    diff = file_drift(path, "kind: B\n", label="crds/a.yaml")
    assert diff.startswith("--- crds/a.yaml\n+++ crds/a.yaml (generated)\n")
    assert "-kind: A\n+kind: B\n" in diff


def test_a_missing_file_counts_as_empty(tmp_path: Path) -> None:
    diff = file_drift(tmp_path / "missing.yaml", "kind: A\n")
    assert "+kind: A\n" in diff
