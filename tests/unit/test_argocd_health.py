"""The Argo CD health check runs in Lua 5.1 (Argo CD's dialect) and reads the Ready condition right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lua51
import pytest
import yaml

from certctl_operator import API_GROUP
from certctl_operator.api import RESOURCES
from certctl_operator.dev import render_manifests

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / render_manifests.HEALTH_LUA
SNIPPET = ROOT / render_manifests.HEALTH_SNIPPET


def to_lua(runtime: Any, value: Any) -> Any:
    """Python data as Lua tables, the way Argo CD hands an object to a health script."""
    if isinstance(value, dict):
        return runtime.table_from({key: to_lua(runtime, item) for key, item in value.items()})
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, item) for item in value])
    return value


def health(obj: dict[str, Any], script: str | None = None) -> dict[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = to_lua(runtime, obj)
    result = runtime.execute(script if script is not None else SOURCE.read_text())
    return dict(result)


def ready(status: str, reason: str = "Reason", message: str = "", generation: int = 1, **extra: Any) -> Any:
    return {
        "observedGeneration": generation,
        "conditions": [
            {"type": "Other", "status": "False", "reason": "Irrelevant"},
            {
                "type": "Ready",
                "status": status,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
            },
        ],
        **extra,
    }


def obj(kind: str, status: Any = None, generation: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{API_GROUP}/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ns", "generation": generation},
        "spec": {},
    }
    if status is not None:
        body["status"] = status
    return body


@pytest.mark.parametrize("kind", sorted(resource.KIND for resource in RESOURCES))
def test_ready_true_is_healthy_for_every_kind(kind: str) -> None:
    result = health(obj(kind, ready("True", "Issued", "certificate is up to date")))
    assert result == {"status": "Healthy", "message": "Issued: certificate is up to date"}


def test_ready_false_is_degraded() -> None:
    status = ready("False", "IssuerNotReady", "issuer demo-ca is not Ready")
    result = health(obj("ManagedCertificate", status))
    assert result == {"status": "Degraded", "message": "IssuerNotReady: issuer demo-ca is not Ready"}


def test_ready_unknown_is_progressing() -> None:
    assert health(obj("Issuer", ready("Unknown", "Pending")))["status"] == "Progressing"


def test_no_status_yet_is_progressing() -> None:
    assert health(obj("NotificationChannel"))["status"] == "Progressing"
    assert health(obj("NotificationChannel", {"observedGeneration": 1}))["status"] == "Progressing"
    no_ready = {"conditions": [{"type": "Other", "status": "True", "reason": "X"}]}
    assert health(obj("NotificationChannel", no_ready))["status"] == "Progressing"


def test_a_generation_the_operator_has_not_seen_is_progressing() -> None:
    stale = obj("ManagedCertificate", ready("True", "Issued", generation=1), generation=2)
    assert health(stale)["status"] == "Progressing"
    condition_stale = obj("ManagedCertificate", ready("True", "Issued", generation=1), generation=2)
    condition_stale["status"]["observedGeneration"] = 2
    assert health(condition_stale)["status"] == "Progressing"


@pytest.mark.parametrize(
    ("kind", "phase", "expected"),
    [
        ("NotificationEvent", "Pending", "Progressing"),
        ("NotificationEvent", "Failed", "Progressing"),  # retrying on its schedule
        ("NotificationEvent", "Dead", "Degraded"),
        ("Revocation", "Pending", "Progressing"),
        ("Revocation", "Failed", "Degraded"),
        ("ManagedCertificate", "Pending", "Degraded"),  # phases mean nothing for other kinds
    ],
)
def test_phases_that_mean_not_yet(kind: str, phase: str, expected: str) -> None:
    assert health(obj(kind, ready("False", "Waiting", phase=phase)))["status"] == expected


def test_the_snippet_carries_the_script_once_per_kind() -> None:
    snippet = yaml.safe_load(SNIPPET.read_text())
    script = render_manifests.health_script(SOURCE.read_text())
    expected = {f"resource.customizations.health.{API_GROUP}_{r.KIND}" for r in RESOURCES}
    assert set(snippet["data"]) == expected
    assert all(value == script for value in snippet["data"].values())
    assert SNIPPET.read_text() == render_manifests.health_snippet(SOURCE.read_text()), (
        "manifests/argocd/argocd-cm-health.yaml is stale; run python -m certctl_operator.dev.render_manifests"
    )
    # The script as shipped (without its comment header) behaves like the source.
    assert health(obj("Issuer", ready("True")), script)["status"] == "Healthy"


@pytest.mark.parametrize("name", ["application.yaml", "application-helm.yaml"])
def test_example_applications_point_at_this_repository(name: str) -> None:
    app = yaml.safe_load((ROOT / "manifests" / "argocd" / name).read_text())
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
    source = app["spec"]["source"]
    assert (ROOT / source["path"]).is_dir(), source["path"]
    assert (ROOT / source["path"] / ("Chart.yaml" if "helm" in source else "kustomization.yaml")).is_file()
    assert app["spec"]["destination"]["namespace"] == render_manifests.NAMESPACE
    if "helm" in source:
        assert source["helm"]["releaseName"] == render_manifests.RELEASE
