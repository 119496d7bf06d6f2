"""OCSP after a restart: every serial the issuer issued and that has not expired is known.

A certificate is renewed, so its first serial is no ManagedCertificate's
current one any more; the operator is killed and started again. ``openssl
ocsp`` must then answer "good" for both serials (the first one is still valid
and may still be deployed), "revoked" for a serial revoked before the restart
and replaced by a reissue, and "unknown" for a certificate the CA signed
without the operator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from tests.support.pki_cluster import (
    certificate_body,
    create,
    custom,
    issuer_body,
    openssl,
    revocation_body,
    wait_for,
    wait_issued,
    wait_phase,
)
from tests.support.revocation_store import issued_serials, make_held_ca


def ocsp_status(base: str, namespace: str, ca_file: Path, cert_file: Path) -> str | None:
    """good / revoked / unknown as ``openssl ocsp`` reports it, once the response verifies."""
    answer = openssl(
        "ocsp",
        "-issuer",
        ca_file,
        "-cert",
        cert_file,
        "-url",
        f"{base}/ocsp/{namespace}/web-ca",
        "-CAfile",
        ca_file,
    )
    if "Response verify OK" not in answer.stderr:
        return None
    for status in ("good", "revoked", "unknown"):
        if f"{cert_file}: {status}" in answer.stdout:
            return status
    return None


def test_replaced_and_revoked_serials_keep_their_ocsp_status_across_a_restart(
    kube: Any, namespace: str, operator_factory: Any, tmp_path: Path
) -> None:
    operator = operator_factory(namespaces=[namespace], start=False)
    base = operator.base_url
    ca = make_held_ca(kube, namespace, "web-ca-keypair", "Web CA")
    create(kube, namespace, "issuers", issuer_body("web-ca", ca_secret="web-ca-keypair", base_url=base))
    create(kube, namespace, "managedcertificates", certificate_body("web", "web-ca"))
    create(kube, namespace, "managedcertificates", certificate_body("api", "web-ca"))
    operator.start()

    first = wait_issued(kube, namespace, "web")
    custom(kube).patch_namespaced_custom_object(
        "certctl.io",
        "v1alpha1",
        namespace,
        "managedcertificates",
        "web",
        {"metadata": {"annotations": {"certctl.io/renew": "rotate-1"}}},
    )
    second = wait_issued(kube, namespace, "web", after=first.serial)
    api_first = wait_issued(kube, namespace, "api")
    create(kube, namespace, "revocations", revocation_body("api-gone", "api", "superseded"))
    wait_phase(kube, namespace, "api-gone", "Revoked")
    api_second = wait_issued(kube, namespace, "api", after=api_first.serial)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(ca.certificate_pem)
    files = {}
    for name, pem in {
        "first": first.leaf_pem,
        "second": second.leaf_pem,
        "api-first": api_first.leaf_pem,
        "api-second": api_second.leaf_pem,
        "stranger": ca.sign("stranger").public_bytes(Encoding.PEM).decode(),
    }.items():
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text(pem)

    operator.kill()
    operator.start()

    expected = {
        "first": "good",
        "second": "good",
        "api-first": "revoked",
        "api-second": "good",
        "stranger": "unknown",
    }
    answers = wait_for(
        "OCSP answers after the restart",
        lambda: (
            all(ocsp_status(base, namespace, ca_file, files[name]) for name in expected)
            and {name: ocsp_status(base, namespace, ca_file, files[name]) for name in expected}
        ),
        timeout=60,
    )
    assert answers == expected

    # What the answers come from: the issued-serials store, each serial with its notAfter.
    stored = issued_serials(kube, namespace, "web-ca")
    assert {first.serial, second.serial, api_first.serial, api_second.serial} <= stored.keys()
    assert (
        stored[first.serial] is not None
        and abs(stored[first.serial].timestamp() - first.certificate.not_valid_after_utc.timestamp()) < 1
    )
