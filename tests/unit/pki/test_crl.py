from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from certctl_operator.pki import (
    ACCEPTED_REASONS,
    CertificateRequest,
    CRLReason,
    CRLSignNotPermittedError,
    GeneratedCA,
    InvalidRequestError,
    InvalidRevocationError,
    PrivateKey,
    RevokedEntry,
    SigningAuthority,
    build_crl,
    crl_der_to_pem,
    crl_pem_to_der,
    issue_certificate,
    parse_reason,
    prune_expired,
    read_crl,
)

from .conftest import FIXED_NOW, openssl, requires_openssl, write

OPENSSL_REASON_TEXT = {
    "unspecified": "Unspecified",
    "keyCompromise": "Key Compromise",
    "cACompromise": "CA Compromise",
    "affiliationChanged": "Affiliation Changed",
    "superseded": "Superseded",
    "cessationOfOperation": "Cessation Of Operation",
    "certificateHold": "Certificate Hold",
    "privilegeWithdrawn": "Privilege Withdrawn",
}


class TestReasons:
    def test_the_eight_accepted_reasons(self) -> None:
        assert [(r.name, r.code) for r in ACCEPTED_REASONS.values()] == [
            ("unspecified", 0),
            ("keyCompromise", 1),
            ("cACompromise", 2),
            ("affiliationChanged", 3),
            ("superseded", 4),
            ("cessationOfOperation", 5),
            ("certificateHold", 6),
            ("privilegeWithdrawn", 9),
        ]
        for name, reason in ACCEPTED_REASONS.items():
            assert reason.flag.value == name

    @pytest.mark.parametrize("name", list(ACCEPTED_REASONS))
    def test_parse_by_name_code_and_flag(self, name: str) -> None:
        reason = ACCEPTED_REASONS[name]
        assert parse_reason(name) is reason
        assert parse_reason(name.upper()) is reason
        assert parse_reason(reason.code) is reason
        assert parse_reason(reason.flag) is reason
        assert parse_reason(reason) is reason

    @pytest.mark.parametrize(
        ("value", "why"),
        [
            ("removeFromCRL", "delta CRLs"),
            (8, "delta CRLs"),
            (x509.ReasonFlags.remove_from_crl, "delete the revocation entry"),
            ("aACompromise", "attribute"),
            (10, "attribute"),
            (x509.ReasonFlags.aa_compromise, "attribute"),
        ],
    )
    def test_refused_reasons_say_why(self, value: str | int | x509.ReasonFlags, why: str) -> None:
        with pytest.raises(InvalidRevocationError, match=why) as caught:
            parse_reason(value)
        assert caught.value.reason == "InvalidRevocation"

    @pytest.mark.parametrize("value", ["stolen", 7, 11, -1, True])
    def test_unknown_reasons(self, value: str | int) -> None:
        with pytest.raises(InvalidRevocationError):
            parse_reason(value)


class TestEntries:
    def test_serial_as_hex(self) -> None:
        entry = RevokedEntry("0a:BC", FIXED_NOW, "keyCompromise")
        assert entry.serial == 0xABC and entry.serial_hex == "0ABC"
        assert entry.reason is ACCEPTED_REASONS["keyCompromise"]
        assert RevokedEntry(0xABC, FIXED_NOW, 1) == entry

    def test_default_reason_is_unspecified(self) -> None:
        assert RevokedEntry(1, FIXED_NOW).reason.name == "unspecified"

    @pytest.mark.parametrize("serial", ["xyz", "", 0, -5, 1 << 159])
    def test_invalid_serials(self, serial: int | str) -> None:
        with pytest.raises(InvalidRevocationError):
            RevokedEntry(serial, FIXED_NOW)

    def test_naive_times_are_refused(self) -> None:
        with pytest.raises(InvalidRevocationError, match="timezone-aware"):
            RevokedEntry(1, datetime(2030, 1, 1))
        with pytest.raises(InvalidRevocationError, match="timezone-aware"):
            RevokedEntry(1, FIXED_NOW, not_after=datetime(2030, 1, 1))

    def test_prune_expired(self) -> None:
        keep_forever = RevokedEntry(1, FIXED_NOW)
        expired_long_ago = RevokedEntry(2, FIXED_NOW, not_after=FIXED_NOW - timedelta(days=30))
        expired_recently = RevokedEntry(3, FIXED_NOW, not_after=FIXED_NOW - timedelta(hours=1))
        still_valid = RevokedEntry(4, FIXED_NOW, not_after=FIXED_NOW + timedelta(days=1))
        entries = [keep_forever, expired_long_ago, expired_recently, still_valid]
        assert prune_expired(entries, FIXED_NOW) == [keep_forever, still_valid]
        assert prune_expired(entries, FIXED_NOW, grace=timedelta(days=1)) == [
            keep_forever,
            expired_recently,
            still_valid,
        ]


class TestBuild:
    @pytest.mark.parametrize("ca_name", ["rsa", "ec", "ed25519"])
    def test_crl_contents(self, fixed_cas: dict[str, GeneratedCA], ca_name: str) -> None:
        authority = fixed_cas[ca_name].authority
        entries = [
            RevokedEntry(0x30, FIXED_NOW - timedelta(hours=2), "superseded"),
            RevokedEntry(0x10, FIXED_NOW - timedelta(hours=1), "keyCompromise"),
            RevokedEntry(0x20, FIXED_NOW - timedelta(hours=3)),
        ]
        der = build_crl(authority, entries, 7, FIXED_NOW, timedelta(hours=6))
        crl = x509.load_der_x509_crl(der)
        assert crl.is_signature_valid(authority.certificate.public_key())  # type: ignore[arg-type]
        assert crl.issuer == authority.subject
        assert crl.last_update_utc == FIXED_NOW
        assert crl.next_update_utc == FIXED_NOW + timedelta(hours=6)
        number = crl.extensions.get_extension_for_class(x509.CRLNumber)
        assert number.value.crl_number == 7 and not number.critical
        aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = authority.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ski.digest
        assert [r.serial_number for r in crl] == [0x10, 0x20, 0x30]
        unspecified = crl.get_revoked_certificate_by_serial_number(0x20)
        assert unspecified is not None
        with pytest.raises(x509.ExtensionNotFound):
            unspecified.extensions.get_extension_for_class(x509.CRLReason)
        if isinstance(authority.private_key, ed25519.Ed25519PrivateKey):
            assert crl.signature_hash_algorithm is None
        else:
            assert crl.signature_hash_algorithm is not None
            assert crl.signature_hash_algorithm.name == "sha256"

    @pytest.mark.parametrize("explicit", [False, True])
    def test_every_reason_round_trips(self, fixed_cas: dict[str, GeneratedCA], explicit: bool) -> None:
        entries = [
            RevokedEntry(index + 1, FIXED_NOW - timedelta(minutes=index), reason)
            for index, reason in enumerate(ACCEPTED_REASONS.values())
        ]
        der = build_crl(
            fixed_cas["ec"].authority, entries, 1, FIXED_NOW, timedelta(days=1), explicit_unspecified=explicit
        )
        info = read_crl(der)
        assert info.entries == tuple(entries)
        assert info.crl_number == 1
        assert info.issuer == "CN=Fixed ec CA"
        assert info.this_update == FIXED_NOW and info.next_update == FIXED_NOW + timedelta(days=1)
        crl = x509.load_der_x509_crl(der)
        first = crl.get_revoked_certificate_by_serial_number(1)
        assert first is not None
        has_reason = any(isinstance(e.value, x509.CRLReason) for e in first.extensions)
        assert has_reason is explicit

    def test_empty_crl(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        info = read_crl(build_crl(fixed_cas["rsa"].authority, [], 0, FIXED_NOW, timedelta(days=1)))
        assert info.entries == () and info.crl_number == 0

    def test_pem_helpers(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        der = build_crl(
            fixed_cas["rsa"].authority, [RevokedEntry(5, FIXED_NOW)], 3, FIXED_NOW, timedelta(days=1)
        )
        pem = crl_der_to_pem(der)
        assert pem.startswith("-----BEGIN X509 CRL-----\n") and pem.endswith("-----END X509 CRL-----\n")
        assert all(len(line) <= 64 for line in pem.splitlines())
        assert crl_pem_to_der(pem) == der
        assert crl_pem_to_der(pem.encode()) == der
        assert read_crl(pem).crl_number == 3
        assert read_crl(pem.encode()).crl_number == 3
        with pytest.raises(ValueError):
            crl_pem_to_der("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")
        with pytest.raises(InvalidRequestError):
            read_crl(b"\x30\x03junk")

    def test_duplicate_serials_are_refused(self, fixed_cas: dict[str, GeneratedCA]) -> None:
        entries = [RevokedEntry(5, FIXED_NOW), RevokedEntry("05", FIXED_NOW, "keyCompromise")]
        with pytest.raises(InvalidRevocationError, match="more than once"):
            build_crl(fixed_cas["rsa"].authority, entries, 1, FIXED_NOW, timedelta(days=1))

    @pytest.mark.parametrize(
        ("number", "validity"), [(-1, timedelta(days=1)), (1 << 159, timedelta(days=1)), (1, timedelta(0))]
    )
    def test_invalid_parameters(
        self, fixed_cas: dict[str, GeneratedCA], number: int, validity: timedelta
    ) -> None:
        with pytest.raises(InvalidRequestError):
            build_crl(fixed_cas["rsa"].authority, [], number, FIXED_NOW, validity)

    def test_ca_without_crl_sign(
        self, fixed_cas: dict[str, GeneratedCA], keys: dict[str, PrivateKey]
    ) -> None:
        from cryptography.hazmat.primitives import hashes

        root = fixed_cas["ec"].authority
        # A CA certificate whose keyUsage allows certificate signing but not CRL signing.
        usage = x509.KeyUsage(False, False, False, False, False, True, False, False, False)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "no crl sign")]))
            .issuer_name(root.subject)
            .public_key(keys["ec"].public_key())
            .serial_number(99)
            .not_valid_before(FIXED_NOW - timedelta(days=1))
            .not_valid_after(FIXED_NOW + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
        )
        certificate = builder.sign(root.private_key, hashes.SHA256())
        authority = SigningAuthority(certificate, keys["ec"])
        assert not authority.can_sign_crl
        with pytest.raises(CRLSignNotPermittedError) as caught:
            build_crl(authority, [], 1, FIXED_NOW, timedelta(days=1))
        assert caught.value.reason == "CRLSignNotPermitted"


@requires_openssl
class TestOpenSSL:
    @pytest.mark.parametrize("reason", list(ACCEPTED_REASONS.values()), ids=lambda r: r.name)
    def test_openssl_shows_each_reason(
        self, tmp_path: Path, fixed_cas: dict[str, GeneratedCA], reason: CRLReason
    ) -> None:
        ca = fixed_cas["rsa"]
        entry = RevokedEntry(0xC0FFEE, FIXED_NOW - timedelta(hours=1), reason)
        ca_path = write(tmp_path / "ca.pem", ca.certificate_pem)
        for explicit in (False, True):
            der = build_crl(
                ca.authority, [entry], 1234, FIXED_NOW, timedelta(days=1), explicit_unspecified=explicit
            )
            crl_path = write(tmp_path / "crl.der", der)
            result = openssl("crl", "-inform", "DER", "-in", crl_path, "-noout", "-text", "-CAfile", ca_path)
            assert result.returncode == 0, result.stderr
            assert "verify OK" in result.stdout + result.stderr
            text = result.stdout
            assert "X509v3 CRL Number: \n                1234" in text
            assert "Serial Number: C0FFEE" in text
            if reason.name == "unspecified" and not explicit:
                assert "CRL Reason Code" not in text  # RFC 5280: absent rather than unspecified
            else:
                assert (
                    f"X509v3 CRL Reason Code: \n                {OPENSSL_REASON_TEXT[reason.name]}\n" in text
                )

    @pytest.mark.parametrize("ca_name", ["rsa", "ec", "ed25519"])
    def test_openssl_crl_check_reports_revoked(
        self,
        tmp_path: Path,
        cas: dict[str, GeneratedCA],
        keys: dict[str, PrivateKey],
        real_now: datetime,
        ca_name: str,
    ) -> None:
        ca = cas[ca_name]
        leaf = issue_certificate(
            CertificateRequest(dns_names=["revoke-me.example"], duration=timedelta(hours=1)),
            keys["ec"],
            ca.authority,
            real_now,
        )
        other = issue_certificate(
            CertificateRequest(dns_names=["keep-me.example"], duration=timedelta(hours=1)),
            keys["rsa"],
            ca.authority,
            real_now,
        )
        ca_path = write(tmp_path / "ca.pem", ca.certificate_pem)
        leaf_path = write(tmp_path / "leaf.pem", leaf.certificate_pem)
        other_path = write(tmp_path / "other.pem", other.certificate_pem)
        crl_path = tmp_path / "crl.pem"

        write(crl_path, crl_der_to_pem(build_crl(ca.authority, [], 1, real_now, timedelta(hours=1))))
        result = openssl("verify", "-crl_check", "-CAfile", ca_path, "-CRLfile", crl_path, leaf_path)
        assert result.returncode == 0, result.stdout + result.stderr

        entry = RevokedEntry(leaf.serial_hex, real_now, "keyCompromise", not_after=leaf.not_after)
        write(crl_path, crl_der_to_pem(build_crl(ca.authority, [entry], 2, real_now, timedelta(hours=1))))
        result = openssl("verify", "-crl_check", "-CAfile", ca_path, "-CRLfile", crl_path, leaf_path)
        assert result.returncode != 0
        assert "certificate revoked" in result.stdout + result.stderr
        result = openssl("verify", "-crl_check", "-CAfile", ca_path, "-CRLfile", crl_path, other_path)
        assert result.returncode == 0, result.stdout + result.stderr
