from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from certctl_operator.pki import (
    CertificateRequest,
    GeneratedCA,
    InvalidCertificateError,
    KeyAlgorithm,
    KeySpec,
    PrivateKey,
    certificate_matches_request,
    inspect_certificate,
    inspect_chain,
    issue_certificate,
)

from .conftest import FIXED_NOW, openssl, requires_openssl

REQUEST = CertificateRequest(
    common_name="api.example.com",
    dns_names=["api.example.com", "API2.example.com"],
    ip_addresses=["192.0.2.7", "2001:db8::7"],
    uris=["spiffe://example/api"],
    email_addresses=["api@example.com"],
    organizations=["Example"],
    countries=["FR"],
    duration=timedelta(days=7),
    usages=["digital signature", "server auth", "client auth"],
    crl_distribution_url="http://pki.example/crl",
    ocsp_url="http://pki.example/ocsp",
)


@pytest.fixture
def issued_pem(fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]) -> str:
    return issue_certificate(
        REQUEST, keys["ec"], fixed_cas["rsa"].authority, FIXED_NOW, serial=0x1234
    ).full_chain_pem


def test_summary_fields(issued_pem: str, fixed_cas: dict[str, GeneratedCA]) -> None:
    summary = inspect_certificate(issued_pem)
    assert summary.subject == "CN=api.example.com,O=Example,C=FR"
    assert summary.issuer == "CN=Fixed rsa CA"
    assert summary.common_name == "api.example.com"
    assert summary.organizations == ("Example",)
    assert summary.countries == ("FR",)
    assert summary.dns_names == ("api.example.com", "API2.example.com")
    assert summary.ip_addresses == ("192.0.2.7", "2001:db8::7")
    assert summary.uris == ("spiffe://example/api",)
    assert summary.email_addresses == ("api@example.com",)
    assert summary.serial == 0x1234 and summary.serial_hex == "1234"
    assert summary.not_after == FIXED_NOW + timedelta(days=7)
    assert summary.lifetime == timedelta(days=7, minutes=5)
    assert summary.key_algorithm == "ECDSA" and summary.key_size == 256
    assert summary.key_spec == KeySpec(KeyAlgorithm.ECDSA, 256)
    assert summary.signature_algorithm == "sha256WithRSAEncryption"
    assert summary.is_ca is False and summary.path_length is None
    assert summary.usages == ("digital signature", "server auth", "client auth")
    assert summary.crl_distribution_urls == ("http://pki.example/crl",)
    assert summary.ocsp_urls == ("http://pki.example/ocsp",)
    assert summary.self_signed is False
    assert summary.subject_key_identifier and len(summary.subject_key_identifier) == 40
    ca_summary = inspect_certificate(fixed_cas["rsa"].certificate_pem)
    assert summary.authority_key_identifier == ca_summary.subject_key_identifier
    assert ca_summary.is_ca and ca_summary.self_signed
    assert ca_summary.usages == ("digital signature", "cert sign", "crl sign")
    assert ca_summary.key_algorithm == "RSA" and ca_summary.key_size == 2048


def test_ed25519_summary(keys: dict[str, PrivateKey]) -> None:
    issued = issue_certificate(CertificateRequest(common_name="ed"), keys["ed25519"], None, FIXED_NOW)
    summary = inspect_certificate(issued.certificate_pem)
    assert (summary.key_algorithm, summary.key_size) == ("Ed25519", None)
    assert summary.key_spec == KeySpec(KeyAlgorithm.ED25519)
    assert summary.signature_algorithm == "ed25519"
    assert summary.self_signed


def test_chain_and_validity_helpers(issued_pem: str, fixed_cas: dict[str, GeneratedCA]) -> None:
    chain = inspect_chain(issued_pem + fixed_cas["rsa"].certificate_pem)
    assert [s.common_name for s in chain] == ["api.example.com", "Fixed rsa CA"]
    leaf = chain[0]
    assert leaf.is_valid_at(FIXED_NOW)
    assert not leaf.is_valid_at(FIXED_NOW + timedelta(days=8))
    assert leaf.remaining(FIXED_NOW) == timedelta(days=7)
    assert leaf.remaining(FIXED_NOW + timedelta(days=8)) < timedelta(0)


def test_as_dict_is_json_ready(issued_pem: str) -> None:
    data = inspect_certificate(issued_pem).as_dict()
    text = json.dumps(data)
    assert '"serial_hex": "1234"' in text
    assert data["not_after"] == (FIXED_NOW + timedelta(days=7)).isoformat()


@pytest.mark.parametrize(
    "data", ["", "junk", b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"]
)
def test_invalid_data(data: str | bytes) -> None:
    with pytest.raises(InvalidCertificateError):
        inspect_certificate(data)


class TestMatches:
    def test_issued_certificate_matches_its_request(
        self, issued_pem: str, keys: dict[str, PrivateKey], fixed_cas: dict[str, GeneratedCA]
    ) -> None:
        summary = inspect_certificate(issued_pem)
        problems = certificate_matches_request(
            summary,
            REQUEST,
            keys["ec"],
            key_spec=KeySpec(KeyAlgorithm.ECDSA),
            authority=fixed_cas["rsa"].authority,
        )
        assert problems == []

    def test_equivalent_spellings_match(self, issued_pem: str) -> None:
        request = replace(
            REQUEST,
            dns_names=("api2.EXAMPLE.com", "api.example.com"),
            ip_addresses=("2001:0db8:0:0::7", "192.0.2.7"),
            usages=("client auth", "Server Auth", "signing"),
            countries=("fr",),
        )
        assert certificate_matches_request(inspect_certificate(issued_pem), request) == []

    def test_default_usages_are_understood(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        request = CertificateRequest(dns_names=["rsa.example"])
        issued = issue_certificate(request, keys["rsa"], fixed_cas["ec"].authority, FIXED_NOW)
        summary = inspect_certificate(issued.certificate_pem)
        assert (
            certificate_matches_request(summary, request, keys["rsa"], key_spec=KeySpec(KeyAlgorithm.RSA))
            == []
        )
        # Switching the spec to ECDSA changes both the key and the default usages.
        problems = certificate_matches_request(summary, request, key_spec=KeySpec(KeyAlgorithm.ECDSA))
        assert any(p.startswith("usages differ") for p in problems)
        assert any(p.startswith("key differs") and "ECDSA P-256" in p for p in problems)

    @pytest.mark.parametrize(
        ("changes", "prefix"),
        [
            ({"common_name": "other.example.com"}, "commonName differs"),
            ({"common_name": None}, "commonName differs"),
            ({"dns_names": ("api.example.com",)}, "dnsNames differ"),
            ({"ip_addresses": ("192.0.2.8", "2001:db8::7")}, "ipAddresses differ"),
            ({"uris": ()}, "uris differ"),
            ({"email_addresses": ("root@example.com",)}, "emailAddresses differ"),
            ({"organizations": ("Other",)}, "organizations differ"),
            ({"organizational_units": ("Unit",)}, "organizationalUnits differ"),
            ({"countries": ("DE",)}, "countries differ"),
            ({"localities": ("Paris",)}, "localities differ"),
            ({"provinces": ("IDF",)}, "provinces differ"),
            ({"is_ca": True}, "isCA differs"),
            ({"usages": ("digital signature", "server auth")}, "usages differ"),
            ({"crl_distribution_url": None}, "CRL distribution URLs differ"),
            ({"ocsp_url": "http://elsewhere/ocsp"}, "OCSP URLs differ"),
        ],
    )
    def test_each_difference_is_reported(
        self, issued_pem: str, changes: dict[str, object], prefix: str
    ) -> None:
        request = replace(REQUEST, **changes)  # type: ignore[arg-type]
        problems = certificate_matches_request(inspect_certificate(issued_pem), request)
        assert [p for p in problems if p.startswith(prefix)], problems
        assert len(problems) == 1 or prefix == "isCA differs", problems

    def test_key_checks(self, issued_pem: str, keys: dict[str, PrivateKey]) -> None:
        summary = inspect_certificate(issued_pem)
        assert certificate_matches_request(summary, REQUEST, keys["ec"].public_key()) == []
        assert certificate_matches_request(summary, REQUEST, keys["rsa"]) == [
            "the private key does not belong to the certificate"
        ]
        problems = certificate_matches_request(summary, REQUEST, key_spec=KeySpec(KeyAlgorithm.ECDSA, 384))
        assert problems == ["key differs: the certificate's key is ECDSA P-256, the spec wants ECDSA P-384"]

    def test_other_issuer(self, issued_pem: str, fixed_cas: dict[str, GeneratedCA]) -> None:
        problems = certificate_matches_request(
            inspect_certificate(issued_pem), REQUEST, authority=fixed_cas["ec"].authority
        )
        assert len(problems) == 1 and "not by the configured CA" in problems[0]

    def test_same_name_different_key_is_another_issuer(
        self, issued_pem: str, fixed_cas: dict[str, GeneratedCA]
    ) -> None:
        from certctl_operator.pki import create_self_signed_ca

        twin = create_self_signed_ca(
            "Fixed rsa CA", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=1), FIXED_NOW
        )
        problems = certificate_matches_request(
            inspect_certificate(issued_pem), REQUEST, authority=twin.authority
        )
        assert len(problems) == 1 and "not by the configured CA" in problems[0]


@requires_openssl
def test_summary_of_an_openssl_certificate(tmp_path: Path) -> None:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    result = openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes",
        "-keyout", key, "-out", cert, "-subj", "/CN=made by openssl/O=Org",
        "-addext", "subjectAltName=DNS:one.example,IP:127.0.0.1", "-days", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = inspect_certificate(cert.read_text())
    assert summary.common_name == "made by openssl"
    assert summary.dns_names == ("one.example",) and summary.ip_addresses == ("127.0.0.1",)
    assert (summary.key_algorithm, summary.key_size) == ("ECDSA", 384)
    serial = openssl("x509", "-in", cert, "-noout", "-serial").stdout.strip()
    assert serial == f"serial={summary.serial_hex}"
    fingerprint = openssl("x509", "-in", cert, "-noout", "-fingerprint", "-sha256").stdout
    assert fingerprint.strip().split("=", 1)[1].replace(":", "") == summary.fingerprint_sha256


def test_self_signed_answers_keep_only_self_named_certificates(
    issued_pem: str, fixed_cas: dict[str, GeneratedCA]
) -> None:
    from certctl_operator.pki.encoding import _signs_itself, is_self_signed, load_certificates

    leaf, ca = load_certificates(issued_pem)[0], fixed_cas["rsa"].authority.certificate
    _signs_itself.cache_clear()
    assert inspect_certificate(issued_pem).self_signed is False
    assert is_self_signed(leaf) is False
    # A leaf of a CA is answered from its names: ten thousand of them are not kept alive by a cache.
    assert _signs_itself.cache_info().currsize == 0
    assert is_self_signed(ca) is True
    assert is_self_signed(ca) is True
    assert _signs_itself.cache_info().currsize == 1 and _signs_itself.cache_info().hits == 1
