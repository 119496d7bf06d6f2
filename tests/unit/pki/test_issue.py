from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from certctl_operator.pki import (
    DEFAULT_BACKDATE,
    CertificateExpiredError,
    CertificateNotYetValidError,
    CertificateRequest,
    GeneratedCA,
    InvalidRequestError,
    KeyAlgorithm,
    KeySpec,
    PrivateKey,
    SigningAuthority,
    create_self_signed_ca,
    effective_usages,
    generate_private_key,
    inspect_certificate,
    issue_certificate,
    load_signing_authority,
    planned_not_after,
    random_serial,
)
from certctl_operator.pki.usages import ALIASES, EXTENDED_KEY_USAGES, KEY_USAGES

from .conftest import FIXED_NOW, openssl, requires_openssl, write

FULL_REQUEST = CertificateRequest(
    common_name="web.example.com",
    dns_names=["web.example.com", "*.web.example.com"],
    ip_addresses=["10.1.2.3", "2001:db8::1"],
    uris=["spiffe://cluster.local/ns/default/sa/web"],
    email_addresses=["ops@example.com"],
    organizations=["Example Org"],
    organizational_units=["Platform"],
    countries=["de"],
    localities=["Berlin"],
    provinces=["Berlin"],
    duration=timedelta(days=30),
    crl_distribution_url="http://ca.example.com/crl.der",
    ocsp_url="http://ca.example.com/ocsp",
)


_E = TypeVar("_E", bound=x509.ExtensionType)


def ext(certificate: x509.Certificate, kind: type[_E]) -> x509.Extension[_E]:
    return certificate.extensions.get_extension_for_class(kind)


class TestExtensions:
    def test_leaf_signed_by_ca(self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]) -> None:
        authority = fixed_cas["ec"].authority
        issued = issue_certificate(FULL_REQUEST, keys["ec"].public_key(), authority, FIXED_NOW)
        cert = issued.certificate

        assert cert.issuer == authority.subject
        cert.verify_directly_issued_by(authority.certificate)
        assert cert.subject.rfc4514_string() == (
            "CN=web.example.com,OU=Platform,O=Example Org,L=Berlin,ST=Berlin,C=DE"
        )
        basic = ext(cert, x509.BasicConstraints)
        assert basic.critical and basic.value.ca is False
        usage = ext(cert, x509.KeyUsage)
        assert usage.critical
        assert usage.value.digital_signature and not usage.value.key_encipherment
        assert not usage.value.key_cert_sign
        eku = ext(cert, x509.ExtendedKeyUsage)
        assert not eku.critical and list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH]
        san = ext(cert, x509.SubjectAlternativeName)
        assert not san.critical
        assert san.value.get_values_for_type(x509.DNSName) == ["web.example.com", "*.web.example.com"]
        assert san.value.get_values_for_type(x509.IPAddress) == [
            ipaddress.ip_address("10.1.2.3"),
            ipaddress.ip_address("2001:db8::1"),
        ]
        assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
            "spiffe://cluster.local/ns/default/sa/web"
        ]
        assert san.value.get_values_for_type(x509.RFC822Name) == ["ops@example.com"]
        ski = ext(cert, x509.SubjectKeyIdentifier).value
        assert ski == x509.SubjectKeyIdentifier.from_public_key(keys["ec"].public_key())
        aki = ext(cert, x509.AuthorityKeyIdentifier).value
        ca_ski = ext(authority.certificate, x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ca_ski.digest
        crl_dp = ext(cert, x509.CRLDistributionPoints).value
        assert crl_dp[0].full_name == [x509.UniformResourceIdentifier("http://ca.example.com/crl.der")]
        aia = ext(cert, x509.AuthorityInformationAccess).value
        assert [(d.access_method, d.access_location.value) for d in aia] == [
            (AuthorityInformationAccessOID.OCSP, "http://ca.example.com/ocsp")
        ]
        assert issued.usages == ("digital signature", "server auth")

    def test_rsa_leaf_defaults_add_key_encipherment(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        request = CertificateRequest(dns_names=["a.example.com"])
        issued = issue_certificate(request, keys["rsa"], fixed_cas["rsa"].authority, FIXED_NOW)
        usage = ext(issued.certificate, x509.KeyUsage).value
        assert usage.digital_signature and usage.key_encipherment
        assert issued.usages == ("digital signature", "key encipherment", "server auth")

    def test_san_is_critical_when_subject_is_empty(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        request = CertificateRequest(dns_names=["a.example.com"])
        issued = issue_certificate(request, keys["ec"], fixed_cas["ec"].authority, FIXED_NOW)
        assert len(issued.certificate.subject) == 0
        assert ext(issued.certificate, x509.SubjectAlternativeName).critical

    def test_no_optional_extensions_unless_asked(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        request = CertificateRequest(common_name="only-cn")
        cert = issue_certificate(request, keys["ec"], fixed_cas["ec"].authority, FIXED_NOW).certificate
        present = {type(e.value) for e in cert.extensions}
        assert x509.SubjectAlternativeName not in present
        assert x509.CRLDistributionPoints not in present
        assert x509.AuthorityInformationAccess not in present

    def test_ca_certificate(self, keys: dict[str, PrivateKey]) -> None:
        request = CertificateRequest(common_name="Root", is_ca=True, duration=timedelta(days=3650))
        issued = issue_certificate(request, keys["ec"], None, FIXED_NOW)
        cert = issued.certificate
        assert cert.issuer == cert.subject
        assert ext(cert, x509.BasicConstraints).value.ca
        usage = ext(cert, x509.KeyUsage).value
        assert usage.key_cert_sign and usage.crl_sign and usage.digital_signature
        with pytest.raises(x509.ExtensionNotFound):
            ext(cert, x509.ExtendedKeyUsage)
        assert (
            ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier
            == ext(cert, x509.SubjectKeyIdentifier).value.digest
        )
        assert issued.chain_pems == ()
        assert issued.ca_pem == issued.certificate_pem == issued.full_chain_pem

    def test_ca_always_gets_cert_sign_and_crl_sign(self, keys: dict[str, PrivateKey]) -> None:
        request = CertificateRequest(
            common_name="Sub", is_ca=True, usages=["digital signature", "server auth"]
        )
        issued = issue_certificate(request, keys["ec"], None, FIXED_NOW)
        usage = ext(issued.certificate, x509.KeyUsage).value
        assert usage.key_cert_sign and usage.crl_sign
        assert issued.usages == ("digital signature", "cert sign", "crl sign", "server auth")

    def test_extra_extensions(self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]) -> None:
        issued = issue_certificate(
            CertificateRequest(common_name="x"),
            keys["ec"],
            fixed_cas["ec"].authority,
            FIXED_NOW,
            extra_extensions=[(x509.OCSPNoCheck(), False)],
        )
        assert ext(issued.certificate, x509.OCSPNoCheck)


class TestUsages:
    @pytest.mark.parametrize("name", sorted([*KEY_USAGES, *EXTENDED_KEY_USAGES]))
    def test_every_usage_name_reaches_the_certificate(
        self, name: str, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        usages = [name, "key agreement"] if name in ("encipher only", "decipher only") else [name]
        is_ca = name == "cert sign"
        request = CertificateRequest(common_name="usage", usages=usages, is_ca=is_ca)
        issued = issue_certificate(request, keys["ec"], fixed_cas["ec"].authority, FIXED_NOW)
        assert name in inspect_certificate(issued.certificate_pem).usages

    @pytest.mark.parametrize(("alias", "canonical"), sorted(ALIASES.items()))
    def test_aliases(self, alias: str, canonical: str, keys: dict[str, PrivateKey]) -> None:
        request = CertificateRequest(common_name="x", usages=[alias.upper()])
        assert canonical in effective_usages(request, keys["ec"])

    def test_client_and_server_auth(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        request = CertificateRequest(
            common_name="x", usages=["Client Auth", "server auth", "digital signature"]
        )
        cert = issue_certificate(request, keys["ec"], fixed_cas["ec"].authority, FIXED_NOW).certificate
        assert set(ext(cert, x509.ExtendedKeyUsage).value) == {
            ExtendedKeyUsageOID.CLIENT_AUTH,
            ExtendedKeyUsageOID.SERVER_AUTH,
        }

    def test_defaults_depend_on_key_algorithm(self, keys: dict[str, PrivateKey]) -> None:
        request = CertificateRequest(common_name="x")
        assert "key encipherment" in effective_usages(request, keys["rsa"])
        assert "key encipherment" not in effective_usages(request, keys["ed25519"])
        assert effective_usages(request, KeyAlgorithm.ECDSA) == ("digital signature", "server auth")


class TestValidityAndSerial:
    def test_backdated_not_before_and_exact_not_after(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        now = FIXED_NOW + timedelta(microseconds=654321)
        request = CertificateRequest(common_name="x", duration=timedelta(days=10))
        issued = issue_certificate(request, keys["ec"], fixed_cas["ec"].authority, now)
        assert issued.not_before == FIXED_NOW - DEFAULT_BACKDATE
        assert issued.not_after == FIXED_NOW + timedelta(days=10)
        assert issued.certificate.not_valid_before_utc == issued.not_before
        assert issued.certificate.not_valid_after_utc == issued.not_after
        assert not issued.not_after_clamped

    def test_not_after_is_clamped_to_the_ca(self, keys: dict[str, PrivateKey]) -> None:
        ca = create_self_signed_ca("Short CA", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=10), FIXED_NOW)
        request = CertificateRequest(common_name="x", duration=timedelta(days=90))
        issued = issue_certificate(request, keys["ec"], ca.authority, FIXED_NOW + timedelta(days=1))
        assert issued.not_after_clamped
        assert issued.not_after == ca.authority.not_after
        assert issued.certificate.not_valid_after_utc == ca.authority.not_after

    def test_not_before_never_precedes_the_ca(self, keys: dict[str, PrivateKey]) -> None:
        ca = create_self_signed_ca("New CA", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=10), FIXED_NOW)
        issued = issue_certificate(
            CertificateRequest(common_name="x"),
            keys["ec"],
            ca.authority,
            FIXED_NOW,
            backdate=timedelta(days=1),
        )
        assert issued.not_before == ca.authority.not_before

    def test_expired_ca_refuses_to_sign(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        later = fixed_cas["ec"].authority.not_after + timedelta(seconds=1)
        with pytest.raises(CertificateExpiredError) as caught:
            issue_certificate(
                CertificateRequest(common_name="x"), keys["ec"], fixed_cas["ec"].authority, later
            )
        assert caught.value.reason == "Expired"

    def test_not_yet_valid_ca_refuses_to_sign(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        earlier = fixed_cas["ec"].authority.not_before - timedelta(days=1)
        with pytest.raises(CertificateNotYetValidError) as caught:
            issue_certificate(
                CertificateRequest(common_name="x"), keys["ec"], fixed_cas["ec"].authority, earlier
            )
        assert caught.value.reason == "NotYetValid"

    def test_explicit_serial(self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]) -> None:
        issued = issue_certificate(
            CertificateRequest(common_name="x"),
            keys["ec"],
            fixed_cas["ec"].authority,
            FIXED_NOW,
            serial=0xABC,
        )
        assert issued.certificate.serial_number == 0xABC
        assert issued.serial == 0xABC
        assert issued.serial_hex == "0ABC"

    @pytest.mark.parametrize("serial", [0, -1, 1 << 159])
    def test_invalid_serials(self, serial: int, keys: dict[str, PrivateKey]) -> None:
        with pytest.raises(InvalidRequestError):
            issue_certificate(CertificateRequest(common_name="x"), keys["ec"], None, FIXED_NOW, serial=serial)

    def test_random_serials_are_positive_128_bit_and_distinct(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        serials = {
            issue_certificate(
                CertificateRequest(common_name="x"), keys["ec"], fixed_cas["ec"].authority, FIXED_NOW
            ).serial
            for _ in range(20)
        }
        assert len(serials) == 20
        assert all(0 < s < 1 << 128 for s in serials)
        assert max(serials).bit_length() > 100

    def test_fingerprint(self, keys: dict[str, PrivateKey]) -> None:
        from cryptography.hazmat.primitives import hashes

        issued = issue_certificate(CertificateRequest(common_name="x"), keys["ec"], None, FIXED_NOW)
        assert issued.fingerprint_sha256 == issued.certificate.fingerprint(hashes.SHA256()).hex().upper()
        assert len(issued.fingerprint_sha256) == 64

    def test_naive_now_is_refused(self, keys: dict[str, PrivateKey]) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            issue_certificate(CertificateRequest(common_name="x"), keys["ec"], None, datetime(2030, 1, 1))

    def test_non_utc_now_is_converted(self, keys: dict[str, PrivateKey]) -> None:
        from datetime import timezone

        local = FIXED_NOW.astimezone(timezone(timedelta(hours=5)))
        issued = issue_certificate(CertificateRequest(common_name="x"), keys["ec"], None, local)
        assert issued.not_before == FIXED_NOW - DEFAULT_BACKDATE
        assert issued.not_before.tzinfo is UTC


class TestValidation:
    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"common_name": None}, "names nothing"),
            ({"common_name": "x" * 65}, "commonName"),
            ({"dns_names": ["bad_label-.example.com"]}, "invalid label"),
            ({"dns_names": ["a.*.example.com"]}, "wildcard"),
            ({"dns_names": ["*"]}, "domain after the wildcard"),
            ({"dns_names": ["bücher.example"]}, "xn--"),
            ({"dns_names": ["a..example.com"]}, "not valid"),
            ({"dns_names": [""]}, "empty"),
            ({"ip_addresses": ["10.0.0.300"]}, "IP address"),
            ({"ip_addresses": ["10.0.0.0/8"]}, "IP address"),
            ({"uris": ["no-scheme"]}, "URI"),
            ({"uris": ["http://exa mple"]}, "URI"),
            ({"email_addresses": ["nobody"]}, "email"),
            ({"email_addresses": ["a@b@c"]}, "email"),
            ({"countries": ["DEU"]}, "two-letter"),
            ({"organizations": [""]}, "organizations"),
            ({"duration": timedelta(0)}, "duration"),
            ({"duration": timedelta(days=-1)}, "duration"),
            ({"usages": ["teleportation"]}, "unknown usage"),
            ({"usages": ["cert sign"]}, "only allowed on a CA"),
            ({"usages": ["encipher only"]}, "key agreement"),
            ({"crl_distribution_url": "ldap://ca/crl"}, "crlDistributionURL"),
            ({"ocsp_url": "ocsp.example.com"}, "ocspURL"),
        ],
    )
    def test_invalid_requests(
        self, changes: dict[str, object], message: str, keys: dict[str, PrivateKey]
    ) -> None:
        base: dict[str, object] = {"common_name": "ok.example.com"}
        request = CertificateRequest(**{**base, **changes})  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError, match=message) as caught:
            issue_certificate(request, keys["ec"], None, FIXED_NOW)
        assert caught.value.reason == "InvalidRequest"

    def test_all_problems_are_reported_at_once(self, keys: dict[str, PrivateKey]) -> None:
        request = CertificateRequest(common_name="x", ip_addresses=["nope"], countries=["Germany"])
        with pytest.raises(InvalidRequestError) as caught:
            issue_certificate(request, keys["ec"], None, FIXED_NOW)
        assert "IP address" in caught.value.message and "two-letter" in caught.value.message

    def test_ca_needs_a_subject(self, keys: dict[str, PrivateKey]) -> None:
        with pytest.raises(InvalidRequestError, match="CA certificate needs a subject"):
            issue_certificate(
                CertificateRequest(dns_names=["ca.example"], is_ca=True), keys["ec"], None, FIXED_NOW
            )

    def test_valid_names(self, keys: dict[str, PrivateKey]) -> None:
        request = CertificateRequest(
            dns_names=["xn--bcher-kva.example", "_srv.example.com", "*.a-b.example", "localhost"],
            email_addresses=["first.last+tag@example.com"],
        )
        issue_certificate(request, keys["ec"], None, FIXED_NOW)

    def test_single_string_instead_of_list(self) -> None:
        with pytest.raises(TypeError, match="list of strings"):
            CertificateRequest(dns_names="a.example.com")

    def test_lists_become_tuples(self) -> None:
        request = CertificateRequest(dns_names=["a"], usages=["server auth"])
        assert request.dns_names == ("a",) and request.usages == ("server auth",)

    def test_self_signed_needs_private_key(self, keys: dict[str, PrivateKey]) -> None:
        with pytest.raises(InvalidRequestError, match="private key"):
            issue_certificate(CertificateRequest(common_name="x"), keys["ec"].public_key(), None, FIXED_NOW)

    def test_weak_subject_keys_are_refused(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        from certctl_operator.pki import UnsupportedKeyError

        weak = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the point is to be refused
        with pytest.raises(UnsupportedKeyError):
            issue_certificate(CertificateRequest(common_name="x"), weak, fixed_cas["ec"].authority, FIXED_NOW)


class TestChains:
    def test_intermediate_chain(self, keys: dict[str, PrivateKey]) -> None:
        root = create_self_signed_ca("Root", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=100), FIXED_NOW)
        intermediate_key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA))
        intermediate = issue_certificate(
            CertificateRequest(common_name="Intermediate", is_ca=True, duration=timedelta(days=50)),
            intermediate_key,
            root.authority,
            FIXED_NOW,
        )
        authority = SigningAuthority(
            intermediate.certificate, intermediate_key, (root.authority.certificate,)
        )
        leaf = issue_certificate(CertificateRequest(common_name="leaf"), keys["ec"], authority, FIXED_NOW)
        assert leaf.chain_pems == (intermediate.certificate_pem, root.certificate_pem)
        assert leaf.full_chain_pem == leaf.certificate_pem + intermediate.certificate_pem
        assert leaf.ca_pem == root.certificate_pem


@requires_openssl
class TestOpenSSL:
    @pytest.mark.parametrize("ca_name", ["rsa", "ec", "ed25519"])
    @pytest.mark.parametrize("leaf_name", ["rsa", "ec", "ed25519"])
    def test_openssl_verifies_issued_certificates(
        self,
        tmp_path: Path,
        cas: dict[str, GeneratedCA],
        keys: dict[str, PrivateKey],
        real_now: datetime,
        ca_name: str,
        leaf_name: str,
    ) -> None:
        ca = cas[ca_name]
        issued = issue_certificate(
            CertificateRequest(common_name="svc", dns_names=["svc.example.com"], duration=timedelta(hours=1)),
            keys[leaf_name],
            ca.authority,
            real_now,
        )
        ca_path = write(tmp_path / "ca.pem", ca.certificate_pem)
        leaf_path = write(tmp_path / "leaf.pem", issued.full_chain_pem)
        result = openssl("verify", "-CAfile", ca_path, "-purpose", "sslserver", leaf_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{leaf_path}: OK" in result.stdout
        # Only "server auth" was granted, so the certificate is no TLS client certificate.
        result = openssl("verify", "-CAfile", ca_path, "-purpose", "sslclient", leaf_path)
        assert result.returncode != 0

    @pytest.mark.parametrize("name", ["rsa", "ec", "ed25519"])
    def test_openssl_verifies_ca_and_self_signed(
        self,
        tmp_path: Path,
        cas: dict[str, GeneratedCA],
        keys: dict[str, PrivateKey],
        real_now: datetime,
        name: str,
    ) -> None:
        ca_path = write(tmp_path / "ca.pem", cas[name].certificate_pem)
        result = openssl("verify", "-CAfile", ca_path, ca_path)
        assert result.returncode == 0, result.stdout + result.stderr
        self_signed = issue_certificate(
            CertificateRequest(common_name="self", dns_names=["self.example"]), keys[name], None, real_now
        )
        path = write(tmp_path / "self.pem", self_signed.certificate_pem)
        result = openssl("verify", "-CAfile", path, path)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_openssl_verifies_an_intermediate_chain(
        self, tmp_path: Path, cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey], real_now: datetime
    ) -> None:
        root = cas["rsa"]
        intermediate_key = keys["ec"]
        intermediate = issue_certificate(
            CertificateRequest(common_name="Intermediate", is_ca=True, duration=timedelta(days=2)),
            intermediate_key,
            root.authority,
            real_now,
        )
        authority = SigningAuthority(
            intermediate.certificate, intermediate_key, (root.authority.certificate,)
        )
        leaf = issue_certificate(
            CertificateRequest(dns_names=["deep.example"]), keys["ed25519"], authority, real_now
        )
        bundle = write(tmp_path / "tls.crt", leaf.full_chain_pem)
        ca_path = write(tmp_path / "ca.crt", leaf.ca_pem)
        result = openssl("verify", "-CAfile", ca_path, "-untrusted", bundle, bundle)
        assert result.returncode == 0, result.stdout + result.stderr

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("rsa", ["Public Key Algorithm: rsaEncryption", "Public-Key: (2048 bit)"]),
            ("ec", ["Public Key Algorithm: id-ecPublicKey", "NIST CURVE: P-256"]),
            ("ed25519", ["Public Key Algorithm: ED25519"]),
        ],
    )
    def test_openssl_shows_sans_and_key_type(
        self,
        tmp_path: Path,
        fixed_cas: dict[str, GeneratedCA],
        keys: dict[str, PrivateKey],
        name: str,
        expected: list[str],
    ) -> None:
        issued = issue_certificate(FULL_REQUEST, keys[name], fixed_cas["rsa"].authority, FIXED_NOW)
        path = write(tmp_path / "leaf.pem", issued.certificate_pem)
        result = openssl("x509", "-in", path, "-noout", "-text")
        assert result.returncode == 0, result.stderr
        text = result.stdout
        for line in expected:
            assert line in text
        assert (
            "DNS:web.example.com, DNS:*.web.example.com, IP Address:10.1.2.3, "
            "IP Address:2001:DB8:0:0:0:0:0:1, URI:spiffe://cluster.local/ns/default/sa/web, "
            "email:ops@example.com"
        ) in text
        assert "CA:FALSE" in text
        assert "TLS Web Server Authentication" in text
        assert "URI:http://ca.example.com/crl.der" in text
        assert "OCSP - URI:http://ca.example.com/ocsp" in text

    def test_openssl_agrees_on_serial_and_fingerprint(
        self, tmp_path: Path, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        for serial in (None, 0x0A, 0xFF00, 1 << 127):
            issued = issue_certificate(
                CertificateRequest(common_name="x"), keys["ec"], fixed_cas["ec"].authority, FIXED_NOW, serial
            )
            path = write(tmp_path / "leaf.pem", issued.certificate_pem)
            result = openssl("x509", "-in", path, "-noout", "-serial", "-fingerprint", "-sha256")
            assert result.returncode == 0, result.stderr
            assert f"serial={issued.serial_hex}\n" in result.stdout
            assert f"Fingerprint={issued.fingerprint_sha256}" in result.stdout.replace(":", "")


def test_path_length_zero_ca_cannot_issue_cas(keys: dict[str, PrivateKey]) -> None:
    from cryptography.hazmat.primitives import hashes

    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "pathlen0")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(keys["rsa"].public_key())
        .serial_number(7)
        .not_valid_before(FIXED_NOW - timedelta(days=1))
        .not_valid_after(FIXED_NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(keys["rsa"], hashes.SHA256())
    )
    authority = SigningAuthority(ca_cert, keys["rsa"])
    with pytest.raises(InvalidRequestError, match="pathLenConstraint"):
        issue_certificate(CertificateRequest(common_name="sub", is_ca=True), keys["ec"], authority, FIXED_NOW)
    issue_certificate(CertificateRequest(common_name="leaf"), keys["ec"], authority, FIXED_NOW)


def test_the_planned_notafter_and_serial_are_the_ones_the_certificate_gets(
    keys: dict[str, PrivateKey], fixed_cas: dict[str, GeneratedCA]
) -> None:
    ca = fixed_cas["ec"]
    authority = load_signing_authority(ca.certificate_pem, ca.private_key_pem, FIXED_NOW)
    now = FIXED_NOW + timedelta(microseconds=123456)
    for duration in (timedelta(hours=1), timedelta(days=3650)):  # the second outlives the CA
        request = CertificateRequest(dns_names=["a.example.com"], duration=duration)
        serial = random_serial()
        planned = planned_not_after(request, authority, now)
        issued = issue_certificate(request, keys["ec"], authority, now, serial)
        assert (issued.serial, issued.not_after) == (serial, planned)
    assert planned == authority.not_after
