"""Issuing X.509 certificates from a request, signed by a CA or self-signed.

Decisions
---------
* **notBefore is backdated** by :data:`DEFAULT_BACKDATE` (5 minutes) so that
  a client whose clock runs a little behind does not reject a certificate
  that was issued a moment ago. notAfter is counted from ``now`` (not from
  the backdated notBefore), so the certificate stays valid for the whole
  requested duration after issuance. notBefore is never set earlier than the
  CA's own notBefore.
* **notAfter is clamped to the CA's notAfter**: a certificate cannot outlive
  its issuer's validity in a useful way, so when ``now + duration`` goes past
  the CA's notAfter the certificate ends with the CA and the result says so
  (:attr:`IssuedCertificate.not_after_clamped`). A CA that has already
  expired (or is not yet valid) refuses to sign.
* Serial numbers are 128 random bits from :mod:`secrets` (positive, non-zero),
  comfortably below the 20-octet limit of RFC 5280.
* Default usages (when the request names none): ``digital signature``,
  ``key encipherment`` (RSA keys only) and ``server auth``; for a CA,
  ``digital signature``, ``cert sign`` and ``crl sign`` without any extended
  usage. A CA always gets ``cert sign`` and ``crl sign``, whatever else is
  asked. ``cert sign`` on a non-CA is refused (RFC 5280 section 4.2.1.3).
* The subjectAltName extension is critical when the subject is empty
  (RFC 5280 section 4.2.1.6). The common name is not copied into the SANs.
* The signature digest follows the signing key: SHA-256 for RSA and P-256,
  SHA-384 for P-384, SHA-512 for P-521, none for Ed25519.
* A CA whose pathLenConstraint is 0 refuses to issue CA certificates.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from ._time import utc_seconds
from .authority import SigningAuthority
from .encoding import (
    MAX_SERIAL,
    certificate_to_pem,
    fingerprint_sha256,
    is_self_signed,
    parse_serial,
    serial_to_hex,
)
from .errors import (
    CertificateExpiredError,
    CertificateNotYetValidError,
    InvalidRequestError,
)
from .keys import (
    AnyKey,
    KeyAlgorithm,
    PrivateKey,
    as_public_key,
    check_key_strength,
    is_private_key,
    key_algorithm_and_size,
    signature_hash,
)
from .usages import build_extended_key_usage, build_key_usage, normalize_usages

__all__ = [
    "DEFAULT_BACKDATE",
    "DEFAULT_DURATION",
    "CertificateRequest",
    "IssuedCertificate",
    "SigningAuthority",
    "build_subject",
    "effective_usages",
    "issue_certificate",
    "random_serial",
    "validate_request",
]

DEFAULT_BACKDATE = timedelta(minutes=5)
DEFAULT_DURATION = timedelta(days=90)

# Upper bounds from the X.520 / RFC 5280 ASN.1 (ub-common-name and friends).
_ATTRIBUTE_LIMITS: dict[str, tuple[x509.ObjectIdentifier, int]] = {
    "organizations": (NameOID.ORGANIZATION_NAME, 64),
    "organizational_units": (NameOID.ORGANIZATIONAL_UNIT_NAME, 64),
    "localities": (NameOID.LOCALITY_NAME, 128),
    "provinces": (NameOID.STATE_OR_PROVINCE_NAME, 128),
}
_COMMON_NAME_LIMIT = 64
_LABEL_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_EMAIL_RE = re.compile(r"[^@\s]+@([^@\s]+)")
_URL_SCHEMES = ("http", "https")
_SEQUENCE_FIELDS = (
    "dns_names",
    "ip_addresses",
    "uris",
    "email_addresses",
    "organizations",
    "organizational_units",
    "countries",
    "localities",
    "provinces",
    "usages",
)


@dataclass(frozen=True)
class CertificateRequest:
    """What a certificate should say. Lists are stored as tuples.

    ``usages`` take cert-manager names (see :mod:`certctl_operator.pki.usages`);
    empty means the defaults described in this module's documentation.
    """

    common_name: str | None = None
    dns_names: Sequence[str] = ()
    ip_addresses: Sequence[str] = ()
    uris: Sequence[str] = ()
    email_addresses: Sequence[str] = ()
    organizations: Sequence[str] = ()
    organizational_units: Sequence[str] = ()
    countries: Sequence[str] = ()
    localities: Sequence[str] = ()
    provinces: Sequence[str] = ()
    duration: timedelta = DEFAULT_DURATION
    usages: Sequence[str] = ()
    is_ca: bool = False
    crl_distribution_url: str | None = None
    ocsp_url: str | None = None

    def __post_init__(self) -> None:
        for name in _SEQUENCE_FIELDS:
            value: object = getattr(self, name)
            if isinstance(value, str | bytes):
                raise TypeError(f"{name} must be a list of strings, not a single string")
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def has_subject_alt_names(self) -> bool:
        return bool(self.dns_names or self.ip_addresses or self.uris or self.email_addresses)


@dataclass(frozen=True)
class IssuedCertificate:
    """A freshly signed certificate and the facts a caller records about it."""

    certificate: x509.Certificate
    certificate_pem: str
    #: The issuing CA certificate first, then its issuers; empty when self-signed.
    chain_pems: tuple[str, ...]
    serial: int
    serial_hex: str
    not_before: datetime
    not_after: datetime
    #: True when notAfter was cut back to the CA's notAfter.
    not_after_clamped: bool
    fingerprint_sha256: str
    #: Canonical usage names the certificate carries.
    usages: tuple[str, ...] = ()
    #: The certificates behind :attr:`chain_pems`.
    chain: tuple[x509.Certificate, ...] = field(default=(), repr=False)

    @property
    def full_chain_pem(self) -> str:
        """Leaf followed by the intermediates (self-signed roots left out): a ``tls.crt``."""
        parts = [self.certificate_pem]
        parts.extend(
            pem for pem, cert in zip(self.chain_pems, self.chain, strict=True) if not is_self_signed(cert)
        )
        return "".join(parts)

    @property
    def ca_pem(self) -> str:
        """The topmost known certificate of the chain (the leaf itself when self-signed): a ``ca.crt``."""
        return self.chain_pems[-1] if self.chain_pems else self.certificate_pem


def random_serial() -> int:
    """A random positive 128-bit serial number."""
    while True:
        serial = secrets.randbits(128)
        if serial:
            return serial


def _dns_name_problem(name: str) -> str | None:
    if not name:
        return "DNS names must not be empty"
    if not name.isascii():
        return f"DNS name {name!r} must be ASCII (write internationalized names in their xn-- form)"
    if len(name) > 253:
        return f"DNS name {name!r} is longer than 253 characters"
    labels = name.split(".")
    if labels[0] == "*":
        labels = labels[1:]
        if not labels:
            return f"DNS name {name!r} needs a domain after the wildcard"
    for label in labels:
        if label == "" or "*" in label:
            return f"DNS name {name!r} is not valid" + (
                ": a wildcard may only be the whole leftmost label" if "*" in label else ""
            )
        if not _LABEL_RE.fullmatch(label):
            return f"DNS name {name!r} has an invalid label {label!r}"
    return None


def _url_problem(what: str, url: str) -> str | None:
    if not url.isascii() or any(c.isspace() for c in url):
        return f"{what} {url!r} must be ASCII without spaces"
    parts = urlsplit(url)
    if parts.scheme not in _URL_SCHEMES or not parts.netloc:
        return f"{what} {url!r} must be an absolute http:// or https:// URL"
    return None


def validate_request(request: CertificateRequest) -> None:
    """Raise :class:`InvalidRequestError` listing every problem of ``request``."""
    problems: list[str] = []
    common_name = request.common_name
    if common_name is not None and (common_name == "" or len(common_name) > _COMMON_NAME_LIMIT):
        problems.append(f"commonName must be 1 to {_COMMON_NAME_LIMIT} characters long")
    subject_empty = not (
        common_name
        or request.organizations
        or request.organizational_units
        or request.countries
        or request.localities
        or request.provinces
    )
    if subject_empty and not request.has_subject_alt_names:
        problems.append(
            "the certificate names nothing: set commonName or at least one of "
            "dnsNames, ipAddresses, uris, emailAddresses"
        )
    if request.is_ca and subject_empty:
        problems.append("a CA certificate needs a subject (set commonName or organizations)")
    for name, (_, limit) in _ATTRIBUTE_LIMITS.items():
        for value in getattr(request, name):
            if not value or len(value) > limit:
                problems.append(f"{name} entries must be 1 to {limit} characters long")
                break
    for country in request.countries:
        if not re.fullmatch(r"[A-Za-z]{2}", country):
            problems.append(f"country {country!r} must be a two-letter ISO 3166 code")
    for dns_name in request.dns_names:
        problem = _dns_name_problem(dns_name)
        if problem:
            problems.append(problem)
    for address in request.ip_addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            problems.append(f"IP address {address!r} is not a valid IPv4 or IPv6 address")
    for uri in request.uris:
        if not uri.isascii() or any(c.isspace() for c in uri) or not urlsplit(uri).scheme:
            problems.append(f"URI {uri!r} must be an absolute ASCII URI with a scheme")
    for email in request.email_addresses:
        match = _EMAIL_RE.fullmatch(email) if email.isascii() else None
        if match is None or _dns_name_problem(match.group(1)) is not None:
            problems.append(f"email address {email!r} is not a valid ASCII address")
    if request.duration <= timedelta(0):
        problems.append("duration must be positive")
    for what, url in (
        ("crlDistributionURL", request.crl_distribution_url),
        ("ocspURL", request.ocsp_url),
    ):
        if url is not None:
            problem = _url_problem(what, url)
            if problem:
                problems.append(problem)
    try:
        usages = normalize_usages(request.usages)
    except InvalidRequestError as exc:
        problems.append(exc.message)
    else:
        if "cert sign" in usages and not request.is_ca:
            problems.append('the "cert sign" usage is only allowed on a CA certificate (isCA: true)')
        try:
            build_key_usage(usages)
        except InvalidRequestError as exc:
            problems.append(exc.message)
    if problems:
        raise InvalidRequestError("invalid certificate request: " + "; ".join(problems))


def effective_usages(request: CertificateRequest, key: AnyKey | KeyAlgorithm) -> tuple[str, ...]:
    """The canonical usage names a certificate issued for ``request`` carries.

    The defaults depend on the key's algorithm, so ``key`` is the subject key
    or just its :class:`KeyAlgorithm`.
    """
    if request.usages:
        names = set(normalize_usages(request.usages))
    elif request.is_ca:
        names = {"digital signature"}
    else:
        algorithm = key if isinstance(key, KeyAlgorithm) else key_algorithm_and_size(key)[0]
        names = {"digital signature", "server auth"}
        if algorithm is KeyAlgorithm.RSA:
            names.add("key encipherment")
    if request.is_ca:
        names |= {"cert sign", "crl sign"}
    return normalize_usages(names)


def build_subject(request: CertificateRequest) -> x509.Name:
    """Subject DN in the conventional order C, ST, L, O, OU, CN (may be empty)."""
    attributes: list[x509.NameAttribute[str]] = []
    attributes.extend(x509.NameAttribute(NameOID.COUNTRY_NAME, c.upper()) for c in request.countries)
    for name in ("provinces", "localities", "organizations", "organizational_units"):
        oid = _ATTRIBUTE_LIMITS[name][0]
        attributes.extend(x509.NameAttribute(oid, value) for value in getattr(request, name))
    if request.common_name:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, request.common_name))
    return x509.Name(attributes)


def _subject_alt_names(request: CertificateRequest) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in request.dns_names]
    names.extend(x509.IPAddress(ipaddress.ip_address(a)) for a in request.ip_addresses)
    names.extend(x509.UniformResourceIdentifier(u) for u in request.uris)
    names.extend(x509.RFC822Name(e) for e in request.email_addresses)
    return names


def planned_not_after(
    request: CertificateRequest, signer: SigningAuthority | None, now: datetime
) -> datetime:
    """The notAfter :func:`issue_certificate` gives the certificate for ``request`` signed at ``now``.

    Known before the certificate is signed (a serial can be recorded with it meanwhile).
    """
    try:
        not_after = (utc_seconds(now) + request.duration).replace(microsecond=0)
    except OverflowError:
        raise InvalidRequestError("duration is too long") from None
    if signer is not None and not_after > signer.not_after:
        return signer.not_after
    return not_after


def issue_certificate(
    request: CertificateRequest,
    key: AnyKey,
    signer: SigningAuthority | None,
    now: datetime,
    serial: int | None = None,
    *,
    backdate: timedelta = DEFAULT_BACKDATE,
    extra_extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> IssuedCertificate:
    """Sign a certificate for ``key`` as described by ``request``.

    ``key`` is the subject's key: a public key is enough when ``signer`` is
    given; a self-signed certificate (``signer=None``) needs the private key.
    ``now`` must be timezone-aware. ``extra_extensions`` (extension, critical)
    pairs are appended as given. Raises :class:`InvalidRequestError`,
    :class:`~certctl_operator.pki.errors.UnsupportedKeyError`, or
    ``Expired`` / ``NotYetValid`` errors when the CA cannot sign at ``now``.
    """
    now = utc_seconds(now)
    validate_request(request)
    check_key_strength(key)
    if backdate < timedelta(0):
        raise InvalidRequestError("backdate must not be negative")
    serial = random_serial() if serial is None else parse_serial(serial)
    assert 0 < serial < MAX_SERIAL

    signing_key: PrivateKey
    if signer is None:
        if not is_private_key(key):
            raise InvalidRequestError("a self-signed certificate needs the subject's private key")
        signing_key = key
    else:
        signing_key = signer.private_key
    public_key = as_public_key(key)

    not_before = now - backdate
    not_after = planned_not_after(request, None, now)
    clamped = False
    if signer is not None:
        if signer.not_after <= now:
            raise CertificateExpiredError(
                f"the signing CA certificate expired at {signer.not_after.isoformat()}"
            )
        if signer.not_before > now:
            raise CertificateNotYetValidError(
                f"the signing CA certificate is not valid before {signer.not_before.isoformat()}"
            )
        if not_after > signer.not_after:
            not_after = signer.not_after
            clamped = True
        not_before = max(not_before, signer.not_before)
        if request.is_ca:
            try:
                constraints = signer.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
            except x509.ExtensionNotFound:
                constraints = None
            if constraints is not None and constraints.value.path_length == 0:
                raise InvalidRequestError(
                    "the signing CA has pathLenConstraint 0, so it cannot issue CA certificates"
                )

    subject = build_subject(request)
    usages = effective_usages(request, key)
    san = _subject_alt_names(request)
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    if signer is None:
        issuer = subject
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    else:
        issuer = signer.subject
        aki = signer.authority_key_identifier()

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=request.is_ca, path_length=None), critical=True)
        .add_extension(build_key_usage(usages), critical=True)
    )
    extended = build_extended_key_usage(usages)
    if extended is not None:
        builder = builder.add_extension(extended, critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=len(subject) == 0)
    builder = builder.add_extension(ski, critical=False).add_extension(aki, critical=False)
    if request.crl_distribution_url:
        point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(request.crl_distribution_url)],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    if request.ocsp_url:
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(request.ocsp_url)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    for extension, critical in extra_extensions:
        builder = builder.add_extension(extension, critical=critical)

    certificate = builder.sign(signing_key, signature_hash(signing_key))
    chain: tuple[x509.Certificate, ...] = () if signer is None else (signer.certificate, *signer.chain)
    return IssuedCertificate(
        certificate=certificate,
        certificate_pem=certificate_to_pem(certificate),
        chain_pems=tuple(certificate_to_pem(c) for c in chain),
        serial=serial,
        serial_hex=serial_to_hex(serial),
        not_before=not_before,
        not_after=not_after,
        not_after_clamped=clamped,
        fingerprint_sha256=fingerprint_sha256(certificate),
        usages=usages,
        chain=chain,
    )
