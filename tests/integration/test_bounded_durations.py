"""A ManagedCertificate with an out-of-bounds duration stored before the CRD refused it.

Admission refuses such a spec now (see test_api_admission.py and
test_api_fuzz.py), so the only way one reaches the operator is from etcd:
written under an older, looser schema. The test recreates that history on the
real API server: the CRD without the duration bound, the object, the strict
CRD again; then the operator must report Ready=False/InvalidSpec with the
reason instead of failing on the value, and keep handling other objects.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.support.pki_cluster import (
    GROUP,
    VERSION,
    certificate_body,
    condition,
    get,
    issuer_body,
    make_ca_secret,
    wait_for,
    wait_issued,
)

from certctl_operator.api import ManagedCertificate
from certctl_operator.crdgen import crd
from certctl_operator.dev.controlplane import ControlPlane, apply_crd_manifests

CERTS = "managedcertificates"
HUGE = "9999999999999999999999999999d"


def create_certificate(kube: Any, namespace: str, body: dict[str, Any], *, dry_run: bool = False) -> Any:
    full = {"apiVersion": f"{GROUP}/{VERSION}", **body}
    options = {"dry_run": "All"} if dry_run else {}
    return client.CustomObjectsApi(kube).create_namespaced_custom_object(
        GROUP, VERSION, namespace, CERTS, full, **options
    )


def refused(kube: Any, namespace: str, body: dict[str, Any]) -> bool:
    try:
        create_certificate(kube, namespace, body, dry_run=True)
    except ApiException as error:
        if error.status == 422:
            return True
        raise
    return False


@contextmanager
def loose_crd(control_plane: ControlPlane, kube: Any, namespace: str) -> Iterator[None]:
    """The ManagedCertificate CRD without the duration bound, as an older release shipped it."""
    strict = crd(ManagedCertificate)
    loose = copy.deepcopy(strict)
    spec = loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["duration"].pop("x-kubernetes-validations", None)
    probe = certificate_body("probe", "ca", duration=HUGE)
    apply_crd_manifests(control_plane.kubeconfig, [loose])
    try:
        wait_for("the API server to serve the loose schema", lambda: not refused(kube, namespace, probe), 60)
        yield
    finally:
        # Every later test sees the strict schema again.
        apply_crd_manifests(control_plane.kubeconfig, [strict])
        wait_for("the API server to serve the strict schema", lambda: refused(kube, namespace, probe), 60)


def test_stored_duration_beyond_the_bound_ends_invalid_spec(
    control_plane: ControlPlane, kube: Any, namespace: str, operator_factory: Any
) -> None:
    make_ca_secret(kube, namespace, "ca-keypair", "Bounds CA")
    issuer = {"apiVersion": f"{GROUP}/{VERSION}", **issuer_body("ca", ca_secret="ca-keypair", base_url=None)}
    client.CustomObjectsApi(kube).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "issuers", issuer
    )
    with loose_crd(control_plane, kube, namespace):
        create_certificate(kube, namespace, certificate_body("huge", "ca", duration=HUGE))
    operator = operator_factory(namespaces=[namespace])

    def invalid() -> dict[str, Any] | None:
        ready = condition(get(kube, namespace, CERTS, "huge"))
        return ready if ready.get("reason") == "InvalidSpec" else None

    ready = wait_for("Ready=False/InvalidSpec on the stored certificate", invalid, 60)
    assert ready["status"] == "False"
    assert ready["message"] == "invalid spec: spec.duration: must be at most 36500d (100 years)", ready
    stored = get(kube, namespace, CERTS, "huge")
    assert stored["status"]["observedGeneration"] == stored["metadata"]["generation"]

    # Barrier: a certificate created later is issued, so the operator went on working.
    create_certificate(kube, namespace, certificate_body("after", "ca"))
    wait_issued(kube, namespace, "after", timeout=90)
    assert condition(get(kube, namespace, CERTS, "huge")) == ready
    logs = operator.logs()
    assert "Traceback" not in logs and "OverflowError" not in logs, operator.log_tail(80)
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any("must be at most 36500d" in record.get("message", "") for record in records)
