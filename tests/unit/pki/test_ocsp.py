from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from certctl_operator.pki import (
    CertificateRequest,
    CertificateStatus,
    CertificateStatusKind,
    GeneratedCA,
    InvalidRequestError,
    IssuedCertificate,
    KeyAlgorithm,
    KeyEncoding,
    KeySpec,
    MalformedOCSPRequestError,
    OCSPResponder,
    PrivateKey,
    RevokedEntry,
    build_ocsp_response,
    create_ocsp_responder_certificate,
    decode_get_request,
    handle_ocsp_request,
    issue_certificate,
    load_ocsp_responder,
    parse_ocsp_request,
    private_key_to_pem,
)
from certctl_operator.pki.errors import AuthorityError
from certctl_operator.pki.ocsp import issuer_matches

from .conftest import FIXED_NOW, openssl, requires_openssl, write

VALIDITY = timedelta(hours=1)
Lookup = Callable[[int], CertificateStatus]


def leaf_for(
    ca: GeneratedCA, key: PrivateKey, now: datetime, name: str = "leaf.example"
) -> IssuedCertificate:
    request = CertificateRequest(
        dns_names=[name], duration=timedelta(hours=2), ocsp_url="http://ocsp.example/"
    )
    return issue_certificate(request, key, ca.authority, now)


def request_der(issuer: x509.Certificate, leaf: x509.Certificate, nonce: bytes | None = b"n" * 16) -> bytes:
    # SHA-1 CertIDs are what most OCSP clients (openssl included) send by default.
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())  # noqa: S303
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def lookup_table(table: dict[int, CertificateStatus]) -> Lookup:
    return lambda serial: table.get(serial, CertificateStatus.unknown())


@pytest.fixture(scope="module")
def responder(cas: dict[str, GeneratedCA], real_now: datetime) -> OCSPResponder:
    return create_ocsp_responder_certificate(
        cas["ec"].authority, KeySpec(KeyAlgorithm.ECDSA), timedelta(days=1), real_now
    )


class TestParse:
    def test_parse_request(self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]) -> None:
        ca = fixed_cas["ec"]
        leaf = leaf_for(ca, keys["ec"], FIXED_NOW)
        info = parse_ocsp_request(request_der(ca.authority.certificate, leaf.certificate, nonce=b"\x01" * 32))
        assert info.serial == leaf.serial and info.serial_hex == leaf.serial_hex
        assert info.nonce == b"\x01" * 32
        assert isinstance(info.hash_algorithm, hashes.SHA1)
        assert issuer_matches(info, ca.authority)
        assert not issuer_matches(info, fixed_cas["rsa"].authority)
        # With SHA-1 the issuer key hash is the key identifier of the CA.
        ski = ca.authority.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert info.issuer_key_hash == ski.digest

    @pytest.mark.parametrize("digest", [hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
    @pytest.mark.parametrize("ca_name", ["rsa", "ec", "ed25519"])
    def test_issuer_matching_for_all_digests_and_keys(
        self,
        fixed_cas: dict[str, GeneratedCA],
        keys: dict[str, PrivateKey],
        digest: hashes.HashAlgorithm,
        ca_name: str,
    ) -> None:
        ca = fixed_cas[ca_name]
        leaf = leaf_for(ca, keys["ec"], FIXED_NOW)
        der = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(leaf.certificate, ca.authority.certificate, digest)
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        info = parse_ocsp_request(der)
        assert info.nonce is None
        assert info.hash_algorithm.name == digest.name
        assert issuer_matches(info, ca.authority)

    @pytest.mark.parametrize("data", [b"", b"garbage", b"\x30\x03\x02\x01\x01"])
    def test_malformed(self, data: bytes) -> None:
        with pytest.raises(MalformedOCSPRequestError) as caught:
            parse_ocsp_request(data)
        assert caught.value.reason == "MalformedOCSPRequest"

    @pytest.mark.parametrize("size", [0, 129])
    def test_nonce_length_limits(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey], size: int
    ) -> None:
        ca = fixed_cas["ec"]
        leaf = leaf_for(ca, keys["ec"], FIXED_NOW)
        with pytest.raises(MalformedOCSPRequestError, match="nonce"):
            parse_ocsp_request(request_der(ca.authority.certificate, leaf.certificate, nonce=b"x" * size))
        parse_ocsp_request(request_der(ca.authority.certificate, leaf.certificate, nonce=b"x" * 128))


class TestResponses:
    def test_good_response_signed_by_ca(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        ca = fixed_cas["ec"]
        leaf = leaf_for(ca, keys["ec"], FIXED_NOW)
        info = parse_ocsp_request(request_der(ca.authority.certificate, leaf.certificate))
        seen: list[int] = []

        def lookup(serial: int) -> CertificateStatus:
            seen.append(serial)
            return CertificateStatus.good()

        der = build_ocsp_response(info, ca.authority, None, lookup, FIXED_NOW, VALIDITY)
        response = ocsp.load_der_ocsp_response(der)
        assert seen == [leaf.serial]
        assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
        assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert response.serial_number == leaf.serial
        assert response.this_update_utc == FIXED_NOW
        assert response.next_update_utc == FIXED_NOW + VALIDITY
        assert response.certificates == []
        ski = ca.authority.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert response.responder_key_hash == ski.digest
        assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 16
        public = ca.authority.certificate.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert response.signature_hash_algorithm is not None
        public.verify(
            response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm)
        )

    def test_revoked_response_and_reason(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        ca = fixed_cas["rsa"]
        leaf = leaf_for(ca, keys["ec"], FIXED_NOW)
        info = parse_ocsp_request(request_der(ca.authority.certificate, leaf.certificate, nonce=None))
        entry = RevokedEntry(leaf.serial, FIXED_NOW - timedelta(minutes=3), "cessationOfOperation")
        lookup = lookup_table({leaf.serial: CertificateStatus.from_entry(entry)})
        response = ocsp.load_der_ocsp_response(
            build_ocsp_response(info, ca.authority, None, lookup, FIXED_NOW, VALIDITY)
        )
        assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
        assert response.revocation_time_utc == FIXED_NOW - timedelta(minutes=3)
        assert response.revocation_reason is x509.ReasonFlags.cessation_of_operation
        with pytest.raises(x509.ExtensionNotFound):
            response.extensions.get_extension_for_class(x509.OCSPNonce)

    @pytest.mark.parametrize("explicit", [False, True])
    def test_unspecified_reason(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey], explicit: bool
    ) -> None:
        ca = fixed_cas["rsa"]
        leaf = leaf_for(ca, keys["ec"], FIXED_NOW)
        info = parse_ocsp_request(request_der(ca.authority.certificate, leaf.certificate))
        lookup = lookup_table({leaf.serial: CertificateStatus.revoked(FIXED_NOW)})
        der = build_ocsp_response(
            info, ca.authority, None, lookup, FIXED_NOW, VALIDITY, explicit_unspecified=explicit
        )
        response = ocsp.load_der_ocsp_response(der)
        assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
        assert response.revocation_reason is (x509.ReasonFlags.unspecified if explicit else None)

    def test_unknown_serial(self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]) -> None:
        ca = fixed_cas["ec"]
        leaf = leaf_for(ca, keys["ec"], FIXED_NOW)
        der = handle_ocsp_request(
            request_der(ca.authority.certificate, leaf.certificate),
            ca.authority,
            None,
            lookup_table({}),
            FIXED_NOW,
            VALIDITY,
        )
        assert ocsp.load_der_ocsp_response(der).certificate_status is ocsp.OCSPCertStatus.UNKNOWN

    def test_other_issuer_is_unauthorized(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        other = fixed_cas["rsa"]
        leaf = leaf_for(other, keys["ec"], FIXED_NOW)

        def lookup(serial: int) -> CertificateStatus:
            raise AssertionError("the lookup must not run for another issuer's serials")

        der = handle_ocsp_request(
            request_der(other.authority.certificate, leaf.certificate),
            fixed_cas["ec"].authority,
            None,
            lookup,
            FIXED_NOW,
            VALIDITY,
        )
        assert ocsp.load_der_ocsp_response(der).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED

    def test_same_name_other_key_is_unauthorized(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        from certctl_operator.pki import create_self_signed_ca

        ca = fixed_cas["ec"]
        twin = create_self_signed_ca("Fixed ec CA", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=2), FIXED_NOW)
        leaf = leaf_for(twin, keys["ec"], FIXED_NOW)
        der = handle_ocsp_request(
            request_der(twin.authority.certificate, leaf.certificate),
            ca.authority,
            None,
            lookup_table({}),
            FIXED_NOW,
            VALIDITY,
        )
        assert ocsp.load_der_ocsp_response(der).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED

    def test_malformed_request_response(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        der = handle_ocsp_request(
            b"nope", fixed_cas["ec"].authority, None, lookup_table({}), FIXED_NOW, VALIDITY
        )
        assert ocsp.load_der_ocsp_response(der).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST

    def test_lookup_failure_is_internal_error(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey], caplog: pytest.LogCaptureFixture
    ) -> None:
        ca = fixed_cas["ec"]
        leaf = leaf_for(ca, keys["ec"], FIXED_NOW)

        def lookup(serial: int) -> CertificateStatus:
            raise RuntimeError("store not loaded")

        der = handle_ocsp_request(
            request_der(ca.authority.certificate, leaf.certificate),
            ca.authority,
            None,
            lookup,
            FIXED_NOW,
            VALIDITY,
        )
        assert ocsp.load_der_ocsp_response(der).response_status is ocsp.OCSPResponseStatus.INTERNAL_ERROR
        assert "store not loaded" in caplog.text

    def test_delegated_responder_is_included(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        ca = fixed_cas["ed25519"]
        delegated = create_ocsp_responder_certificate(
            ca.authority, KeySpec(KeyAlgorithm.ECDSA), timedelta(days=1), FIXED_NOW
        )
        leaf = leaf_for(ca, keys["rsa"], FIXED_NOW)
        info = parse_ocsp_request(request_der(ca.authority.certificate, leaf.certificate))
        response = ocsp.load_der_ocsp_response(
            build_ocsp_response(info, ca.authority, delegated, lookup_table({}), FIXED_NOW, VALIDITY)
        )
        assert response.certificates == [delegated.certificate]
        assert response.signature_hash_algorithm is not None
        assert response.signature_hash_algorithm.name == "sha256"

    def test_expired_responder_is_internal_error(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        ca = fixed_cas["ec"]
        delegated = create_ocsp_responder_certificate(
            ca.authority, KeySpec(KeyAlgorithm.ECDSA), timedelta(hours=1), FIXED_NOW
        )
        leaf = leaf_for(ca, keys["ec"], FIXED_NOW)
        later = FIXED_NOW + timedelta(hours=2)
        der = handle_ocsp_request(
            request_der(ca.authority.certificate, leaf.certificate),
            ca.authority,
            delegated,
            lookup_table({}),
            later,
            VALIDITY,
        )
        assert ocsp.load_der_ocsp_response(der).response_status is ocsp.OCSPResponseStatus.INTERNAL_ERROR

    def test_invalid_validity(self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]) -> None:
        ca = fixed_cas["ec"]
        leaf = leaf_for(ca, keys["ec"], FIXED_NOW)
        info = parse_ocsp_request(request_der(ca.authority.certificate, leaf.certificate))
        with pytest.raises(InvalidRequestError):
            build_ocsp_response(info, ca.authority, None, lookup_table({}), FIXED_NOW, timedelta(0))


class TestStatus:
    def test_constructors(self) -> None:
        assert CertificateStatus.good().kind is CertificateStatusKind.GOOD
        assert CertificateStatus.unknown().kind is CertificateStatusKind.UNKNOWN
        revoked = CertificateStatus.revoked(FIXED_NOW, "keyCompromise")
        assert revoked.revoked_at == FIXED_NOW and revoked.reason is not None
        assert revoked.reason.code == 1
        assert CertificateStatus(CertificateStatusKind.REVOKED, FIXED_NOW).reason is not None

    def test_inconsistent_statuses(self) -> None:
        with pytest.raises(InvalidRequestError):
            CertificateStatus(CertificateStatusKind.REVOKED)
        with pytest.raises(InvalidRequestError):
            CertificateStatus(CertificateStatusKind.GOOD, FIXED_NOW)


class TestGetDecoding:
    def test_variants(self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]) -> None:
        ca = fixed_cas["ec"]
        leaf = leaf_for(ca, keys["ec"], FIXED_NOW)
        der = request_der(ca.authority.certificate, leaf.certificate)
        encoded = base64.b64encode(der).decode()
        assert decode_get_request(quote(encoded, safe="")) == der
        assert decode_get_request("/" + quote(encoded, safe="/")) == der
        assert decode_get_request(encoded) == der
        assert decode_get_request(encoded.rstrip("=")) == der
        assert decode_get_request(base64.urlsafe_b64encode(der).decode()) == der
        assert decode_get_request(encoded.replace("+", " ")) == der

    def test_binary_with_plus_and_slash(self) -> None:
        data = bytes(range(256))
        encoded = base64.b64encode(data).decode()
        assert "+" in encoded and "/" in encoded
        assert decode_get_request(quote(encoded, safe="")) == data

    @pytest.mark.parametrize("path", ["", "/", "%%%", "a"])
    def test_invalid(self, path: str) -> None:
        with pytest.raises(MalformedOCSPRequestError):
            decode_get_request(path)


class TestResponderCertificate:
    def test_extensions(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        ca = fixed_cas["rsa"]
        delegated = create_ocsp_responder_certificate(
            ca.authority, KeySpec(KeyAlgorithm.ED25519), timedelta(days=7), FIXED_NOW
        )
        cert = delegated.certificate
        cert.verify_directly_issued_by(ca.authority.certificate)
        assert cert.subject.rfc4514_string() == "CN=Fixed rsa CA OCSP Responder"
        extensions = cert.extensions
        assert list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
            ExtendedKeyUsageOID.OCSP_SIGNING
        ]
        assert extensions.get_extension_for_class(x509.OCSPNoCheck)
        assert extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
        assert not extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert cert.not_valid_after_utc == FIXED_NOW + timedelta(days=7)
        assert delegated.private_key_pem().startswith("-----BEGIN PRIVATE KEY-----")

    def test_clamped_to_ca(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        ca = fixed_cas["rsa"]
        delegated = create_ocsp_responder_certificate(
            ca.authority, KeySpec(KeyAlgorithm.ECDSA), timedelta(days=5000), FIXED_NOW, common_name="resp"
        )
        assert delegated.certificate.not_valid_after_utc == ca.authority.not_after

    def test_load(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        ca = fixed_cas["ec"]
        delegated = create_ocsp_responder_certificate(
            ca.authority, KeySpec(KeyAlgorithm.ECDSA), timedelta(days=1), FIXED_NOW
        )
        loaded = load_ocsp_responder(
            delegated.certificate_pem, delegated.private_key_pem(), ca.authority, FIXED_NOW
        )
        assert loaded.certificate == delegated.certificate

        def reason(
            cert_pem: str, key_pem: str, authority: GeneratedCA = ca, now: datetime = FIXED_NOW
        ) -> str:
            with pytest.raises(AuthorityError) as caught:
                load_ocsp_responder(cert_pem, key_pem, authority.authority, now)
            return caught.value.reason

        assert reason(delegated.certificate_pem, ca.private_key_pem) == "KeyMismatch"
        assert (
            reason(delegated.certificate_pem, delegated.private_key_pem(), fixed_cas["rsa"])
            == "InvalidCertificate"
        )
        assert (
            reason(delegated.certificate_pem, delegated.private_key_pem(), now=FIXED_NOW + timedelta(days=2))
            == "Expired"
        )
        assert reason(delegated.certificate_pem, "junk") == "InvalidKey"
        assert reason("junk", delegated.private_key_pem()) == "InvalidCertificate"
        key = delegated.private_key
        plain = issue_certificate(
            CertificateRequest(common_name="not a responder"), key, ca.authority, FIXED_NOW
        )
        assert (
            reason(plain.certificate_pem, private_key_to_pem(key, KeyEncoding.PKCS8)) == "InvalidCertificate"
        )


@requires_openssl
class TestOpenSSL:
    """openssl builds the requests and judges the responses."""

    def _exchange(
        self,
        tmp_path: Path,
        ca: GeneratedCA,
        leaf: IssuedCertificate,
        responder: OCSPResponder | None,
        lookup: Lookup,
        now: datetime,
        *request_options: str,
    ) -> tuple[Path, Path, Path, Path]:
        ca_path = write(tmp_path / "ca.pem", ca.certificate_pem)
        leaf_path = write(tmp_path / "leaf.pem", leaf.certificate_pem)
        req_path, resp_path = tmp_path / "req.der", tmp_path / "resp.der"
        result = openssl(
            "ocsp", *request_options, "-issuer", ca_path, "-cert", leaf_path, "-reqout", req_path
        )
        assert result.returncode == 0, result.stderr
        response = handle_ocsp_request(req_path.read_bytes(), ca.authority, responder, lookup, now, VALIDITY)
        write(resp_path, response)
        return ca_path, leaf_path, req_path, resp_path

    @pytest.mark.parametrize("signer", ["ca", "delegated"])
    @pytest.mark.parametrize("status", ["good", "revoked", "unknown"])
    def test_statuses_and_nonce(
        self,
        tmp_path: Path,
        cas: dict[str, GeneratedCA],
        keys: dict[str, PrivateKey],
        real_now: datetime,
        responder: OCSPResponder,
        signer: str,
        status: str,
    ) -> None:
        ca = cas["ec"]
        leaf = leaf_for(ca, keys["rsa"], real_now)
        table = {
            "good": {leaf.serial: CertificateStatus.good()},
            "revoked": {
                leaf.serial: CertificateStatus.revoked(real_now - timedelta(minutes=1), "keyCompromise")
            },
            "unknown": {},
        }[status]
        delegated = responder if signer == "delegated" else None
        ca_path, leaf_path, req_path, resp_path = self._exchange(
            tmp_path, ca, leaf, delegated, lookup_table(table), real_now
        )
        trust = write(tmp_path / "trust.pem", responder.certificate_pem) if delegated else ca_path

        # 1. The request openssl built is answered for the same nonce, and the signature verifies.
        result = openssl("ocsp", "-reqin", req_path, "-respin", resp_path, "-VAfile", trust, "-resp_text")
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "Response verify OK" in output
        assert "Nonce Verify error" not in output and "WARNING: no nonce" not in output
        nonce = parse_ocsp_request(req_path.read_bytes()).nonce
        assert nonce is not None
        assert "OCSP Nonce: \n            0410" + nonce.hex().upper() in output
        assert f"Cert Status: {status}" in output

        # 2. openssl's own status summary for the certificate, trusting only the CA.
        result = openssl(
            "ocsp",
            "-respin",
            resp_path,
            "-issuer",
            ca_path,
            "-cert",
            leaf_path,
            "-CAfile",
            ca_path,
            "-no_nonce",
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "Response verify OK" in output
        assert f"{leaf_path}: {status}" in output
        if status == "revoked":
            assert "Reason: keyCompromise" in output

    @pytest.mark.parametrize("ca_name", ["rsa", "ed25519"])
    def test_other_key_types(
        self,
        tmp_path: Path,
        cas: dict[str, GeneratedCA],
        keys: dict[str, PrivateKey],
        real_now: datetime,
        ca_name: str,
    ) -> None:
        ca = cas[ca_name]
        leaf = leaf_for(ca, keys["ed25519"], real_now)
        lookup = lookup_table({leaf.serial: CertificateStatus.revoked(real_now, "superseded")})
        ca_path, leaf_path, _, resp_path = self._exchange(
            tmp_path, ca, leaf, None, lookup, real_now, "-sha256"
        )
        result = openssl(
            "ocsp", "-sha256", "-respin", resp_path, "-issuer", ca_path, "-cert", leaf_path,
            "-VAfile", ca_path, "-no_nonce",
        )  # fmt: skip
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert f"{leaf_path}: revoked" in output and "Reason: superseded" in output

    def test_unauthorized_for_another_issuer(
        self, tmp_path: Path, cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey], real_now: datetime
    ) -> None:
        other = cas["rsa"]
        leaf = leaf_for(other, keys["ec"], real_now)
        other_path = write(tmp_path / "other.pem", other.certificate_pem)
        leaf_path = write(tmp_path / "leaf.pem", leaf.certificate_pem)
        req_path = tmp_path / "req.der"
        assert openssl("ocsp", "-issuer", other_path, "-cert", leaf_path, "-reqout", req_path).returncode == 0
        response = handle_ocsp_request(
            req_path.read_bytes(), cas["ec"].authority, None, lookup_table({}), real_now, VALIDITY
        )
        resp_path = write(tmp_path / "resp.der", response)
        result = openssl("ocsp", "-respin", resp_path, "-resp_text", "-noverify")
        assert "unauthorized (6)" in result.stdout + result.stderr

    def test_malformed_and_multi_certificate_requests(
        self, tmp_path: Path, cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey], real_now: datetime
    ) -> None:
        ca = cas["ec"]
        first, second = (
            leaf_for(ca, keys["ec"], real_now, "one.example"),
            leaf_for(ca, keys["rsa"], real_now, "two.example"),
        )
        ca_path = write(tmp_path / "ca.pem", ca.certificate_pem)
        one = write(tmp_path / "one.pem", first.certificate_pem)
        two = write(tmp_path / "two.pem", second.certificate_pem)
        req_path = tmp_path / "req.der"
        result = openssl("ocsp", "-issuer", ca_path, "-cert", one, "-cert", two, "-reqout", req_path)
        assert result.returncode == 0, result.stderr
        for request in (req_path.read_bytes(), b"\x30\x00", req_path.read_bytes()[:-10]):
            response = handle_ocsp_request(request, ca.authority, None, lookup_table({}), real_now, VALIDITY)
            resp_path = write(tmp_path / "resp.der", response)
            result = openssl("ocsp", "-respin", resp_path, "-resp_text", "-noverify")
            assert "malformedrequest (1)" in result.stdout + result.stderr

    def test_responder_certificate_text(
        self, tmp_path: Path, responder: OCSPResponder, cas: dict[str, GeneratedCA]
    ) -> None:
        path = write(tmp_path / "responder.pem", responder.certificate_pem)
        result = openssl("x509", "-in", path, "-noout", "-text")
        assert result.returncode == 0, result.stderr
        assert "OCSP Signing" in result.stdout
        assert "OCSP No Check" in result.stdout
        ca_path = write(tmp_path / "ca.pem", cas["ec"].certificate_pem)
        result = openssl("verify", "-CAfile", ca_path, "-purpose", "ocsphelper", path)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_get_request_from_openssl(
        self, tmp_path: Path, cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey], real_now: datetime
    ) -> None:
        ca = cas["ec"]
        leaf = leaf_for(ca, keys["ec"], real_now)
        ca_path = write(tmp_path / "ca.pem", ca.certificate_pem)
        leaf_path = write(tmp_path / "leaf.pem", leaf.certificate_pem)
        req_path = tmp_path / "req.der"
        assert openssl("ocsp", "-issuer", ca_path, "-cert", leaf_path, "-reqout", req_path).returncode == 0
        der = req_path.read_bytes()
        path = quote(base64.b64encode(der).decode(), safe="")
        assert parse_ocsp_request(decode_get_request(path)).serial == leaf.serial
