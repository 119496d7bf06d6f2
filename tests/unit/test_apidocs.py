"""docs/api-reference.md is exactly what the API models generate, and it documents every field."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certctl_operator import apidocs, crdgen
from certctl_operator.api import RESOURCES

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "api-reference.md"


def test_committed_reference_matches_the_models() -> None:
    diff = apidocs.drift(REFERENCE)
    assert not diff, "docs/api-reference.md is stale; run python -m certctl_operator.apidocs\n" + diff


def test_generation_is_deterministic() -> None:
    assert apidocs.render() == apidocs.render()


def test_check_mode_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "api.md"
    assert apidocs.main(["--output", str(target), "--check"]) == 1
    assert apidocs.main(["--output", str(target)]) == 0
    assert apidocs.main(["--output", str(target), "--check"]) == 0
    capsys.readouterr()

    target.write_text(target.read_text().replace('Default `"90d"`', 'Default `"30d"`'))
    assert apidocs.main(["--output", str(target), "--check"]) == 1
    out = capsys.readouterr().out
    assert "-| `duration` | string | Requested lifetime" in out and 'Default `"30d"`' in out
    assert apidocs.write(target) is True
    assert apidocs.write(target) is False


def _fields(node: dict[str, Any], path: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, child in node.get("properties", {}).items():
        yield path, name, child
        yield from _fields(child, f"{path}.{name}")
        if isinstance(child.get("items"), dict):
            yield from _fields(child["items"], f"{path}.{name}[]")


def _rows(text: str) -> dict[str, list[str]]:
    """Field name -> every table row documenting a field of that name."""
    rows: dict[str, list[str]] = {}
    for match in re.finditer(r"^\| `([^`]+)` \| (.*)$", text, flags=re.MULTILINE):
        rows.setdefault(match.group(1), []).append(match.group(2))
    return rows


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda resource: resource.KIND)
def test_every_field_is_documented_with_its_description(resource: Any) -> None:
    text = apidocs.render()
    rows = _rows(text)
    schema = crdgen.crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert f'<a id="{resource.KIND.lower()}"></a>' in text
    for part in ("spec", "status"):
        for path, name, node in _fields(schema["properties"][part], f".{part}"):
            assert name in rows, f"{resource.KIND} {path}.{name} is not in the reference"
            description = apidocs._escape(node.get("description", ""))
            assert any(description in row for row in rows[name]), f"{path}.{name}: description missing"
            for rule in node.get("x-kubernetes-validations", []):
                assert apidocs._escape(rule["message"].rstrip(".")) in text, f"{path}.{name}: rule missing"


def test_defaults_limits_enums_and_rules_are_shown() -> None:
    rows = _rows(apidocs.render())
    (duration,) = [row for row in rows["duration"] if "Requested lifetime" in row]
    assert 'Default `"90d"`' in duration and "2 to 32 characters" in duration
    assert "(ms\\|s\\|m\\|h\\|d)" in duration, "a | in a pattern must not split the table cell"
    (algorithm,) = rows["algorithm"]
    assert "One of `RSA`, `ECDSA`, `Ed25519`." in algorithm
    (percentage,) = rows["renewBeforePercentage"]
    assert "From 1 to 99." in percentage
    (secret_name,) = [row for row in rows["secretName"] if "receives the certificate" in row]
    assert secret_name.startswith("string | **Required.**")
    text = apidocs.render()
    assert "- renewBefore and renewBeforePercentage are mutually exclusive: set at most one." in text
    assert apidocs._escape("sha256=<hex> | x\ny") == "sha256=&lt;hex&gt; \\| x y"
    for row in re.findall(r"^\|.*$", text, flags=re.MULTILINE):
        prose = re.sub(r"`[^`]*`", "", row)
        assert "<" not in prose, f"raw HTML in a table row would be swallowed: {row}"


def test_links_resolve_and_shared_shapes_are_written_once() -> None:
    text = apidocs.render()
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', text))
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links <= anchors, f"dangling links: {sorted(links - anchors)}"
    assert text.count("### Issuer `.status.conditions[]`") == 1
    assert "conditions" not in re.findall(r"### ManagedCertificate `\.status\.(\w+)", text)
    assert "`.spec` has the same fields as [Issuer .spec](#issuer-spec)." in text
