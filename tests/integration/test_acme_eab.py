"""External Account Binding against a Pebble that requires it."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.support.pebble import Pebble, running_pebble
from tests.support.pki_cluster import (
    certificate_body,
    condition,
    create,
    get,
    wait_for,
    wait_issued,
    wait_ready,
)

from certctl_operator.dev.operator_process import OperatorFactory, OperatorProcess

KEY_ID = "team-a"
PEBBLE_LIFETIME = "2160h"


@dataclass
class EABWorld:
    pebble: Pebble
    namespace: str
    operator: OperatorProcess
    hmac_key: str


@pytest.fixture
def eab_world(
    kube: Any, operator_factory: OperatorFactory, namespace: str, tmp_path: Path
) -> Iterator[EABWorld]:
    hmac_key = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode("ascii")
    client.CoreV1Api(kube).create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="eab"), string_data={"secret": hmac_key})
    )
    operator = operator_factory(namespaces=[namespace], start=False)
    with running_pebble(
        tmp_path / "pebble", http_port=operator.port, eab_mac_keys={KEY_ID: hmac_key}
    ) as pebble:
        operator.start()
        yield EABWorld(pebble, namespace, operator, hmac_key)
        print(f"--- pebble log\n{pebble.log_text()[-6000:]}")


def issuer(name: str, pebble: Pebble, **acme: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "server": pebble.directory_url,
        "caBundle": pebble.ca_bundle,
        "privateKeySecretRef": {"name": f"{name}-account"},
        "solvers": [{"http01": {}}],
        **acme,
    }
    return {"kind": "Issuer", "metadata": {"name": name}, "spec": {"acme": spec}}


def test_account_bound_with_eab_gets_certificates(kube: Any, eab_world: EABWorld) -> None:
    ns = eab_world.namespace
    binding = {"keyID": KEY_ID, "keySecretRef": {"name": "eab", "key": "secret"}}
    create(kube, ns, "issuers", issuer("bound", eab_world.pebble, externalAccountBinding=binding))
    wait_ready(kube, ns, "issuers", "bound", timeout=60)
    create(
        kube,
        ns,
        "managedcertificates",
        certificate_body("eab", "bound", dnsNames=["eab.acme.test"], duration=PEBBLE_LIFETIME),
    )
    issued = wait_issued(kube, ns, "eab", timeout=120)
    assert eab_world.pebble.cert_status(issued.serial)["Status"] == "Valid"
    assert eab_world.hmac_key not in eab_world.operator.logs()


def test_missing_binding_is_named_in_the_condition(kube: Any, eab_world: EABWorld) -> None:
    ns = eab_world.namespace
    create(kube, ns, "issuers", issuer("unbound", eab_world.pebble))
    wait_ready(kube, ns, "issuers", "unbound", timeout=60)
    create(
        kube,
        ns,
        "managedcertificates",
        certificate_body("noeab", "unbound", dnsNames=["noeab.acme.test"], duration=PEBBLE_LIFETIME),
    )

    def refused() -> dict[str, Any] | None:
        body = get(kube, ns, "managedcertificates", "noeab")
        return body if condition(body).get("reason") == "ACMEExternalAccountRequired" else None

    body = wait_for("the refused account's condition", refused, timeout=90)
    assert "urn:ietf:params:acme:error:externalAccountRequired" in condition(body)["message"]
    assert condition(body)["status"] == "False"
