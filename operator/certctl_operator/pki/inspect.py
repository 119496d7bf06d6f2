"""Reading certificates back: summaries and "does this still match?" checks.

:func:`inspect_certificate` turns PEM data (leaf first) into a plain
:class:`CertificateSummary`. :func:`certificate_matches_request` compares such
a summary with a :class:`~certctl_operator.pki.issue.CertificateRequest`, the
key and the CA, and lists every difference, so that a reconciler can decide
whether a stored certificate must be re-issued.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from ._time import utc
from .authority import SigningAuthority
from .encoding import fingerprint_sha256, is_self_signed, load_certificates, serial_to_hex
from .errors import InvalidCertificateError, InvalidRequestError, UnsupportedKeyError
from .issue import CertificateRequest, effective_usages
from .keys import AnyKey, KeyAlgorithm, KeySpec, is_public_key, public_key_sha256
from .usages import usages_from_extensions

_E = TypeVar("_E", bound=x509.ExtensionType)

__all__ = [
    "CertificateSummary",
    "certificate_matches_request",
    "inspect_certificate",
    "inspect_chain",
    "summarize_certificate",
]


@dataclass(frozen=True)
class CertificateSummary:
    """What a certificate says, as plain values.

    Serial and fingerprints are uppercase hex without separators; key
    algorithm is ``RSA``, ``ECDSA``, ``Ed25519`` (or another algorithm's name
    for certificates made elsewhere) with ``key_size`` in bits (ECDSA: curve
    size; ``None`` for Ed25519).
    """

    subject: str
    issuer: str
    common_name: str | None
    organizations: tuple[str, ...]
    organizational_units: tuple[str, ...]
    countries: tuple[str, ...]
    localities: tuple[str, ...]
    provinces: tuple[str, ...]
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    uris: tuple[str, ...]
    email_addresses: tuple[str, ...]
    serial: int
    serial_hex: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    public_key_sha256: str
    key_algorithm: str
    key_size: int | None
    signature_algorithm: str
    is_ca: bool
    path_length: int | None
    usages: tuple[str, ...]
    crl_distribution_urls: tuple[str, ...]
    ocsp_urls: tuple[str, ...]
    subject_key_identifier: str | None
    authority_key_identifier: str | None
    self_signed: bool

    @property
    def key_spec(self) -> KeySpec | None:
        """The key spec the certificate's key satisfies, if it is one this project issues."""
        for algorithm in KeyAlgorithm:
            if algorithm.value == self.key_algorithm:
                try:
                    return KeySpec(algorithm, self.key_size)
                except UnsupportedKeyError:
                    return None
        return None

    @property
    def lifetime(self) -> timedelta:
        return self.not_after - self.not_before

    def is_valid_at(self, now: datetime) -> bool:
        return self.not_before <= utc(now) <= self.not_after

    def remaining(self, now: datetime) -> timedelta:
        """Time left until notAfter (negative once expired)."""
        return self.not_after - utc(now)

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly dict (times as ISO 8601, tuples as lists)."""
        result: dict[str, object] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            result[item.name] = value
        return result


def _attribute_values(name: x509.Name, oid: x509.ObjectIdentifier) -> tuple[str, ...]:
    values: list[str] = []
    for attribute in name.get_attributes_for_oid(oid):
        value = attribute.value
        values.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
    return tuple(values)


def _describe_public_key(certificate: x509.Certificate) -> tuple[str, int | None]:
    try:
        key = certificate.public_key()
    except (ValueError, TypeError):
        return "unknown", None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ECDSA", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", None
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", None
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    if isinstance(key, x25519.X25519PublicKey):
        return "X25519", None
    if isinstance(key, x448.X448PublicKey):
        return "X448", None
    return type(key).__name__, None


def _extension_value(certificate: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def summarize_certificate(certificate: x509.Certificate) -> CertificateSummary:
    """Build the summary of one parsed certificate."""
    try:
        _ = certificate.extensions
    except ValueError:
        raise InvalidCertificateError("the certificate has extensions that cannot be parsed") from None
    san = _extension_value(certificate, x509.SubjectAlternativeName)
    constraints = _extension_value(certificate, x509.BasicConstraints)
    key_usage = _extension_value(certificate, x509.KeyUsage)
    extended = _extension_value(certificate, x509.ExtendedKeyUsage)
    crl_points = _extension_value(certificate, x509.CRLDistributionPoints)
    access = _extension_value(certificate, x509.AuthorityInformationAccess)
    ski = _extension_value(certificate, x509.SubjectKeyIdentifier)
    aki = _extension_value(certificate, x509.AuthorityKeyIdentifier)

    crl_urls: list[str] = []
    for point in crl_points or ():
        for general_name in point.full_name or ():
            if isinstance(general_name, x509.UniformResourceIdentifier):
                crl_urls.append(general_name.value)
    ocsp_urls = [
        d.access_location.value
        for d in access or ()
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]
    common_names = _attribute_values(certificate.subject, NameOID.COMMON_NAME)
    key_algorithm, key_size = _describe_public_key(certificate)
    public_key_hash = ""
    try:
        public_key = certificate.public_key()
    except (ValueError, TypeError):
        pass
    else:
        if is_public_key(public_key):
            public_key_hash = public_key_sha256(public_key)
    signature_oid = certificate.signature_algorithm_oid
    return CertificateSummary(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        common_name=common_names[0] if common_names else None,
        organizations=_attribute_values(certificate.subject, NameOID.ORGANIZATION_NAME),
        organizational_units=_attribute_values(certificate.subject, NameOID.ORGANIZATIONAL_UNIT_NAME),
        countries=_attribute_values(certificate.subject, NameOID.COUNTRY_NAME),
        localities=_attribute_values(certificate.subject, NameOID.LOCALITY_NAME),
        provinces=_attribute_values(certificate.subject, NameOID.STATE_OR_PROVINCE_NAME),
        dns_names=tuple(san.get_values_for_type(x509.DNSName)) if san else (),
        ip_addresses=tuple(str(a) for a in san.get_values_for_type(x509.IPAddress)) if san else (),
        uris=tuple(san.get_values_for_type(x509.UniformResourceIdentifier)) if san else (),
        email_addresses=tuple(san.get_values_for_type(x509.RFC822Name)) if san else (),
        serial=certificate.serial_number,
        serial_hex=serial_to_hex(certificate.serial_number),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        fingerprint_sha256=fingerprint_sha256(certificate),
        public_key_sha256=public_key_hash,
        key_algorithm=key_algorithm,
        key_size=key_size,
        signature_algorithm=getattr(signature_oid, "_name", signature_oid.dotted_string),
        is_ca=bool(constraints and constraints.ca),
        path_length=constraints.path_length if constraints else None,
        usages=usages_from_extensions(key_usage, extended),
        crl_distribution_urls=tuple(crl_urls),
        ocsp_urls=tuple(ocsp_urls),
        subject_key_identifier=ski.digest.hex().upper() if ski else None,
        authority_key_identifier=aki.key_identifier.hex().upper() if aki and aki.key_identifier else None,
        self_signed=is_self_signed(certificate),
    )


def inspect_chain(pem: str | bytes) -> tuple[CertificateSummary, ...]:
    """Summaries of every certificate in a PEM bundle, in order."""
    return tuple(summarize_certificate(c) for c in load_certificates(pem))


def inspect_certificate(pem: str | bytes) -> CertificateSummary:
    """Summary of the first certificate (the leaf) of a PEM bundle."""
    return summarize_certificate(load_certificates(pem)[0])


def _differ(what: str, have: Iterable[str], want: Iterable[str]) -> str:
    return f"{what} differ: the certificate has [{', '.join(have)}], the request wants [{', '.join(want)}]"


def _compare_sets(
    problems: list[str], what: str, have: Iterable[str], want: Iterable[str], *, fold: bool = False
) -> None:
    have_list, want_list = sorted(have), sorted(want)
    if fold:
        same = sorted(v.lower() for v in have_list) == sorted(v.lower() for v in want_list)
    else:
        same = have_list == want_list
    if not same:
        problems.append(_differ(what, have_list, want_list))


def _normalized_ips(values: Iterable[str]) -> list[str]:
    result = []
    for value in values:
        try:
            result.append(str(ipaddress.ip_address(value)))
        except ValueError:
            result.append(value)
    return result


def certificate_matches_request(
    summary: CertificateSummary,
    request: CertificateRequest,
    key: AnyKey | None = None,
    *,
    key_spec: KeySpec | None = None,
    authority: SigningAuthority | None = None,
) -> list[str]:
    """List why ``summary`` no longer fits ``request``; empty when it fits.

    Compared: subject fields, SANs (DNS names and emails case-insensitively,
    IPs normalized), isCA, usages (with the same defaults issuance applies),
    CRL and OCSP URLs; the key spec when ``key_spec`` is given; that ``key``
    belongs to the certificate when given; that ``authority`` issued it when
    given. Duration is not compared: it applies at the next renewal.
    """
    problems: list[str] = []
    have_cn, want_cn = summary.common_name or None, request.common_name or None
    if have_cn != want_cn:
        problems.append(f"commonName differs: the certificate has {have_cn!r}, the request wants {want_cn!r}")
    _compare_sets(problems, "dnsNames", summary.dns_names, request.dns_names, fold=True)
    _compare_sets(
        problems, "ipAddresses", _normalized_ips(summary.ip_addresses), _normalized_ips(request.ip_addresses)
    )
    _compare_sets(problems, "uris", summary.uris, request.uris)
    _compare_sets(problems, "emailAddresses", summary.email_addresses, request.email_addresses, fold=True)
    _compare_sets(problems, "organizations", summary.organizations, request.organizations)
    _compare_sets(problems, "organizationalUnits", summary.organizational_units, request.organizational_units)
    _compare_sets(problems, "countries", summary.countries, request.countries, fold=True)
    _compare_sets(problems, "localities", summary.localities, request.localities)
    _compare_sets(problems, "provinces", summary.provinces, request.provinces)
    if summary.is_ca != request.is_ca:
        problems.append(
            f"isCA differs: the certificate has {summary.is_ca}, the request wants {request.is_ca}"
        )

    algorithm: KeyAlgorithm | None = key_spec.algorithm if key_spec else None
    if algorithm is None:
        cert_spec = summary.key_spec
        algorithm = cert_spec.algorithm if cert_spec else None
    if algorithm is not None:
        try:
            wanted_usages = effective_usages(request, algorithm)
        except InvalidRequestError as exc:
            problems.append(f"usages cannot be compared: {exc.message}")
        else:
            _compare_sets(problems, "usages", summary.usages, wanted_usages)
    _compare_sets(
        problems,
        "CRL distribution URLs",
        summary.crl_distribution_urls,
        [request.crl_distribution_url] if request.crl_distribution_url else [],
    )
    _compare_sets(problems, "OCSP URLs", summary.ocsp_urls, [request.ocsp_url] if request.ocsp_url else [])

    if key_spec is not None and (summary.key_algorithm, summary.key_size) != (
        key_spec.algorithm.value,
        key_spec.size,
    ):
        cert_spec = summary.key_spec
        if cert_spec is not None:
            have = cert_spec.describe()
        elif summary.key_size is not None:
            have = f"{summary.key_algorithm} {summary.key_size}"
        else:
            have = summary.key_algorithm
        problems.append(f"key differs: the certificate's key is {have}, the spec wants {key_spec.describe()}")
    if key is not None and public_key_sha256(key) != summary.public_key_sha256:
        problems.append("the private key does not belong to the certificate")
    if authority is not None:
        ca_ski = authority.authority_key_identifier().key_identifier
        same_issuer = summary.issuer == authority.subject.rfc4514_string()
        if same_issuer and ca_ski and summary.authority_key_identifier:
            same_issuer = summary.authority_key_identifier == ca_ski.hex().upper()
        if not same_issuer:
            problems.append(
                f"the certificate was issued by {summary.issuer!r}, not by the configured CA "
                f"{authority.subject.rfc4514_string()!r}"
            )
    return problems
