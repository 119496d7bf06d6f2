"""Certificate revocation lists (X.509 v2 CRLs, RFC 5280 section 5).

Decisions
---------
* Only the eight reasons RFC 5280 lets a CA state for a certificate it
  revokes are accepted (see :data:`ACCEPTED_REASONS`). ``removeFromCRL`` (8)
  is refused because it only exists in delta CRLs, to undo a
  ``certificateHold``; a hold is released here by deleting the entry.
  ``aACompromise`` (10) is refused because it is about attribute authorities
  and attribute certificates, which this project does not issue.
* **unspecified**: RFC 5280 section 5.3.1 says the reasonCode entry extension
  SHOULD be absent rather than carry ``unspecified`` (and the CA/Browser
  Forum requirements make that a MUST). :func:`build_crl` therefore omits
  the extension for ``unspecified`` entries by default; an absent reasonCode
  reads back as ``unspecified`` (:func:`read_crl`), so every accepted reason
  survives the round trip. ``explicit_unspecified=True`` writes the code 0
  instead, for consumers that want to see it spelled out.
* CRLs are signed with SHA-256 for RSA and P-256 keys, SHA-384 for P-384,
  SHA-512 for P-521, and plain Ed25519 (no separate digest).
* :func:`prune_expired` drops entries of certificates past their notAfter;
  pass the CRL refresh interval as ``grace`` so that, as RFC 5280 section 5
  requires, each entry still appears on one regular CRL issued after the
  certificate expired.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ._time import utc, utc_seconds
from .authority import SigningAuthority
from .encoding import MAX_SERIAL, der_to_pem, parse_serial, pem_to_der, serial_to_hex
from .errors import CRLSignNotPermittedError, InvalidRequestError, InvalidRevocationError

__all__ = [
    "ACCEPTED_REASONS",
    "CRL_CONTENT_TYPE",
    "CRLInfo",
    "CRLReason",
    "RevokedEntry",
    "build_crl",
    "crl_der_to_pem",
    "crl_pem_to_der",
    "parse_reason",
    "prune_expired",
    "read_crl",
]

#: Media type of a DER CRL served over HTTP (RFC 2585).
CRL_CONTENT_TYPE = "application/pkix-crl"


@dataclass(frozen=True)
class CRLReason:
    """One accepted revocation reason: camelCase name, cryptography flag, CRLReason code."""

    name: str
    flag: x509.ReasonFlags
    code: int


_REASONS = (
    CRLReason("unspecified", x509.ReasonFlags.unspecified, 0),
    CRLReason("keyCompromise", x509.ReasonFlags.key_compromise, 1),
    CRLReason("cACompromise", x509.ReasonFlags.ca_compromise, 2),
    CRLReason("affiliationChanged", x509.ReasonFlags.affiliation_changed, 3),
    CRLReason("superseded", x509.ReasonFlags.superseded, 4),
    CRLReason("cessationOfOperation", x509.ReasonFlags.cessation_of_operation, 5),
    CRLReason("certificateHold", x509.ReasonFlags.certificate_hold, 6),
    CRLReason("privilegeWithdrawn", x509.ReasonFlags.privilege_withdrawn, 9),
)

#: camelCase name -> reason, in code order.
ACCEPTED_REASONS: Mapping[str, CRLReason] = MappingProxyType({r.name: r for r in _REASONS})
REASONS_BY_CODE: Mapping[int, CRLReason] = MappingProxyType({r.code: r for r in _REASONS})
REASONS_BY_FLAG: Mapping[x509.ReasonFlags, CRLReason] = MappingProxyType({r.flag: r for r in _REASONS})
UNSPECIFIED = ACCEPTED_REASONS["unspecified"]

_REFUSED = {
    "removefromcrl": (
        "removeFromCRL (8) is not accepted: it only appears in delta CRLs to take a certificate off "
        "hold; to release a certificateHold, delete the revocation entry instead"
    ),
    "aacompromise": (
        "aACompromise (10) is not accepted: it concerns attribute authorities and attribute "
        "certificates, which this operator does not issue"
    ),
}
_REFUSED_CODES = {8: "removefromcrl", 10: "aacompromise"}


def _accepted_list() -> str:
    return ", ".join(f"{r.name} ({r.code})" for r in _REASONS)


def parse_reason(value: str | int | x509.ReasonFlags | CRLReason) -> CRLReason:
    """Resolve a reason given as camelCase name (case-insensitive), code or flag."""
    if isinstance(value, CRLReason):
        return value
    if isinstance(value, x509.ReasonFlags):
        value = value.value
    if isinstance(value, bool):
        raise InvalidRevocationError(f"revocation reason {value!r} is not a reason")
    if isinstance(value, int):
        if value in _REFUSED_CODES:
            raise InvalidRevocationError(_REFUSED[_REFUSED_CODES[value]])
        reason = REASONS_BY_CODE.get(value)
        if reason is None:
            raise InvalidRevocationError(
                f"revocation reason code {value} is not defined; use one of {_accepted_list()}"
            )
        return reason
    wanted = value.strip().lower()
    if wanted in _REFUSED:
        raise InvalidRevocationError(_REFUSED[wanted])
    for reason in _REASONS:
        if reason.name.lower() == wanted:
            return reason
    raise InvalidRevocationError(f"unknown revocation reason {value!r}; use one of {_accepted_list()}")


@dataclass(frozen=True, init=False)
class RevokedEntry:
    """A revoked certificate as listed in CRLs and answered by OCSP.

    ``serial`` may be given as an int or a hex string; ``reason`` as a name,
    code, flag or :class:`CRLReason`. ``not_after`` is the revoked
    certificate's expiry, used by :func:`prune_expired` (``None`` keeps the
    entry forever).
    """

    serial: int
    revoked_at: datetime
    reason: CRLReason
    not_after: datetime | None

    def __init__(
        self,
        serial: int | str,
        revoked_at: datetime,
        reason: str | int | x509.ReasonFlags | CRLReason = UNSPECIFIED,
        not_after: datetime | None = None,
    ) -> None:
        try:
            parsed_serial = parse_serial(serial)
        except InvalidRequestError as exc:
            raise InvalidRevocationError(exc.message) from None
        try:
            revoked = utc_seconds(revoked_at, "revoked_at")
            expiry = None if not_after is None else utc(not_after, "not_after")
        except ValueError as exc:
            raise InvalidRevocationError(str(exc)) from None
        object.__setattr__(self, "serial", parsed_serial)
        object.__setattr__(self, "revoked_at", revoked)
        object.__setattr__(self, "reason", parse_reason(reason))
        object.__setattr__(self, "not_after", expiry)

    @property
    def serial_hex(self) -> str:
        return serial_to_hex(self.serial)


@dataclass(frozen=True)
class CRLInfo:
    """A parsed CRL."""

    issuer: str
    crl_number: int | None
    this_update: datetime
    next_update: datetime | None
    entries: tuple[RevokedEntry, ...]


def build_crl(
    authority: SigningAuthority,
    entries: Iterable[RevokedEntry],
    crl_number: int,
    now: datetime,
    validity: timedelta,
    *,
    explicit_unspecified: bool = False,
) -> bytes:
    """Sign a complete X.509 v2 CRL and return its DER bytes.

    thisUpdate is ``now``, nextUpdate ``now + validity``. Extensions: CRL
    Number and Authority Key Identifier (both non-critical); entries carry a
    reasonCode except for ``unspecified`` (see the module notes). Entries are
    sorted by serial; a serial listed twice is an error.
    """
    if not authority.can_sign_crl:
        raise CRLSignNotPermittedError(
            "the CA certificate's keyUsage lacks cRLSign, so CRLs it signs would be rejected; "
            "re-issue the CA with the crl sign usage"
        )
    if isinstance(crl_number, bool) or not 0 <= crl_number < MAX_SERIAL:
        raise InvalidRequestError("the CRL number must be a non-negative integer of at most 20 octets")
    if validity <= timedelta(0):
        raise InvalidRequestError("the CRL validity must be positive")
    this_update = utc_seconds(now)
    next_update = this_update + validity

    seen: set[int] = set()
    revoked_certificates = []
    for entry in sorted(entries, key=lambda e: e.serial):
        if entry.serial in seen:
            raise InvalidRevocationError(f"serial {entry.serial_hex} is listed more than once")
        seen.add(entry.serial)
        revoked = (
            x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(entry.revoked_at)
        )
        if entry.reason is not UNSPECIFIED or explicit_unspecified:
            revoked = revoked.add_extension(x509.CRLReason(entry.reason.flag), critical=False)
        revoked_certificates.append(revoked.build())
    # The whole list goes to the constructor at once: adding entries one by one copies the list
    # each time, which makes a CRL of 100,000 entries take minutes instead of about a second.
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=authority.subject,
        last_update=this_update,
        next_update=next_update,
        extensions=[
            x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(crl_number)),
            x509.Extension(x509.AuthorityKeyIdentifier.oid, False, authority.authority_key_identifier()),
        ],
        revoked_certificates=revoked_certificates,
    )
    crl = builder.sign(authority.private_key, authority.hash_algorithm)
    return crl.public_bytes(Encoding.DER)


def prune_expired(
    entries: Iterable[RevokedEntry], now: datetime, *, grace: timedelta = timedelta(0)
) -> list[RevokedEntry]:
    """Entries still worth listing: those without notAfter or with notAfter + grace >= now."""
    now = utc(now)
    return [e for e in entries if e.not_after is None or e.not_after + grace >= now]


def crl_der_to_pem(der: bytes) -> str:
    return der_to_pem(der, "X509 CRL")


def crl_pem_to_der(pem: str | bytes) -> bytes:
    return pem_to_der(pem, "X509 CRL")


def read_crl(data: bytes | str) -> CRLInfo:
    """Parse a CRL (DER bytes, or PEM text/bytes); entries without reasonCode read as unspecified.

    The signature is not checked. Entries with a reason this module refuses
    (removeFromCRL, aACompromise) raise :class:`InvalidRevocationError`.
    """
    try:
        if isinstance(data, str) or data.lstrip().startswith(b"-----BEGIN"):
            crl = x509.load_der_x509_crl(crl_pem_to_der(data))
        else:
            crl = x509.load_der_x509_crl(data)
    except ValueError:
        raise InvalidRequestError("the data is not a readable X.509 CRL") from None
    try:
        number: int | None = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = None
    entries = []
    for revoked in crl:
        try:
            flag = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            flag = x509.ReasonFlags.unspecified
        entries.append(RevokedEntry(revoked.serial_number, revoked.revocation_date_utc, flag))
    return CRLInfo(
        issuer=crl.issuer.rfc4514_string(),
        crl_number=number,
        this_update=crl.last_update_utc,
        next_update=crl.next_update_utc,
        entries=tuple(entries),
    )
