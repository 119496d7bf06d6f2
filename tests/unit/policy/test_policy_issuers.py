"""When an issuer can sign, and the reason it gives when it cannot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certctl_operator.api import IssuerKind, IssuerSpec
from certctl_operator.pki import (
    CertificateRequest,
    GeneratedCA,
    KeyAlgorithm,
    KeySpec,
    create_self_signed_ca,
    generate_private_key,
    issue_certificate,
    private_key_to_pem,
    serial_to_hex,
)
from certctl_operator.policy.issuers import SecretSnapshot, ca_secret_namespace, evaluate_issuer

NOW = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)
CA_SPEC = IssuerSpec.model_validate({"ca": {"secretName": "ca-keypair"}})


@pytest.fixture(scope="module")
def ca() -> GeneratedCA:
    return create_self_signed_ca(
        "unit CA", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=30), NOW - timedelta(days=1)
    )


def secret(crt: str | None, key: str | None, ca_crt: str | None = None) -> SecretSnapshot:
    data = {
        name: value.encode()
        for name, value in (("tls.crt", crt), ("tls.key", key), ("ca.crt", ca_crt))
        if value
    }
    return SecretSnapshot("ops", "ca-keypair", "kubernetes.io/tls", data=data)


def test_self_signed_is_always_ready() -> None:
    check = evaluate_issuer(IssuerSpec.model_validate({"selfSigned": {}}), None, NOW)
    assert check.ready and check.reason == "SelfSigned" and check.authority is None


def test_a_valid_ca_key_pair_is_ready(ca: GeneratedCA) -> None:
    check = evaluate_issuer(CA_SPEC, secret(ca.certificate_pem, ca.private_key_pem), NOW)
    assert check.ready and check.reason == "KeyPairVerified"
    assert check.authority is not None
    assert check.ca_serial_number == serial_to_hex(ca.authority.certificate.serial_number).lower()
    assert "CN=unit CA" in check.message


def test_every_way_a_ca_secret_can_be_broken(ca: GeneratedCA) -> None:
    leaf_key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA))
    leaf = issue_certificate(CertificateRequest(common_name="leaf"), leaf_key, ca.authority, NOW)
    stray = private_key_to_pem(generate_private_key(KeySpec(KeyAlgorithm.ECDSA)))
    cases = {
        "SecretNotFound": None,
        "InvalidCertificate": secret(None, ca.private_key_pem),
        "InvalidKey": secret(ca.certificate_pem, None),
        "NotACA": secret(leaf.certificate_pem, private_key_to_pem(leaf_key)),
        "KeyMismatch": secret(ca.certificate_pem, stray),
    }
    for reason, broken in cases.items():
        check = evaluate_issuer(CA_SPEC, broken, NOW)
        assert (check.ready, check.reason) == (False, reason), check
        assert check.authority is None and check.message
    garbage = secret("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", ca.private_key_pem)
    assert evaluate_issuer(CA_SPEC, garbage, NOW).reason == "InvalidCertificate"


def test_an_expired_ca_is_not_ready(ca: GeneratedCA) -> None:
    check = evaluate_issuer(CA_SPEC, secret(ca.certificate_pem, ca.private_key_pem), NOW + timedelta(days=60))
    assert (check.ready, check.reason) == (False, "Expired")


def test_cluster_issuer_secrets_live_in_the_operator_namespace() -> None:
    assert ca_secret_namespace(IssuerKind.ISSUER, "team", "certctl-system") == "team"
    assert ca_secret_namespace(IssuerKind.CLUSTER_ISSUER, None, "certctl-system") == "certctl-system"
