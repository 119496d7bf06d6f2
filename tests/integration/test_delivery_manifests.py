"""``kubectl apply -k manifests/`` against a real API server installs what the chart installs.

Runs on a control plane of its own, with nothing applied before, like a
fresh cluster that Argo CD or Flux points at the folder.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from certctl_operator.dev import render_manifests
from certctl_operator.dev.controlplane import ControlPlane
from certctl_operator.dev.helm import Helm

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"

Identity = tuple[str, str, str]  # kind, namespace, name


def identity(obj: dict[str, Any]) -> Identity:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane(tmp_path_factory.mktemp("delivery-manifests")) as started:
        yield started


def kubectl(plane: ControlPlane, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [
        "kubectl",
        f"--kubeconfig={plane.kubeconfig}",
        f"--cache-dir={plane.workdir / 'kubectl-cache'}",
    ]
    result = subprocess.run(
        [*command, *args], input=input, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stderr}{result.stdout}"
    return result


def test_kustomize_base_equals_the_charts_default_rendering(plane: ControlPlane, helm: Helm) -> None:
    built = kubectl(plane, "kustomize", str(MANIFESTS)).stdout
    objects = {identity(obj): obj for obj in yaml.safe_load_all(built) if obj}
    rendered = render_manifests.render_chart(helm, ROOT / render_manifests.CHART)
    chart = {identity(obj): obj for obj in yaml.safe_load_all(rendered) if obj}
    namespace = ("Namespace", "", render_manifests.NAMESPACE)
    assert set(objects) == set(chart) | {namespace}
    for key, obj in chart.items():
        assert objects[key] == obj, f"{key} differs between manifests/ and the chart"
    labels = objects[namespace]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_apply_k_installs_everything_and_is_idempotent(plane: ControlPlane) -> None:
    applied = kubectl(plane, "apply", "-k", str(MANIFESTS))
    lines = applied.stdout.splitlines()
    expected = [obj for obj in yaml.safe_load_all(kubectl(plane, "kustomize", str(MANIFESTS)).stdout) if obj]
    # Namespace, 6 CRDs, ServiceAccount, 2 ClusterRoles + bindings, the leader-election
    # Role + binding, Deployment, Service.
    assert len(lines) == len(expected) == 16, applied.stdout
    assert all(line.endswith(" created") for line in lines), applied.stdout

    kubectl(
        plane,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=certctl",
    )
    found = kubectl(plane, "get", "-k", str(MANIFESTS), "-o", "name").stdout.split()
    assert len(found) == len(expected)
    deployment = kubectl(
        plane, "get", "deployment", "certctl-operator", "-n", "certctl-system", "-o", "yaml"
    ).stdout
    assert yaml.safe_load(deployment)["spec"]["template"]["spec"]["serviceAccountName"] == "certctl-operator"

    # A second apply changes nothing: GitOps tools see no perpetual diff.
    again = kubectl(plane, "apply", "-k", str(MANIFESTS)).stdout.splitlines()
    assert all(line.endswith(" unchanged") for line in again), again

    # Custom resources can be created right away, in any namespace.
    issuer = (
        "apiVersion: certctl.io/v1alpha1\nkind: ClusterIssuer\nmetadata:\n  name: from-manifests\n"
        "spec:\n  selfSigned: {}\n"
    )
    kubectl(plane, "apply", "-f", "-", input=issuer)
    kubectl(plane, "get", "clusterissuer.certctl.io", "from-manifests")
    # So can the Argo CD example's objects, annotations and all.
    example = MANIFESTS / "argocd" / "example-resources.yaml"
    dry_run = kubectl(plane, "apply", "--dry-run=server", "-f", str(example)).stdout.splitlines()
    assert len(dry_run) == 2, dry_run
