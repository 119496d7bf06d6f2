"""tls.key encoding when the spec leaves ``privateKey.encoding`` out: a real operator, judged by openssl.

The encoding has no schema default; an unset one means the algorithm's own
form: PKCS#1 for RSA, SEC 1 for ECDSA (both "PKCS1" in the API) and PKCS#8
for Ed25519, which has no other. Each key the operator writes is read back
with ``openssl pkey`` and matched against the certificate's public key.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.support.pki_cluster import (
    certificate_body,
    create,
    get,
    issuer_body,
    make_ca_secret,
    openssl,
    wait_for,
    wait_issued,
)

CERTS = "managedcertificates"

# algorithm -> (PEM header of tls.key, what `openssl pkey -text` says about the key)
EXPECTED = {
    "RSA": ("-----BEGIN RSA PRIVATE KEY-----", "Private-Key: (2048 bit"),
    "ECDSA": ("-----BEGIN EC PRIVATE KEY-----", "ASN1 OID: prime256v1"),
    "Ed25519": ("-----BEGIN PRIVATE KEY-----", "ED25519 Private-Key"),
}


def secret_file(kube: Any, namespace: str, secret: str, key: str, path: Path) -> Path:
    data = client.CoreV1Api(kube).read_namespaced_secret(secret, namespace).data
    path.write_bytes(base64.b64decode(data[key]))
    return path


def test_every_algorithm_issues_with_the_encoding_omitted(
    kube: Any, namespace: str, operator_factory: Any, tmp_path: Path
) -> None:
    make_ca_secret(kube, namespace, "ca-keypair", "Encoding CA")
    create(kube, namespace, "issuers", issuer_body("ca", ca_secret="ca-keypair", base_url=None))
    for algorithm in EXPECTED:
        body = certificate_body(algorithm.lower(), "ca", privateKey={"algorithm": algorithm})
        create(kube, namespace, CERTS, body)
    operator_factory(namespaces=[namespace])

    for algorithm, (header, description) in EXPECTED.items():
        name = algorithm.lower()
        wait_issued(kube, namespace, name, timeout=90)
        key = secret_file(kube, namespace, f"{name}-tls", "tls.key", tmp_path / f"{name}.key")
        crt = secret_file(kube, namespace, f"{name}-tls", "tls.crt", tmp_path / f"{name}.crt")
        assert key.read_text().startswith(header), f"{algorithm}: {key.read_text().splitlines()[0]}"

        text = openssl("pkey", "-in", key, "-noout", "-text")
        assert text.returncode == 0, text.stderr
        assert description in text.stdout, f"{algorithm}: {text.stdout[:200]}"
        public = openssl("pkey", "-in", key, "-pubout")
        from_cert = openssl("x509", "-in", crt, "-noout", "-pubkey")
        assert public.returncode == 0 and from_cert.returncode == 0, public.stderr + from_cert.stderr
        assert public.stdout == from_cert.stdout, f"{algorithm}: tls.key does not belong to tls.crt"
    for algorithm in EXPECTED:
        # The API server filled in no encoding that the algorithm could clash with.
        assert "encoding" not in get(kube, namespace, CERTS, algorithm.lower())["spec"]["privateKey"]


@pytest.mark.parametrize(
    ("algorithm", "explicit", "header"),
    [
        ("RSA", "PKCS1", "-----BEGIN RSA PRIVATE KEY-----"),
        ("Ed25519", "PKCS8", "-----BEGIN PRIVATE KEY-----"),
    ],
    ids=["RSA-PKCS1", "Ed25519-PKCS8"],
)
def test_dropping_an_encoding_equal_to_the_default_does_not_reissue(
    algorithm: str, explicit: str, header: str, kube: Any, namespace: str, operator_factory: Any
) -> None:
    """Certificates written under the old schema default carry it explicitly; unset means the same."""
    make_ca_secret(kube, namespace, "ca-keypair", "Encoding CA")
    create(kube, namespace, "issuers", issuer_body("ca", ca_secret="ca-keypair", base_url=None))
    create(
        kube,
        namespace,
        CERTS,
        certificate_body("web", "ca", privateKey={"algorithm": algorithm, "encoding": explicit}),
    )
    operator_factory(namespaces=[namespace])
    first = wait_issued(kube, namespace, "web", timeout=90)

    patched = client.CustomObjectsApi(kube).patch_namespaced_custom_object(
        "certctl.io",
        "v1alpha1",
        namespace,
        CERTS,
        "web",
        {"spec": {"privateKey": {"encoding": None}}},
    )
    assert "encoding" not in patched["spec"]["privateKey"]
    generation = patched["metadata"]["generation"]

    def reconciled() -> dict[str, Any] | None:
        body = get(kube, namespace, CERTS, "web")
        return body if (body.get("status") or {}).get("observedGeneration") == generation else None

    body = wait_for("the operator to act on the new generation", reconciled, timeout=60)
    status = body["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", json.dumps(ready)
    assert (status["serialNumber"], status["revision"]) == (first.serial, first.revision)
    data = client.CoreV1Api(kube).read_namespaced_secret("web-tls", namespace).data
    assert base64.b64decode(data["tls.key"]).decode().startswith(header)
