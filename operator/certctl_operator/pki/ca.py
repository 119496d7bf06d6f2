"""Loading and creating certificate authorities.

A CA key pair usually comes from a ``kubernetes.io/tls`` Secret: ``tls.crt``
holds the CA certificate, optionally followed by its own issuers, and
``tls.key`` the CA's private key. :func:`load_signing_authority` checks that
the pair can sign and returns a :class:`SigningAuthority`.

A CA certificate without any keyUsage extension is accepted (``openssl req
-x509`` creates such CAs, and validators treat a missing keyUsage as
unrestricted); when keyUsage is present it must include keyCertSign.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from ._time import utc
from .authority import SigningAuthority
from .encoding import fingerprint_sha256, is_self_signed, load_certificates
from .errors import (
    CertificateExpiredError,
    CertificateNotYetValidError,
    InvalidCertificateError,
    KeyMismatchError,
    NotACAError,
)
from .issue import CertificateRequest, issue_certificate
from .keys import (
    KeyAlgorithm,
    KeyEncoding,
    KeySpec,
    generate_private_key,
    is_public_key,
    load_private_key,
    public_keys_equal,
)

__all__ = ["GeneratedCA", "check_validity", "create_self_signed_ca", "load_signing_authority"]


@dataclass(frozen=True)
class GeneratedCA:
    """A new CA: its PEM certificate and key (ready for a Secret) and the authority."""

    certificate_pem: str
    private_key_pem: str
    authority: SigningAuthority


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_is_ca(certificate: x509.Certificate) -> None:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise NotACAError("the certificate has no basicConstraints extension, so it is not a CA") from None
    if not constraints.ca:
        raise NotACAError("the certificate's basicConstraints say CA:FALSE, so it cannot sign certificates")
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.key_cert_sign:
        raise NotACAError("the certificate's keyUsage lacks keyCertSign, so it cannot sign certificates")


def check_validity(certificate: x509.Certificate, now: datetime, what: str = "the certificate") -> None:
    """Raise ``Expired`` / ``NotYetValid`` errors when ``now`` is outside the validity period."""
    now = utc(now)
    if now > certificate.not_valid_after_utc:
        raise CertificateExpiredError(f"{what} expired at {certificate.not_valid_after_utc.isoformat()}")
    if now < certificate.not_valid_before_utc:
        raise CertificateNotYetValidError(
            f"{what} is not valid before {certificate.not_valid_before_utc.isoformat()}"
        )


def load_signing_authority(
    certificate_pem: str | bytes,
    private_key_pem: str | bytes,
    now: datetime,
    *,
    ca_certificate_pem: str | bytes | None = None,
) -> SigningAuthority:
    """Validate a CA key pair and return the authority it forms.

    ``certificate_pem`` holds the CA certificate first, then optionally its
    issuers, each issuing the one before. ``ca_certificate_pem`` (a Secret's
    ``ca.crt``) may complete that chain: its certificates are appended when
    they issued the current end of the chain; others are ignored.

    Raises an :class:`~certctl_operator.pki.errors.AuthorityError` whose
    ``reason`` is one of ``InvalidCertificate``, ``InvalidKey``, ``NotACA``,
    ``KeyMismatch``, ``Expired`` or ``NotYetValid``.
    """
    certificates = load_certificates(certificate_pem, "the CA certificate data (tls.crt)")
    key = load_private_key(private_key_pem, "the CA private key (tls.key)")
    certificate = certificates[0]
    _check_is_ca(certificate)
    try:
        certificate_key = certificate.public_key()
    except ValueError:
        raise InvalidCertificateError("the CA certificate's public key cannot be read") from None
    if not is_public_key(certificate_key) or not public_keys_equal(key, certificate_key):
        raise KeyMismatchError("the CA private key (tls.key) does not belong to the CA certificate (tls.crt)")
    check_validity(certificate, now, "the CA certificate")

    for index in range(1, len(certificates)):
        if not _issued_by(certificates[index - 1], certificates[index]):
            raise InvalidCertificateError(
                f"certificate #{index + 1} in the CA certificate data did not issue certificate #{index}; "
                "list the CA certificate first, then each issuer in order"
            )
    chain = list(certificates[1:])
    if ca_certificate_pem is not None and ca_certificate_pem.strip():
        known = {fingerprint_sha256(c) for c in certificates}
        for extra in load_certificates(ca_certificate_pem, "the CA bundle (ca.crt)"):
            tail = chain[-1] if chain else certificate
            if fingerprint_sha256(extra) in known or is_self_signed(tail):
                continue
            if _issued_by(tail, extra):
                chain.append(extra)
                known.add(fingerprint_sha256(extra))
    return SigningAuthority(certificate=certificate, private_key=key, chain=tuple(chain))


def create_self_signed_ca(
    common_name: str,
    key_spec: KeySpec,
    validity: timedelta,
    now: datetime,
    *,
    organizations: tuple[str, ...] = (),
    key_encoding: KeyEncoding | None = None,
) -> GeneratedCA:
    """Create a self-signed root CA (keyCertSign and cRLSign) valid for ``validity``.

    The key is written as PKCS#1 / SEC 1 unless ``key_encoding`` says
    otherwise; Ed25519 keys default to PKCS#8, their only encoding.
    """
    if key_encoding is None:
        key_encoding = KeyEncoding.PKCS8 if key_spec.algorithm is KeyAlgorithm.ED25519 else KeyEncoding.PKCS1
    key = generate_private_key(key_spec)
    request = CertificateRequest(
        common_name=common_name, organizations=organizations, duration=validity, is_ca=True
    )
    issued = issue_certificate(request, key, None, now)
    authority = SigningAuthority(certificate=issued.certificate, private_key=key)
    return GeneratedCA(
        certificate_pem=issued.certificate_pem,
        private_key_pem=authority.private_key_pem(key_encoding),
        authority=authority,
    )
