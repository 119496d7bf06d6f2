"""A ClusterIssuer of type acme: its Secrets (account key, EAB key) live in the operator's
namespace, never in the certificate's, for issuance and for revocation alike."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.support.pebble import Pebble, running_pebble
from tests.support.pki_cluster import (
    GROUP,
    VERSION,
    certificate_body,
    create,
    get,
    revocation_body,
    wait_for,
    wait_issued,
    wait_phase,
    wait_ready,
)

from certctl_operator.dev.operator_process import OperatorFactory, OperatorProcess

KEY_ID = "cluster-team"
PEBBLE_LIFETIME = "2160h"


@dataclass
class ClusterWorld:
    pebble: Pebble
    operator: OperatorProcess
    namespace: str
    operator_namespace: str
    issuer: str
    hmac_key: str


@pytest.fixture
def cluster_world(
    kube: Any, operator_factory: OperatorFactory, namespace: str, tmp_path: Path
) -> Iterator[ClusterWorld]:
    core = client.CoreV1Api(kube)
    system = f"{namespace[:50]}-sys"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=system)))
    hmac_key = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode("ascii")
    core.create_namespaced_secret(
        system,
        client.V1Secret(metadata=client.V1ObjectMeta(name="acme-eab"), string_data={"secret": hmac_key}),
    )
    operator = operator_factory(
        namespaces=[namespace], env={"CERTCTL_OPERATOR_NAMESPACE": system}, start=False
    )
    issuer = f"pebble-cluster-{uuid.uuid4().hex[:6]}"
    with running_pebble(
        tmp_path / "pebble", http_port=operator.port, eab_mac_keys={KEY_ID: hmac_key}
    ) as pebble:
        operator.start()
        try:
            yield ClusterWorld(pebble, operator, namespace, system, issuer, hmac_key)
        finally:
            delete_cluster_issuer(kube, issuer)
            print(f"--- pebble log\n{pebble.log_text()[-6000:]}")


def delete_cluster_issuer(kube: Any, name: str) -> None:
    """Deleted while the operator runs, so no other test's operator finds it."""
    objects = client.CustomObjectsApi(kube)
    try:
        objects.delete_cluster_custom_object(GROUP, VERSION, "clusterissuers", name)
    except ApiException as error:
        if error.status == 404:
            return
        raise

    def gone() -> bool:
        try:
            objects.get_cluster_custom_object(GROUP, VERSION, "clusterissuers", name)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(f"ClusterIssuer {name} to be deleted", gone, timeout=30)


def cluster_issuer(world: ClusterWorld) -> dict[str, Any]:
    return {
        "kind": "ClusterIssuer",
        "metadata": {"name": world.issuer},
        "spec": {
            "acme": {
                "server": world.pebble.directory_url,
                "caBundle": world.pebble.ca_bundle,
                "privateKeySecretRef": {"name": f"{world.issuer}-account"},
                "externalAccountBinding": {"keyID": KEY_ID, "keySecretRef": {"name": "acme-eab"}},
                "solvers": [{"http01": {}}],
            }
        },
    }


def test_cluster_issuer_issues_and_revokes_with_secrets_in_the_operator_namespace(
    kube: Any, cluster_world: ClusterWorld
) -> None:
    ns, system = cluster_world.namespace, cluster_world.operator_namespace
    create(kube, None, "clusterissuers", cluster_issuer(cluster_world))
    issuer = wait_ready(kube, None, "clusterissuers", cluster_world.issuer, timeout=60)
    assert issuer["status"]["type"] == "ACME"
    create(
        kube,
        ns,
        "managedcertificates",
        certificate_body(
            "shared",
            cluster_world.issuer,
            "ClusterIssuer",
            dnsNames=["shared.acme.test"],
            duration=PEBBLE_LIFETIME,
        ),
    )
    issued = wait_issued(kube, ns, "shared", timeout=120)
    assert cluster_world.pebble.cert_status(issued.serial)["Status"] == "Valid"

    # The account key Secret was created in the operator's namespace, not the certificate's.
    core = client.CoreV1Api(kube)
    account = core.read_namespaced_secret(f"{cluster_world.issuer}-account", system)
    assert account.data["tls.key"]
    names_here = {s.metadata.name for s in core.list_namespaced_secret(ns).items}
    assert f"{cluster_world.issuer}-account" not in names_here
    order = get(kube, ns, "managedcertificates", "shared")["status"]["acmeOrder"]
    assert order["state"] == "valid" and order["accountURL"]

    # Revocation signs with the same account key, read from the operator's namespace.
    create(kube, ns, "revocations", revocation_body("shared-gone", "shared", "superseded", reissue=False))
    revocation = wait_phase(kube, ns, "shared-gone", "Revoked", timeout=90)
    assert revocation["status"]["serialNumber"] == issued.serial
    status = cluster_world.pebble.cert_status(issued.serial)
    assert status["Status"] == "Revoked" and status["Reason"] == 4, status  # superseded (RFC 5280)
    assert cluster_world.hmac_key not in cluster_world.operator.logs()
