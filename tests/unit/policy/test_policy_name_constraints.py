"""A CA's nameConstraints decide which names it may sign; a tls.key must hold exactly one key."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certctl_operator.api.issuer import IssuerSpec
from certctl_operator.pki import CertificateRequest
from certctl_operator.policy.issuance import name_constraint_violations
from certctl_operator.policy.issuers import SecretSnapshot, evaluate_issuer, private_key_blocks

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def authority(
    permitted: list[x509.GeneralName] | None = None, excluded: list[x509.GeneralName] | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Team CA")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if permitted or excluded:
        constraints = x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded)
        builder = builder.add_extension(constraints, critical=True)
    return builder.sign(key, hashes.SHA256()), key


def test_a_ca_without_name_constraints_signs_any_name() -> None:
    ca, _ = authority()
    request = CertificateRequest(dns_names=["anything.example"], ip_addresses=["10.0.0.1"])
    assert name_constraint_violations(request, [ca]) == []


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("example.test", True),
        ("web.example.test", True),
        ("a.b.example.test", True),
        ("*.example.test", True),
        ("WEB.Example.Test.", True),
        ("badexample.test", False),
        ("example.test.evil", False),
        ("example.org", False),
    ],
)
def test_permitted_dns_subtrees_match_the_name_and_everything_below_it(name: str, allowed: bool) -> None:
    ca, _ = authority(permitted=[x509.DNSName("example.test")])
    problems = name_constraint_violations(CertificateRequest(dns_names=[name]), [ca])
    if allowed:
        assert problems == []
    else:
        assert problems == [
            f"DNS name {name} is outside the names CA CN=Team CA may sign for (permitted: example.test)"
        ]


def test_excluded_subtrees_win_over_permitted_ones() -> None:
    ca, _ = authority(
        permitted=[x509.DNSName("example.test")], excluded=[x509.DNSName("internal.example.test")]
    )
    request = CertificateRequest(dns_names=["web.example.test", "db.internal.example.test"])
    assert name_constraint_violations(request, [ca]) == [
        "DNS name db.internal.example.test is excluded by the name constraints of CA CN=Team CA"
    ]


def test_subtrees_constrain_only_names_of_their_own_form() -> None:
    ca, _ = authority(permitted=[x509.DNSName("example.test")])
    request = CertificateRequest(
        dns_names=["web.example.test"], ip_addresses=["192.0.2.7"], email_addresses=["a@b.example"]
    )
    assert name_constraint_violations(request, [ca]) == []


def test_ip_and_email_subtrees() -> None:
    ca, _ = authority(
        permitted=[
            x509.IPAddress(ipaddress.ip_network("10.0.0.0/8")),
            x509.RFC822Name(".example.test"),
        ]
    )
    good = CertificateRequest(ip_addresses=["10.1.2.3"], email_addresses=["ops@mail.example.test"])
    assert name_constraint_violations(good, [ca]) == []
    bad = CertificateRequest(ip_addresses=["192.0.2.1"], email_addresses=["ops@example.org"])
    problems = name_constraint_violations(bad, [ca])
    assert [problem.split(" is ")[0] for problem in problems] == [
        "IP name 192.0.2.1",
        "email name ops@example.org",
    ]


def test_an_intermediates_issuer_constrains_too() -> None:
    intermediate, _ = authority()
    root, _ = authority(permitted=[x509.DNSName("example.test")])
    request = CertificateRequest(dns_names=["web.example.org"])
    assert len(name_constraint_violations(request, [intermediate, root])) == 1


def pem_of(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def test_private_key_blocks_count_keys_but_not_parameters() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    params = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    assert private_key_blocks(pem_of(key)) == 1
    assert private_key_blocks(params + pem_of(key)) == 1
    assert private_key_blocks(pem_of(key) + pem_of(ec.generate_private_key(ec.SECP256R1()))) == 2
    assert private_key_blocks(b"") == 0


def test_an_issuer_whose_tls_key_holds_two_keys_is_not_ready() -> None:
    ca, key = authority()
    data = {
        "tls.crt": ca.public_bytes(serialization.Encoding.PEM),
        "tls.key": pem_of(key) + pem_of(ec.generate_private_key(ec.SECP256R1())),
    }
    spec = IssuerSpec.model_validate({"ca": {"secretName": "team-ca"}})
    check = evaluate_issuer(spec, SecretSnapshot("ns", "team-ca", data=data), NOW)
    assert (check.ready, check.reason) == (False, "InvalidKey")
    assert check.message == "CA Secret ns/team-ca: tls.key holds 2 private keys; it must hold exactly one"
    # The same Secret with only the right key is fine.
    single = SecretSnapshot("ns", "team-ca", data={**data, "tls.key": pem_of(key)})
    assert evaluate_issuer(spec, single, NOW).ready
