"""Ask a certificate's own CRL distribution points and OCSP responders whether it is revoked.

Only the URLs the certificate names are fetched (``http`` and ``https``;
other schemes are reported and skipped), one request each, nothing guessed.
Answers are checked before they are believed: a CRL must be for the
certificate's issuer and, when the issuer certificate is at hand, signed by
it; an OCSP response must be about this serial and signed by the issuer or by
a delegated responder certificate the issuer issued for OCSP signing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from certctl_operator.cli.output import format_time
from certctl_operator.pki.crl import REASONS_BY_FLAG

OCSP_REQUEST_TYPE = "application/ocsp-request"
HTTP_TIMEOUT = 10.0

IssuerKey = (
    rsa.RSAPublicKey
    | ec.EllipticCurvePublicKey
    | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
    | dsa.DSAPublicKey
)


class Verdict(StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    ERROR = "error"
    NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class SourceResult:
    """What one CRL or OCSP URL said."""

    source: str
    url: str
    verdict: Verdict
    detail: str
    revoked_at: datetime | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "url": self.url,
            "status": str(self.verdict),
            "detail": self.detail,
            "revokedAt": self.revoked_at.isoformat() if self.revoked_at else None,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RevocationReport:
    """Every source's answer and the overall verdict."""

    results: tuple[SourceResult, ...] = ()
    note: str | None = None

    @property
    def verdict(self) -> Verdict:
        verdicts = {result.verdict for result in self.results} - {Verdict.NOT_CHECKED}
        if not verdicts:
            return Verdict.NOT_CHECKED
        for verdict in (Verdict.REVOKED, Verdict.GOOD, Verdict.UNKNOWN):
            if verdict in verdicts:
                return verdict
        return Verdict.ERROR

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.verdict),
            "note": self.note,
            "sources": [result.as_dict() for result in self.results],
        }


def not_checked(note: str) -> RevocationReport:
    return RevocationReport((), note)


def _issuer_key(certificate: x509.Certificate) -> IssuerKey | None:
    key = certificate.public_key()
    if isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey
        | dsa.DSAPublicKey,
    ):
        return key
    return None


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Whether ``parent`` signed ``child``."""
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def find_issuer(leaf: x509.Certificate, candidates: Sequence[x509.Certificate]) -> x509.Certificate | None:
    """The certificate among ``candidates`` (chain, ca.crt) that signed ``leaf``; the leaf if self-signed."""
    for candidate in (*candidates, leaf):
        if candidate.subject == leaf.issuer and issued_by(leaf, candidate):
            return candidate
    return None


def _reason_name(flag: x509.ReasonFlags | None) -> str:
    if flag is None:
        return "unspecified"
    known = REASONS_BY_FLAG.get(flag)
    return known.name if known is not None else flag.value


def _verify(key: IssuerKey, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, dsa.DSAPublicKey) and algorithm is not None:
            key.verify(signature, data, algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def _http_url(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _fetch_error(error: httpx.HTTPError) -> str:
    return f"cannot fetch: {error.__class__.__name__}: {error}".rstrip(": ")


def check_crl(
    url: str, leaf: x509.Certificate, issuer: x509.Certificate | None, http: httpx.Client, now: datetime
) -> SourceResult:
    """Fetch one CRL and look the leaf's serial up in it."""

    def error(detail: str) -> SourceResult:
        return SourceResult("CRL", url, Verdict.ERROR, detail)

    try:
        response = http.get(url)
    except httpx.HTTPError as exc:
        return error(_fetch_error(exc))
    if response.status_code != 200:
        return error(f"HTTP {response.status_code} from the CRL distribution point")
    data = response.content
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(data)
    except ValueError:
        return error("the answer is not a readable X.509 CRL")
    if crl.issuer != leaf.issuer:
        return error(
            f"the CRL is issued by {crl.issuer.rfc4514_string()}, not by the certificate's issuer "
            f"{leaf.issuer.rfc4514_string()}"
        )
    notes: list[str] = []
    key = _issuer_key(issuer) if issuer is not None else None
    if key is not None:
        if not crl.is_signature_valid(key):
            return error("the CRL's signature does not verify with the issuer certificate: do not trust it")
        notes.append("signature verified")
    else:
        notes.append("signature not verified (issuer certificate not in the Secret)")
    try:
        number: int | None = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = None
    next_update = crl.next_update_utc
    if next_update is not None and next_update < now:
        notes.append(f"STALE: nextUpdate {format_time(next_update)} has passed")
    elif next_update is not None:
        notes.append(f"next update {format_time(next_update)}")
    label = f"CRL #{number}" if number is not None else "the CRL"
    entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
    if entry is None:
        return SourceResult("CRL", url, Verdict.GOOD, f"not listed on {label}; " + "; ".join(notes))
    try:
        flag: x509.ReasonFlags | None = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        flag = None
    reason = _reason_name(flag)
    revoked_at = entry.revocation_date_utc
    detail = f"listed on {label}: revoked {format_time(revoked_at)} ({reason}); " + "; ".join(notes)
    return SourceResult("CRL", url, Verdict.REVOKED, detail, revoked_at, reason)


def _has_ocsp_signing(certificate: x509.Certificate) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in usage


def check_ocsp(
    url: str, leaf: x509.Certificate, issuer: x509.Certificate | None, http: httpx.Client, now: datetime
) -> SourceResult:
    """Ask one OCSP responder about the leaf (a POST, RFC 6960 appendix A)."""

    def error(detail: str) -> SourceResult:
        return SourceResult("OCSP", url, Verdict.ERROR, detail)

    if issuer is None:
        return SourceResult(
            "OCSP",
            url,
            Verdict.NOT_CHECKED,
            "not asked: an OCSP request names the issuer, and the issuer certificate is not in the Secret",
        )
    nonce = os.urandom(16)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, issuer, hashes.SHA1())  # noqa: S303 (the CertID hash every responder knows)
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    try:
        response = http.post(url, content=request, headers={"Content-Type": OCSP_REQUEST_TYPE})
    except httpx.HTTPError as exc:
        return error(_fetch_error(exc))
    if response.status_code != 200:
        return error(f"HTTP {response.status_code} from the OCSP responder")
    try:
        answer = ocsp.load_der_ocsp_response(response.content)
    except ValueError:
        return error("the answer is not a readable OCSP response")
    if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return error(f"the responder answered {answer.response_status.name.lower()}")
    if answer.serial_number != leaf.serial_number:
        return error("the response is about another serial number")

    signers = [issuer] + [
        cert for cert in answer.certificates if issued_by(cert, issuer) and _has_ocsp_signing(cert)
    ]
    keys = [key for key in (_issuer_key(signer) for signer in signers) if key is not None]
    algorithm = answer.signature_hash_algorithm
    if not any(_verify(key, answer.signature, answer.tbs_response_bytes, algorithm) for key in keys):
        return error("the response is not signed by the issuer or a responder it authorized: do not trust it")
    try:
        echoed = answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        echoed = None
    if echoed is not None and echoed != nonce:
        return error("the response carries another request's nonce (a replay?)")
    notes = ["signature verified"]
    next_update = answer.next_update_utc
    if next_update is not None and next_update < now:
        notes.append(f"STALE: nextUpdate {format_time(next_update)} has passed")

    status = answer.certificate_status
    if status == ocsp.OCSPCertStatus.REVOKED:
        revoked_at = answer.revocation_time_utc
        reason = _reason_name(answer.revocation_reason)
        detail = f"revoked {format_time(revoked_at)} ({reason}); " + "; ".join(notes)
        return SourceResult("OCSP", url, Verdict.REVOKED, detail, revoked_at, reason)
    if status == ocsp.OCSPCertStatus.GOOD:
        return SourceResult("OCSP", url, Verdict.GOOD, "good; " + "; ".join(notes))
    return SourceResult(
        "OCSP", url, Verdict.UNKNOWN, "the responder does not know this serial; " + "; ".join(notes)
    )


def check_revocation(
    leaf: x509.Certificate,
    issuer: x509.Certificate | None,
    *,
    crl_urls: Sequence[str],
    ocsp_urls: Sequence[str],
    now: datetime,
    http: httpx.Client | None = None,
) -> RevocationReport:
    """Ask every CRL distribution point and OCSP responder the certificate names."""
    if not crl_urls and not ocsp_urls:
        return not_checked("not checked: no CRL/OCSP URL in the certificate")
    results: list[SourceResult] = []
    own_client = http is None
    session = http or httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False)
    try:
        for source, urls, check in (("CRL", crl_urls, check_crl), ("OCSP", ocsp_urls, check_ocsp)):
            for url in urls:
                if not _http_url(url):
                    results.append(
                        SourceResult(
                            source, url, Verdict.NOT_CHECKED, "skipped: only http(s) URLs are fetched"
                        )
                    )
                    continue
                results.append(check(url, leaf, issuer, session, now))
    finally:
        if own_client:
            session.close()
    return RevocationReport(tuple(results))
