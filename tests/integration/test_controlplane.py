"""The local control plane behaves like a real cluster where the operator depends on it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from certctl_operator.dev.controlplane import ControlPlane, ControlPlaneError, apply_crd_manifests
from certctl_operator.dev.processes import find_owned_processes, pid_alive

GROUP = "tests.certctl.io"
VERSION = "v1"
PLURAL = "widgets"
MERGE_PATCH = "application/merge-patch+json"

Kubectl = Callable[..., subprocess.CompletedProcess[str]]

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": PLURAL, "singular": "widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "colour": {"type": "string", "enum": ["red", "blue"]},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "phase": {"type": "string"},
                                    "observedGeneration": {"type": "integer"},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def widgets(control_plane: ControlPlane, kube: Any) -> client.CustomObjectsApi:
    assert apply_crd_manifests(control_plane.kubeconfig, [WIDGET_CRD]) == [f"{PLURAL}.{GROUP}"]
    return client.CustomObjectsApi(kube)


def _widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def test_namespace_fixture_gives_a_fresh_namespace(kube: Any, namespace: str) -> None:
    found = client.CoreV1Api(kube).read_namespace(namespace)
    assert found.metadata is not None
    assert found.metadata.name == namespace


def test_api_server_reports_the_built_release(kube: Any, control_plane: ControlPlane) -> None:
    info = client.VersionApi(kube).get_code()
    assert control_plane.binaries is not None
    assert info.git_version == control_plane.binaries.kubernetes_version


def _as_dict(obj: object) -> dict[str, Any]:
    assert isinstance(obj, dict)
    return obj


def test_status_subresource(widgets: client.CustomObjectsApi, namespace: str) -> None:
    args = (GROUP, VERSION, namespace, PLURAL)
    created = _as_dict(
        widgets.create_namespaced_custom_object(
            *args, {**_widget("w1", size=3), "status": {"phase": "Ignored"}}
        )
    )
    assert "status" not in created, "status is not writable through the main resource on create"
    assert created["metadata"]["generation"] == 1

    widgets.patch_namespaced_custom_object_status(
        *args, "w1", {"status": {"phase": "Ready", "observedGeneration": 1}}, _content_type=MERGE_PATCH
    )
    stored = _as_dict(widgets.get_namespaced_custom_object(*args, "w1"))
    assert stored["status"] == {"phase": "Ready", "observedGeneration": 1}
    assert stored["metadata"]["generation"] == 1, "a status write does not bump the generation"

    # Through the main resource, spec changes and status does not.
    widgets.patch_namespaced_custom_object(
        *args, "w1", {"spec": {"size": 5}, "status": {"phase": "Overwritten"}}, _content_type=MERGE_PATCH
    )
    stored = _as_dict(widgets.get_namespaced_custom_object(*args, "w1"))
    assert stored["spec"] == {"size": 5}
    assert stored["status"] == {"phase": "Ready", "observedGeneration": 1}
    assert stored["metadata"]["generation"] == 2

    # Through /status, status changes and spec does not.
    widgets.patch_namespaced_custom_object_status(
        *args, "w1", {"spec": {"size": 9}, "status": {"observedGeneration": 2}}, _content_type=MERGE_PATCH
    )
    stored = _as_dict(widgets.get_namespaced_custom_object(*args, "w1"))
    assert stored["spec"] == {"size": 5}
    assert stored["status"] == {"phase": "Ready", "observedGeneration": 2}


def test_schema_rejects_invalid_objects_with_422(
    widgets: client.CustomObjectsApi, kubectl: Kubectl, namespace: str
) -> None:
    with pytest.raises(client.ApiException) as rejected:
        widgets.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _widget("big", size=50))
    assert rejected.value.status == 422
    body = json.loads(rejected.value.body or "{}")
    assert body["reason"] == "Invalid"
    assert "spec.size" in body["message"]
    assert "less than or equal to 10" in body["message"]
    assert [cause["field"] for cause in body["details"]["causes"]] == ["spec.size"]

    # kubectl shows the same readable message.
    manifest = yaml.safe_dump(_widget("red-ish", size=2, colour="green"))
    result = kubectl("apply", "-n", namespace, "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert 'spec.colour: Unsupported value: "green"' in result.stderr

    assert kubectl("get", PLURAL, "-n", namespace, "-o", "name").stdout == ""


def test_service_account_token_carries_rbac_identity(
    control_plane: ControlPlane, kubectl: Kubectl, namespace: str
) -> None:
    sa_kubeconfig = control_plane.service_account_kubeconfig(namespace, "robot")
    whoami = kubectl(
        "--kubeconfig", str(sa_kubeconfig), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"
    )
    assert whoami.stdout == f"system:serviceaccount:{namespace}:robot"
    denied = kubectl("--kubeconfig", str(sa_kubeconfig), "get", "secrets", check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr


def test_stop_leaves_no_processes(tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path / "second", start_timeout=120)
    with plane:
        pids = plane.pids
        assert set(pids) == {"etcd", "kube-apiserver"}
        assert all(pid_alive(pid) for pid in pids.values())
        running_while_started = plane.running
        assert plane.kubeconfig.is_file()
    assert running_while_started
    assert not plane.running
    assert not [name for name, pid in pids.items() if pid_alive(pid)]
    assert plane.binaries is not None
    executables = [plane.binaries.kube_apiserver, plane.binaries.etcd]
    # The session's control plane may be running too; none of this one's may.
    assert set(find_owned_processes(executables=executables)).isdisjoint(pids.values())
    assert plane.apiserver_log.is_file(), "logs are kept in a caller-given workdir"
    assert not (plane.workdir / "etcd-data").exists()
    plane.stop()  # idempotent


def test_start_failure_names_the_process_and_shows_its_log(tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path / "broken", apiserver_args=["--no-such-flag=1"])
    with pytest.raises(ControlPlaneError, match="kube-apiserver exited with status") as failure:
        plane.start()
    assert "unknown flag: --no-such-flag" in str(failure.value)
    assert set(plane.pids) == {"etcd", "kube-apiserver"}
    assert not [pid for pid in plane.pids.values() if pid_alive(pid)], "a failed start stops what it started"
