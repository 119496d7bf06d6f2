"""OCSP responder core (RFC 6960), independent of any HTTP server.

The HTTP layer hands the request bytes (POST body, or the decoded GET path via
:func:`decode_get_request`) to :func:`handle_ocsp_request`, which always
returns DER response bytes to send with :data:`OCSP_RESPONSE_CONTENT_TYPE`.

Decisions
---------
* **Requests about another issuer** get the unsigned ``unauthorized`` status
  (RFC 6960 section 2.3, RFC 5019 section 2.2.3): this responder is not
  authoritative for them, and a signed ``unknown`` would be signed by a key
  clients do not accept for that issuer anyway. ``unknown`` is kept for our
  own issuer's serials the lookup does not know.
* Requests listing several certificates, using a CertID digest other than
  SHA-1/SHA-2, or carrying a nonce outside 1..128 octets (RFC 9654) get
  ``malformedRequest``.
* The nonce, when present, is echoed in the response extensions.
* Responses are signed by the CA itself or by a delegated responder
  certificate (issued by the CA, with the OCSPSigning extended usage and
  id-pkix-ocsp-nocheck), which is then included in the response. The
  responder is identified by key hash.
* ``thisUpdate`` is ``now`` and ``nextUpdate`` is ``now + validity``. The
  ``producedAt`` field is filled from the system clock by the cryptography
  library, which offers no way to pass it in.
* A revocation with reason ``unspecified`` is answered without a
  revocationReason, like the CRL entry (``explicit_unspecified`` changes both).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from ._time import utc_seconds
from .authority import SigningAuthority
from .ca import check_validity
from .crl import UNSPECIFIED, CRLReason, RevokedEntry, parse_reason
from .encoding import certificate_to_pem, load_certificates, serial_to_hex
from .errors import (
    InvalidCertificateError,
    InvalidRequestError,
    KeyMismatchError,
    MalformedOCSPRequestError,
)
from .issue import CertificateRequest, issue_certificate
from .keys import (
    AnyKey,
    KeyEncoding,
    KeySpec,
    PrivateKey,
    as_public_key,
    generate_private_key,
    is_public_key,
    load_private_key,
    private_key_to_pem,
    public_keys_equal,
    signature_hash,
)

__all__ = [
    "OCSP_REQUEST_CONTENT_TYPE",
    "OCSP_RESPONSE_CONTENT_TYPE",
    "CertificateStatus",
    "CertificateStatusKind",
    "OCSPRequestInfo",
    "OCSPResponder",
    "StatusLookup",
    "build_ocsp_response",
    "create_ocsp_responder_certificate",
    "decode_get_request",
    "handle_ocsp_request",
    "issuer_matches",
    "load_ocsp_responder",
    "parse_ocsp_request",
    "unsuccessful_response",
]

logger = logging.getLogger(__name__)

OCSP_REQUEST_CONTENT_TYPE = "application/ocsp-request"
OCSP_RESPONSE_CONTENT_TYPE = "application/ocsp-response"
MAX_NONCE_LENGTH = 128
#: Responder certificates should live briefly: they are trusted without revocation checks.
DEFAULT_RESPONDER_VALIDITY = timedelta(days=30)

_CERT_ID_HASHES: tuple[type[hashes.HashAlgorithm], ...] = (
    hashes.SHA1,
    hashes.SHA224,
    hashes.SHA256,
    hashes.SHA384,
    hashes.SHA512,
)


class CertificateStatusKind(StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CertificateStatus:
    """What the responder says about one serial number."""

    kind: CertificateStatusKind
    revoked_at: datetime | None = None
    reason: CRLReason | None = None

    def __post_init__(self) -> None:
        if self.kind is CertificateStatusKind.REVOKED:
            if self.revoked_at is None:
                raise InvalidRequestError("a revoked status needs the revocation time")
            object.__setattr__(self, "revoked_at", utc_seconds(self.revoked_at, "revoked_at"))
            if self.reason is None:
                object.__setattr__(self, "reason", UNSPECIFIED)
        elif self.revoked_at is not None or self.reason is not None:
            raise InvalidRequestError(f"a {self.kind.value} status has no revocation time or reason")

    @classmethod
    def good(cls) -> CertificateStatus:
        return cls(CertificateStatusKind.GOOD)

    @classmethod
    def unknown(cls) -> CertificateStatus:
        return cls(CertificateStatusKind.UNKNOWN)

    @classmethod
    def revoked(
        cls,
        revoked_at: datetime,
        reason: str | int | x509.ReasonFlags | CRLReason = UNSPECIFIED,
    ) -> CertificateStatus:
        return cls(CertificateStatusKind.REVOKED, revoked_at, parse_reason(reason))

    @classmethod
    def from_entry(cls, entry: RevokedEntry) -> CertificateStatus:
        return cls(CertificateStatusKind.REVOKED, entry.revoked_at, entry.reason)


#: Maps a serial number to its status; should answer ``unknown`` for serials never issued.
StatusLookup = Callable[[int], CertificateStatus]


@dataclass(frozen=True)
class OCSPRequestInfo:
    """The single CertID of an OCSP request and its nonce."""

    serial: int
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    hash_algorithm: hashes.HashAlgorithm
    nonce: bytes | None

    @property
    def serial_hex(self) -> str:
        return serial_to_hex(self.serial)


@dataclass(frozen=True)
class OCSPResponder:
    """A delegated responder: a certificate with the OCSPSigning usage and its key."""

    certificate: x509.Certificate
    private_key: PrivateKey

    @property
    def certificate_pem(self) -> str:
        return certificate_to_pem(self.certificate)

    def private_key_pem(self, encoding: KeyEncoding = KeyEncoding.PKCS8) -> str:
        return private_key_to_pem(self.private_key, encoding)


def parse_ocsp_request(der: bytes) -> OCSPRequestInfo:
    """Decode a DER OCSPRequest; raise :class:`MalformedOCSPRequestError` when unusable."""
    try:
        request = ocsp.load_der_ocsp_request(der)
    except NotImplementedError:
        raise MalformedOCSPRequestError(
            "the OCSP request asks about several certificates; send one request per certificate"
        ) from None
    except ValueError:
        raise MalformedOCSPRequestError("the OCSP request is not valid DER") from None
    try:
        algorithm = request.hash_algorithm
    except UnsupportedAlgorithm:
        raise MalformedOCSPRequestError("the OCSP request's CertID uses an unsupported digest") from None
    if not isinstance(algorithm, _CERT_ID_HASHES):
        raise MalformedOCSPRequestError(f"the OCSP request's CertID digest {algorithm.name} is not supported")
    try:
        nonce: bytes | None = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        nonce = None
    except ValueError:
        raise MalformedOCSPRequestError("the OCSP request's extensions cannot be parsed") from None
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE_LENGTH:
        raise MalformedOCSPRequestError(f"the OCSP nonce must be 1 to {MAX_NONCE_LENGTH} octets long")
    return OCSPRequestInfo(
        serial=request.serial_number,
        issuer_name_hash=request.issuer_name_hash,
        issuer_key_hash=request.issuer_key_hash,
        hash_algorithm=algorithm,
        nonce=nonce,
    )


def _read_der_length(data: bytes, offset: int) -> tuple[int, int]:
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    count = first & 0x7F
    if count == 0 or count > 4 or offset + 1 + count > len(data):
        raise ValueError("unsupported DER length")
    return int.from_bytes(data[offset + 1 : offset + 1 + count], "big"), offset + 1 + count


def _subject_public_key_bits(key: AnyKey) -> bytes:
    """Contents of the subjectPublicKey BIT STRING (what a CertID's issuerKeyHash covers).

    The key is re-encoded the standard way (EC points uncompressed), which is
    how certificates carry them.
    """
    spki = as_public_key(key).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
    _, offset = _read_der_length(spki, 1)
    algorithm_length, algorithm_start = _read_der_length(spki, offset + 1)
    offset = algorithm_start + algorithm_length
    if spki[offset] != 0x03:
        raise ValueError("SubjectPublicKeyInfo without a BIT STRING")
    length, start = _read_der_length(spki, offset + 1)
    return spki[start + 1 : start + length]  # skip the unused-bits octet


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()


def issuer_matches(request: OCSPRequestInfo, authority: SigningAuthority) -> bool:
    """True when the request's CertID names ``authority`` as issuer."""
    name_hash = _digest(request.hash_algorithm, authority.subject.public_bytes())
    key_hash = _digest(request.hash_algorithm, _subject_public_key_bits(authority.private_key))
    return name_hash == request.issuer_name_hash and key_hash == request.issuer_key_hash


def unsuccessful_response(status: ocsp.OCSPResponseStatus) -> bytes:
    """An unsigned error response (malformedRequest, internalError, tryLater, unauthorized...)."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


def build_ocsp_response(
    request: OCSPRequestInfo,
    authority: SigningAuthority,
    responder: OCSPResponder | None,
    lookup: StatusLookup,
    now: datetime,
    validity: timedelta,
    *,
    explicit_unspecified: bool = False,
) -> bytes:
    """Answer a parsed request; returns DER.

    ``responder=None`` signs with the CA key. Requests about another issuer
    get ``unauthorized``. ``lookup`` is only called for this CA's serials.
    """
    if validity <= timedelta(0):
        raise InvalidRequestError("the OCSP response validity must be positive")
    if not issuer_matches(request, authority):
        return unsuccessful_response(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    this_update = utc_seconds(now)
    if responder is not None:
        check_validity(responder.certificate, this_update, "the OCSP responder certificate")

    status = lookup(request.serial)
    revocation_time: datetime | None = None
    revocation_reason: x509.ReasonFlags | None = None
    if status.kind is CertificateStatusKind.GOOD:
        cert_status = ocsp.OCSPCertStatus.GOOD
    elif status.kind is CertificateStatusKind.REVOKED:
        cert_status = ocsp.OCSPCertStatus.REVOKED
        revocation_time = status.revoked_at
        reason = status.reason or UNSPECIFIED
        if reason is not UNSPECIFIED or explicit_unspecified:
            revocation_reason = reason.flag
    else:
        cert_status = ocsp.OCSPCertStatus.UNKNOWN

    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=request.issuer_name_hash,
        issuer_key_hash=request.issuer_key_hash,
        serial_number=request.serial,
        algorithm=request.hash_algorithm,
        cert_status=cert_status,
        this_update=this_update,
        next_update=this_update + validity,
        revocation_time=revocation_time,
        revocation_reason=revocation_reason,
    )
    if request.nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(request.nonce), critical=False)
    if responder is None:
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, authority.certificate)
        signing_key = authority.private_key
    else:
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder.certificate).certificates(
            [responder.certificate]
        )
        signing_key = responder.private_key
    response = builder.sign(signing_key, signature_hash(signing_key))
    return response.public_bytes(serialization.Encoding.DER)


def handle_ocsp_request(
    der: bytes,
    authority: SigningAuthority,
    responder: OCSPResponder | None,
    lookup: StatusLookup,
    now: datetime,
    validity: timedelta,
    *,
    explicit_unspecified: bool = False,
) -> bytes:
    """Parse and answer request bytes; never raises, always returns a DER response.

    Malformed requests get ``malformedRequest``; failures while answering
    (the lookup raising, an expired responder certificate) get
    ``internalError`` and are logged.
    """
    try:
        request = parse_ocsp_request(der)
    except MalformedOCSPRequestError as exc:
        logger.debug("malformed OCSP request: %s", exc.message)
        return unsuccessful_response(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    try:
        return build_ocsp_response(
            request,
            authority,
            responder,
            lookup,
            now,
            validity,
            explicit_unspecified=explicit_unspecified,
        )
    except Exception:
        logger.exception("cannot answer the OCSP request for serial %s", request.serial_hex)
        return unsuccessful_response(ocsp.OCSPResponseStatus.INTERNAL_ERROR)


def decode_get_request(path: str) -> bytes:
    """DER request bytes from the GET form ``{url}/{url-encoded base64 of the DER}``.

    ``path`` is everything after the responder's base URL (base64 may itself
    contain ``/``); a leading ``/`` is ignored, percent-escapes are decoded
    (``+`` is kept as a base64 character, not a space), and missing padding
    or the URL-safe alphabet are tolerated.
    """
    text = unquote(path.strip().lstrip("/"))
    # A space can only be a "+" that some layer decoded the form-encoding way.
    text = "".join(text.replace(" ", "+").split()).replace("-", "+").replace("_", "/")
    if not text:
        raise MalformedOCSPRequestError("the OCSP GET request carries no data")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedOCSPRequestError("the OCSP GET request is not valid base64") from None


def create_ocsp_responder_certificate(
    authority: SigningAuthority,
    key_spec: KeySpec,
    validity: timedelta,
    now: datetime,
    *,
    common_name: str | None = None,
) -> OCSPResponder:
    """Issue a delegated OCSP responder certificate from ``authority``.

    Carries keyUsage digitalSignature, extendedKeyUsage OCSPSigning and
    id-pkix-ocsp-nocheck (clients do not check the responder's own status, so
    keep ``validity`` short). notAfter is clamped to the CA's.
    """
    key = generate_private_key(key_spec)
    if common_name is None:
        ca_names = authority.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        base = str(ca_names[0].value) if ca_names else "CA"
        common_name = f"{base} OCSP Responder"[:64]
    request = CertificateRequest(
        common_name=common_name,
        duration=validity,
        usages=("digital signature", "ocsp signing"),
    )
    issued = issue_certificate(request, key, authority, now, extra_extensions=((x509.OCSPNoCheck(), False),))
    return OCSPResponder(certificate=issued.certificate, private_key=key)


def load_ocsp_responder(
    certificate_pem: str | bytes,
    private_key_pem: str | bytes,
    authority: SigningAuthority,
    now: datetime,
) -> OCSPResponder:
    """Validate a stored delegated responder key pair against ``authority``.

    Raises ``InvalidCertificate`` (unparseable, not issued by the CA, or no
    OCSPSigning usage), ``InvalidKey``, ``KeyMismatch``, ``Expired`` or
    ``NotYetValid`` errors.
    """
    certificate = load_certificates(certificate_pem, "the OCSP responder certificate")[0]
    key = load_private_key(private_key_pem, "the OCSP responder private key")
    public = certificate.public_key()
    if not is_public_key(public) or not public_keys_equal(key, public):
        raise KeyMismatchError("the OCSP responder private key does not belong to its certificate")
    try:
        certificate.verify_directly_issued_by(authority.certificate)
    except (ValueError, TypeError, InvalidSignature):
        raise InvalidCertificateError("the OCSP responder certificate was not issued by the CA") from None
    try:
        extended = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        extended = None
    if extended is None or ExtendedKeyUsageOID.OCSP_SIGNING not in extended:
        raise InvalidCertificateError(
            "the OCSP responder certificate lacks the OCSPSigning extended key usage"
        )
    check_validity(certificate, now, "the OCSP responder certificate")
    return OCSPResponder(certificate=certificate, private_key=key)
