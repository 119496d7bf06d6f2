"""The committed CRDs are exactly what the API models generate, and they are structural."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

from certctl_operator import crdgen
from certctl_operator.api import RESOURCES, ManagedCertificate, Revocation

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"


def test_committed_crds_match_the_models() -> None:
    diffs = crdgen.drift(CRD_DIR)
    assert not diffs, "crds/ is stale; run python -m certctl_operator.crdgen\n" + "".join(diffs)


def test_generation_is_deterministic() -> None:
    assert crdgen.render_all() == crdgen.render_all()


def test_check_mode_reports_drift_and_stale_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert crdgen.main(["--output-dir", str(tmp_path), "--check"]) == 1
    assert crdgen.main(["--output-dir", str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(crdgen.render_all())
    assert crdgen.main(["--output-dir", str(tmp_path), "--check"]) == 0
    capsys.readouterr()

    target = tmp_path / "revocations.certctl.io.yaml"
    target.write_text(target.read_text().replace("maxLength: 1024", "maxLength: 10"))
    (tmp_path / "certificates.certctl.io.yaml").write_text("# left over\n")
    assert crdgen.main(["--output-dir", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "-                maxLength: 10\n" in out and "+                maxLength: 1024\n" in out
    assert "certificates.certctl.io.yaml: no model generates this file" in out
    assert crdgen.write(tmp_path) == [target]


def crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(text) for text in crdgen.render_all().values()]


def version(crd: dict[str, Any]) -> dict[str, Any]:
    (only,) = crd["spec"]["versions"]
    assert isinstance(only, dict)
    return only


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("crd", crds(), ids=lambda crd: crd["metadata"]["name"])
def test_schema_is_structural_and_documented(crd: dict[str, Any]) -> None:
    schema = version(crd)["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        assert "type" in node, f"{path} has no type"
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "nullable"} & node.keys(), path
        assert node.get("additionalProperties") is not False, path
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
        if node["type"] == "object" and path.startswith((".spec", ".status")):
            assert "description" in node, f"{path} has no description"
        for name, child in node.get("properties", {}).items():
            if path or name not in {"metadata"}:
                assert child.get("description"), f"{path}.{name} has no description for kubectl explain"
        if node["type"] == "string" and path.startswith(".spec") and "enum" not in node:
            assert "maxLength" in node, f"{path} needs maxLength to bound CEL cost"
        if node["type"] == "array":
            assert "maxItems" in node, f"{path} needs maxItems to bound CEL cost"
    assert schema["required"] == ["spec"]
    status = schema["properties"]["status"]
    assert {"observedGeneration", "conditions"} <= status["properties"].keys()
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]


@pytest.mark.parametrize("crd", crds(), ids=lambda crd: crd["metadata"]["name"])
def test_names_scope_and_subresources(crd: dict[str, Any]) -> None:
    names = crd["spec"]["names"]
    assert crd["spec"]["group"] == "certctl.io"
    assert crd["metadata"]["name"] == f"{names['plural']}.certctl.io"
    assert names["categories"] == ["certctl"]
    assert names["shortNames"]
    # cert-manager owns issuer/clusterissuer/cert/certs; ours must not collide.
    assert not {"issuer", "issuers", "clusterissuer", "cert", "certs", "cr", "crs"} & set(names["shortNames"])
    assert version(crd)["name"] == "v1alpha1"
    assert version(crd)["subresources"] == {"status": {}}
    columns = [column["name"] for column in version(crd)["additionalPrinterColumns"]]
    assert columns[-1] == "Age"


def test_short_names_are_unique() -> None:
    short_names = [name for resource in RESOURCES for name in resource.SHORT_NAMES]
    assert len(short_names) == len(set(short_names))


def test_printer_columns() -> None:
    by_kind = {crd["spec"]["names"]["kind"]: crd for crd in crds()}

    def columns(kind: str) -> list[str]:
        return [
            column["name"]
            for column in version(by_kind[kind])["additionalPrinterColumns"]
            if not column.get("priority")
        ]

    assert columns("ManagedCertificate") == ["Ready", "Secret", "Issuer", "Expires", "Age"]
    assert columns("NotificationEvent") == [
        "Type",
        "Channel",
        "Phase",
        "Retries",
        "Next Retry",
        "Last Error",
        "Age",
    ]
    assert columns("Revocation") == ["Certificate", "Reason", "Phase", "Revoked At", "Age"]
    assert columns("Issuer") == columns("ClusterIssuer") == ["Ready", "Type", "Age"]
    assert columns("NotificationChannel") == ["Type", "Ready", "Age"]
    assert by_kind["ClusterIssuer"]["spec"]["scope"] == "Cluster"
    assert by_kind["Issuer"]["spec"]["scope"] == "Namespaced"


def test_cel_rules_are_in_the_schema() -> None:
    spec = crdgen.model_schema(ManagedCertificate.model_fields["spec"].annotation, "spec")  # type: ignore[arg-type]
    rules = [rule["rule"] for rule in spec["x-kubernetes-validations"]]
    assert any("renewBeforePercentage" in rule for rule in rules)
    assert any("self.renewBefore.findAll(" in rule for rule in rules)
    key_rules = spec["properties"]["privateKey"]["x-kubernetes-validations"]
    assert [rule["fieldPath"] for rule in key_rules] == [".size", ".size", ".size", ".encoding"]

    revocation = crdgen.model_schema(Revocation.model_fields["spec"].annotation, "spec")  # type: ignore[arg-type]
    assert revocation["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    reason = revocation["properties"]["reason"]
    assert "enum" not in reason, "an enum failure would stop the API server before the CEL rules that say why"
    messages = " ".join(rule["message"] for rule in reason["x-kubernetes-validations"])
    assert "removeFromCRL is not accepted" in messages and "aACompromise is not accepted" in messages


def test_defaults_are_in_the_schema() -> None:
    spec = crdgen.model_schema(ManagedCertificate.model_fields["spec"].annotation, "spec")  # type: ignore[arg-type]
    props = spec["properties"]
    assert props["duration"]["default"] == "90d"
    assert props["privateKey"]["properties"]["rotationPolicy"]["default"] == "Always"
    assert props["notifications"]["properties"]["expiryThresholds"]["default"] == ["30d", "14d", "7d", "0d"]
    assert props["deleteSecretOnDeletion"]["default"] is False
    assert "default" not in props["renewBefore"]
    assert "default" not in props["privateKey"]["properties"]["encoding"]


class _Union(BaseModel):
    value: int | str = Field(description="either")


class _Tuple(BaseModel):
    value: tuple[int, str] = Field(description="pair")


@pytest.mark.parametrize("model", [_Union, _Tuple])
def test_constructs_a_crd_cannot_carry_are_refused(model: type[BaseModel]) -> None:
    with pytest.raises(crdgen.SchemaError):
        crdgen.model_schema(model, "spec")


def _string_nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "string":
            yield path, node
        for key, value in node.get("properties", {}).items():
            yield from _string_nodes(value, f"{path}.{key}")
        if "items" in node:
            yield from _string_nodes(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from _string_nodes(node["additionalProperties"], f"{path}{{}}")


def test_every_duration_field_is_bounded_at_admission() -> None:
    from certctl_operator.durations import DURATION_PATTERN, MAX_DURATION_SECONDS

    bounded = []
    for resource in RESOURCES:
        schema = crdgen.crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in _string_nodes(schema):
            if node.get("pattern") != DURATION_PATTERN:
                continue
            rules = [rule["rule"] for rule in node.get("x-kubernetes-validations", [])]
            assert any(rule.endswith(f"<= {MAX_DURATION_SECONDS!r}") for rule in rules), (
                f"{resource.KIND}{path} has no upper bound"
            )
            assert node["maxLength"] == 32, f"{resource.KIND}{path}"
            bounded.append(f"{resource.KIND}{path}")
    # Every duration of every kind, spec and status (the list would shrink if one lost its pattern).
    assert len(bounded) >= 15, bounded


def test_private_key_encoding_has_no_schema_default() -> None:
    schema = crdgen.crd(ManagedCertificate)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    key = schema["properties"]["spec"]["properties"]["privateKey"]
    assert "default" not in key["properties"]["encoding"]
    assert any(
        "Ed25519" in rule["rule"] and "encoding" in rule["rule"] for rule in key["x-kubernetes-validations"]
    )
