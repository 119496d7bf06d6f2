"""Objects, status writes and waits for the kubectl plugin's integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from kubernetes import client

GROUP, VERSION = "certctl.io", "v1alpha1"
T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def mcert_not_found(namespace: str, name: str) -> str:
    """The plugin's whole error output for a ManagedCertificate that does not exist."""
    hint = f"kubectl get mcert -n {namespace}"
    return f"error: ManagedCertificate {namespace}/{name} not found; list them with {hint}"


def stamp(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": stamp(-timedelta(minutes=5)),
    }


def custom(kube: Any) -> Any:
    return client.CustomObjectsApi(kube)


def create(kube: Any, namespace: str | None, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": f"{GROUP}/{VERSION}", **body}
    if namespace is None:
        return dict(custom(kube).create_cluster_custom_object(GROUP, VERSION, plural, body))
    return dict(custom(kube).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body))


def write_status(kube: Any, namespace: str | None, plural: str, name: str, status: dict[str, Any]) -> None:
    """Write ``status`` through the status subresource, as the operator would."""
    patch = {"status": status}
    if namespace is None:
        custom(kube).patch_cluster_custom_object_status(GROUP, VERSION, plural, name, patch)
    else:
        custom(kube).patch_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name, patch)


def get(kube: Any, namespace: str, plural: str, name: str) -> dict[str, Any]:
    return dict(custom(kube).get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name))


def annotations(kube: Any, namespace: str, plural: str, name: str) -> dict[str, str]:
    return dict(get(kube, namespace, plural, name)["metadata"].get("annotations") or {})


def certificate(name: str, *, labels: dict[str, str] | None = None, issuer: str = "ca") -> dict[str, Any]:
    return {
        "kind": "ManagedCertificate",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "secretName": f"{name}-tls",
            "dnsNames": [f"{name}.example.test"],
            "issuerRef": {"name": issuer},
        },
    }


def event(name: str, *, dead: bool = False) -> dict[str, Any]:
    return {
        "kind": "NotificationEvent",
        "metadata": {"name": name, "labels": {"certctl.io/phase": "dead"} if dead else {}},
        "spec": {"type": "Test", "channelRef": {"name": "ops"}, "subject": f"test {name}"},
    }


def issuer(name: str, *, kind: str = "Issuer", self_signed: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"selfSigned": {}} if self_signed else {"ca": {"secretName": f"{name}-keypair"}}
    return {"kind": kind, "metadata": {"name": name}, "spec": spec}


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)  # polling interval of a deadline-bounded wait
