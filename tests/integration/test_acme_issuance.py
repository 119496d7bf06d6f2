"""The acme issuer against a real Pebble on loopback: HTTP-01 issuance checked with openssl,
and a rejected identifier ending in a condition that names the ACME problem."""

from __future__ import annotations

import base64
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
    openssl,
    revocation_body,
    wait_for,
    wait_issued,
    wait_phase,
    wait_ready,
)

from certctl_operator.dev.operator_process import OperatorFactory, OperatorProcess

BLOCKED = "blocked.acme.test"
# Pebble's default profile: a spec asking for the same lifetime matches what the CA issues.
PEBBLE_LIFETIME = "2160h"


@dataclass
class ACMEWorld:
    pebble: Pebble
    operator: OperatorProcess
    namespace: str


@pytest.fixture
def acme_world(operator_factory: OperatorFactory, namespace: str, tmp_path: Path) -> Iterator[ACMEWorld]:
    """Pebble validating HTTP-01 on the operator's own port, and that operator."""
    operator = operator_factory(namespaces=[namespace], start=False)
    with running_pebble(tmp_path / "pebble", http_port=operator.port, domain_blocklist=[BLOCKED]) as pebble:
        operator.start()
        yield ACMEWorld(pebble, operator, namespace)
        print(f"--- pebble log\n{pebble.log_text()[-6000:]}")


def acme_issuer(name: str, pebble: Pebble, **acme: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "server": pebble.directory_url,
        "email": "pki@example.test",
        "caBundle": pebble.ca_bundle,
        "privateKeySecretRef": {"name": f"{name}-account"},
        "solvers": [{"http01": {}}],
    }
    spec.update(acme)
    return {"kind": "Issuer", "metadata": {"name": name}, "spec": {"acme": spec}}


def test_http01_issuance_chain_verifies_with_openssl(
    kube: Any, acme_world: ACMEWorld, tmp_path: Path
) -> None:
    ns = acme_world.namespace
    create(kube, ns, "issuers", acme_issuer("pebble", acme_world.pebble))
    issuer = wait_ready(kube, ns, "issuers", "pebble", timeout=60)
    assert issuer["status"]["type"] == "ACME"
    create(
        kube,
        ns,
        "managedcertificates",
        certificate_body(
            "web", "pebble", dnsNames=["web.acme.test", "api.acme.test"], duration=PEBBLE_LIFETIME
        ),
    )
    issued = wait_issued(kube, ns, "web", timeout=120)

    # The account key Secret was created by the operator: an EC P-256 key.
    account = client.CoreV1Api(kube).read_namespaced_secret("pebble-account", ns)
    key_file = tmp_path / "account.key"
    key_file.write_bytes(base64.b64decode(account.data["tls.key"]))
    assert "ASN1 OID: prime256v1" in openssl("pkey", "-in", key_file, "-noout", "-text").stdout

    secret = client.CoreV1Api(kube).read_namespaced_secret("web-tls", ns)
    chain = base64.b64decode(secret.data["tls.crt"]).decode()
    (tmp_path / "chain.pem").write_text(chain)
    (tmp_path / "leaf.pem").write_text(issued.leaf_pem)
    (tmp_path / "root.pem").write_text(acme_world.pebble.root_pem())
    result = openssl(
        "verify",
        "-CAfile",
        tmp_path / "root.pem",
        "-untrusted",
        tmp_path / "chain.pem",
        tmp_path / "leaf.pem",
    )
    assert result.returncode == 0, result.stderr
    text = openssl("x509", "-in", tmp_path / "leaf.pem", "-noout", "-ext", "subjectAltName").stdout
    assert "DNS:web.acme.test" in text and "DNS:api.acme.test" in text

    body = get(kube, ns, "managedcertificates", "web")
    order = body["status"]["acmeOrder"]
    assert order["state"] == "valid"
    assert order["url"].startswith("https://127.0.0.1:")
    assert sorted(a["identifier"] for a in order["authorizations"]) == ["api.acme.test", "web.acme.test"]
    assert {a["challengeType"] for a in order["authorizations"]} == {"http-01"}
    # Pebble knows the certificate as valid.
    assert acme_world.pebble.cert_status(issued.serial)["Status"] == "Valid"


def test_rejected_identifier_ends_in_condition_naming_the_problem(kube: Any, acme_world: ACMEWorld) -> None:
    ns = acme_world.namespace
    create(kube, ns, "issuers", acme_issuer("pebble", acme_world.pebble))
    wait_ready(kube, ns, "issuers", "pebble", timeout=60)
    create(
        kube,
        ns,
        "managedcertificates",
        certificate_body("blocked", "pebble", dnsNames=[BLOCKED], duration=PEBBLE_LIFETIME),
    )

    def failed() -> dict[str, Any] | None:
        body = get(kube, ns, "managedcertificates", "blocked")
        ready = condition(body)
        return body if ready.get("status") == "False" and ready.get("reason", "").startswith("ACME") else None

    body = wait_for("the rejected order's condition", failed, timeout=90)
    ready = condition(body)
    assert ready["reason"] == "ACMERejectedIdentifier", ready
    assert "urn:ietf:params:acme:error:rejectedIdentifier" in ready["message"]
    assert BLOCKED in ready["message"]
    status = body["status"]
    assert status["failedIssuanceAttempts"] >= 1
    assert status["nextAttemptTime"] > status["lastFailureTime"] or status["nextAttemptTime"]
    assert "serialNumber" not in status


def test_revocation_calls_revoke_cert_with_the_reason(kube: Any, acme_world: ACMEWorld) -> None:
    ns = acme_world.namespace
    create(kube, ns, "issuers", acme_issuer("pebble", acme_world.pebble))
    wait_ready(kube, ns, "issuers", "pebble", timeout=60)
    create(
        kube,
        ns,
        "managedcertificates",
        certificate_body("gone", "pebble", dnsNames=["gone.acme.test"], duration=PEBBLE_LIFETIME),
    )
    issued = wait_issued(kube, ns, "gone", timeout=120)
    assert acme_world.pebble.cert_status(issued.serial)["Status"] == "Valid"

    create(
        kube, ns, "revocations", revocation_body("gone-compromised", "gone", "keyCompromise", reissue=False)
    )
    revocation = wait_phase(kube, ns, "gone-compromised", "Revoked", timeout=90)
    assert revocation["status"]["serialNumber"] == issued.serial
    assert revocation["status"]["issuerNotified"] is True

    status = acme_world.pebble.cert_status(issued.serial)
    assert status["Status"] == "Revoked", status
    assert status["Reason"] == 1, status  # keyCompromise (RFC 5280)

    def marked() -> dict[str, Any] | None:
        body = get(kube, ns, "managedcertificates", "gone")
        return body if (body.get("status") or {}).get("revoked") else None

    wait_for("the ManagedCertificate marked revoked", marked, timeout=60)
