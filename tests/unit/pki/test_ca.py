from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from certctl_operator.pki import (
    AuthorityError,
    CertificateRequest,
    GeneratedCA,
    KeyAlgorithm,
    KeyEncoding,
    KeySpec,
    PrivateKey,
    SigningAuthority,
    UnsupportedKeyError,
    create_self_signed_ca,
    generate_private_key,
    issue_certificate,
    load_signing_authority,
    private_key_to_pem,
    public_keys_equal,
)

from .conftest import FIXED_NOW, openssl, requires_openssl, write

CA_REASONS = {"InvalidCertificate", "InvalidKey", "NotACA", "KeyMismatch", "Expired", "NotYetValid"}


def _reason(cert_pem: str | bytes, key_pem: str | bytes, now: datetime = FIXED_NOW) -> str:
    with pytest.raises(AuthorityError) as caught:
        load_signing_authority(cert_pem, key_pem, now)
    assert caught.value.reason in CA_REASONS
    return caught.value.reason


def _hand_made_ca(
    key: PrivateKey, *, basic: x509.BasicConstraints | None, usage: x509.KeyUsage | None
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hand made")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(FIXED_NOW - timedelta(days=1))
        .not_valid_after(FIXED_NOW + timedelta(days=1))
    )
    if basic is not None:
        builder = builder.add_extension(basic, critical=True)
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(key, hashes.SHA256())


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


class TestCreate:
    @pytest.mark.parametrize(
        ("spec", "header"),
        [
            (KeySpec(KeyAlgorithm.RSA), "-----BEGIN RSA PRIVATE KEY-----"),
            (KeySpec(KeyAlgorithm.ECDSA, 384), "-----BEGIN EC PRIVATE KEY-----"),
            (KeySpec(KeyAlgorithm.ED25519), "-----BEGIN PRIVATE KEY-----"),
        ],
        ids=lambda v: v.describe() if isinstance(v, KeySpec) else "",
    )
    def test_create_self_signed_ca(self, spec: KeySpec, header: str) -> None:
        ca = create_self_signed_ca("Demo CA", spec, timedelta(days=365), FIXED_NOW, organizations=("Demo",))
        assert ca.private_key_pem.startswith(header)
        cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
        assert cert.subject.rfc4514_string() == "CN=Demo CA,O=Demo"
        assert cert.issuer == cert.subject
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.key_cert_sign and usage.crl_sign
        assert cert.not_valid_after_utc == FIXED_NOW + timedelta(days=365)
        assert ca.authority.can_sign_crl
        reloaded = load_signing_authority(ca.certificate_pem, ca.private_key_pem, FIXED_NOW)
        assert reloaded.certificate == ca.authority.certificate
        assert public_keys_equal(reloaded.private_key, ca.authority.private_key)
        assert reloaded.chain == ()

    def test_pkcs8_on_request(self) -> None:
        ca = create_self_signed_ca(
            "CA", KeySpec(KeyAlgorithm.RSA), timedelta(days=1), FIXED_NOW, key_encoding=KeyEncoding.PKCS8
        )
        assert ca.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")

    def test_ed25519_cannot_be_pkcs1(self) -> None:
        with pytest.raises(UnsupportedKeyError):
            create_self_signed_ca(
                "CA",
                KeySpec(KeyAlgorithm.ED25519),
                timedelta(days=1),
                FIXED_NOW,
                key_encoding=KeyEncoding.PKCS1,
            )


class TestLoad:
    @pytest.mark.parametrize("name", ["rsa", "ec", "ed25519"])
    def test_valid_pairs_load(self, fixed_cas: dict[str, GeneratedCA], name: str) -> None:
        ca = fixed_cas[name]
        authority = load_signing_authority(
            ca.certificate_pem.encode(), ca.private_key_pem.encode(), FIXED_NOW
        )
        assert authority.certificate == ca.authority.certificate

    def test_chain_in_tls_crt(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        root = fixed_cas["rsa"]
        key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA))
        intermediate = issue_certificate(
            CertificateRequest(common_name="Intermediate", is_ca=True), key, root.authority, FIXED_NOW
        )
        tls_crt = intermediate.certificate_pem + root.certificate_pem
        authority = load_signing_authority(tls_crt, private_key_to_pem(key), FIXED_NOW)
        assert authority.certificate == intermediate.certificate
        assert authority.chain == (root.authority.certificate,)

        # Wrong order: the root first does not match the key; the key's cert second is not its issuer.
        reason = _reason(root.certificate_pem + intermediate.certificate_pem, root.private_key_pem)
        assert reason == "InvalidCertificate"

    def test_ca_crt_completes_the_chain(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        root = fixed_cas["ec"]
        key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA))
        intermediate = issue_certificate(
            CertificateRequest(common_name="Intermediate", is_ca=True), key, root.authority, FIXED_NOW
        )
        unrelated = fixed_cas["rsa"].certificate_pem
        authority = load_signing_authority(
            intermediate.certificate_pem,
            private_key_to_pem(key),
            FIXED_NOW,
            ca_certificate_pem=unrelated + root.certificate_pem,
        )
        assert authority.chain == (root.authority.certificate,)

    def test_ca_crt_equal_to_tls_crt(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        ca = fixed_cas["ec"]
        authority = load_signing_authority(
            ca.certificate_pem, ca.private_key_pem, FIXED_NOW, ca_certificate_pem=ca.certificate_pem
        )
        assert authority.chain == ()

    @pytest.mark.parametrize(
        "data", ["", "hello", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
    )
    def test_invalid_certificate(self, fixed_cas: dict[str, GeneratedCA], data: str) -> None:
        assert _reason(data, fixed_cas["ec"].private_key_pem) == "InvalidCertificate"

    @pytest.mark.parametrize("data", ["", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"])
    def test_invalid_key(self, fixed_cas: dict[str, GeneratedCA], data: str) -> None:
        assert _reason(fixed_cas["ec"].certificate_pem, data) == "InvalidKey"

    def test_leaf_is_not_a_ca(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA))
        leaf = issue_certificate(
            CertificateRequest(common_name="leaf"), key, fixed_cas["ec"].authority, FIXED_NOW
        )
        assert _reason(leaf.certificate_pem, private_key_to_pem(key)) == "NotACA"

    @pytest.mark.parametrize(
        ("basic", "usage", "expected"),
        [
            (None, None, "NotACA"),
            (x509.BasicConstraints(ca=False, path_length=None), None, "NotACA"),
            (x509.BasicConstraints(ca=True, path_length=None), _usage(cert_sign=False), "NotACA"),
            # Like `openssl req -x509`: CA:TRUE and no keyUsage at all is accepted.
            (x509.BasicConstraints(ca=True, path_length=None), None, None),
            (x509.BasicConstraints(ca=True, path_length=0), _usage(cert_sign=True), None),
        ],
    )
    def test_ca_requirements(
        self,
        keys: dict[str, PrivateKey],
        basic: x509.BasicConstraints | None,
        usage: x509.KeyUsage | None,
        expected: str | None,
    ) -> None:
        cert = _hand_made_ca(keys["ec"], basic=basic, usage=usage)
        from cryptography.hazmat.primitives.serialization import Encoding

        cert_pem = cert.public_bytes(Encoding.PEM)
        key_pem = private_key_to_pem(keys["ec"])
        if expected is None:
            assert load_signing_authority(cert_pem, key_pem, FIXED_NOW).certificate == cert
        else:
            assert _reason(cert_pem, key_pem) == expected

    def test_key_mismatch(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        assert _reason(fixed_cas["ec"].certificate_pem, fixed_cas["rsa"].private_key_pem) == "KeyMismatch"
        other_ec = private_key_to_pem(generate_private_key(KeySpec(KeyAlgorithm.ECDSA)))
        assert _reason(fixed_cas["ec"].certificate_pem, other_ec) == "KeyMismatch"

    def test_expired_and_not_yet_valid(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        ca = fixed_cas["ec"]
        after = ca.authority.not_after + timedelta(seconds=1)
        before = ca.authority.not_before - timedelta(seconds=1)
        assert _reason(ca.certificate_pem, ca.private_key_pem, after) == "Expired"
        assert _reason(ca.certificate_pem, ca.private_key_pem, before) == "NotYetValid"

    def test_error_messages_never_contain_key_material(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        key_pem = fixed_cas["rsa"].private_key_pem
        with pytest.raises(AuthorityError) as caught:
            load_signing_authority(fixed_cas["ec"].certificate_pem, key_pem, FIXED_NOW)
        body = "".join(key_pem.splitlines()[1:-1])
        assert not any(chunk in str(caught.value) for chunk in (body[i : i + 16] for i in range(0, 640, 16)))


@requires_openssl
class TestOpenSSLMadeCA:
    @pytest.mark.parametrize(
        "newkey",
        [
            ["-newkey", "rsa:2048"],
            ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            ["-newkey", "ed25519"],
        ],
        ids=["rsa", "ec", "ed25519"],
    )
    def test_ca_from_openssl_req_signs_verifiable_certificates(
        self, tmp_path: Path, keys: dict[str, PrivateKey], newkey: list[str]
    ) -> None:
        key_path, cert_path = tmp_path / "tls.key", tmp_path / "tls.crt"
        result = openssl(
            "req", "-x509", *newkey, "-nodes", "-keyout", key_path, "-out", cert_path,
            "-subj", "/CN=OpenSSL Made CA", "-days", "2",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        now = datetime.now(UTC)  # openssl stamps notBefore with the current second
        authority = load_signing_authority(cert_path.read_text(), key_path.read_text(), now)
        assert isinstance(authority, SigningAuthority)
        leaf = issue_certificate(
            CertificateRequest(dns_names=["from-openssl-ca.example"]), keys["ec"], authority, now
        )
        leaf_path = write(tmp_path / "leaf.pem", leaf.full_chain_pem)
        result = openssl("verify", "-CAfile", cert_path, leaf_path)
        assert result.returncode == 0, result.stdout + result.stderr
