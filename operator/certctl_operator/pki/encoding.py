"""PEM / DER, serial number and fingerprint helpers shared by the PKI modules."""

from __future__ import annotations

import base64
import binascii
import functools
import re

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from .errors import InvalidCertificateError, InvalidRequestError

#: Upper bound (exclusive) for serial numbers: RFC 5280 allows at most 20
#: octets in a positive DER INTEGER, i.e. values below 2**159.
MAX_SERIAL = 1 << 159

_PEM_BLOCK_RE = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----(?P<body>[A-Za-z0-9+/=\s]*?)-----END (?P=label)-----"
)
_HEX_SEPARATORS_RE = re.compile(r"[\s:.-]")


def serial_to_hex(serial: int) -> str:
    """Render a serial number as uppercase hex without separators.

    The digits are padded to whole octets, which is the form
    ``openssl x509 -noout -serial`` prints.
    """
    if serial < 0:
        raise ValueError("serial numbers are positive")
    digits = f"{serial:X}"
    return digits if len(digits) % 2 == 0 else "0" + digits


def serial_from_hex(text: str) -> int:
    """Parse a hex serial number; colons, spaces, dots, dashes and case are ignored."""
    cleaned = _HEX_SEPARATORS_RE.sub("", text.strip())
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    if not cleaned or not re.fullmatch(r"[0-9A-Fa-f]+", cleaned):
        raise InvalidRequestError(f"serial number {text!r} is not hexadecimal")
    return int(cleaned, 16)


def parse_serial(value: int | str) -> int:
    """Accept a serial as an int or a hex string; check it is a valid X.509 serial."""
    serial = serial_from_hex(value) if isinstance(value, str) else value
    if isinstance(serial, bool) or not isinstance(serial, int):
        raise InvalidRequestError("serial number must be an integer or a hex string")
    if not 0 < serial < MAX_SERIAL:
        raise InvalidRequestError("serial number must be positive and at most 20 octets long")
    return serial


def fingerprint_sha256(certificate: x509.Certificate) -> str:
    """SHA-256 fingerprint of the DER certificate, uppercase hex without separators."""
    return certificate.fingerprint(hashes.SHA256()).hex().upper()


def certificate_to_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(Encoding.PEM).decode("ascii")


def _as_bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def load_certificates(data: str | bytes, what: str = "certificate data") -> list[x509.Certificate]:
    """Parse every ``CERTIFICATE`` block of a PEM bundle, in order.

    Raises :class:`InvalidCertificateError` when there is none or one is
    damaged.
    """
    raw = _as_bytes(data)
    if b"-----BEGIN CERTIFICATE-----" not in raw:
        raise InvalidCertificateError(f"{what} holds no PEM CERTIFICATE block")
    try:
        return x509.load_pem_x509_certificates(raw)
    except ValueError:
        raise InvalidCertificateError(f"{what} holds a PEM CERTIFICATE block that cannot be parsed") from None


def der_to_pem(der: bytes, label: str) -> str:
    """Wrap DER bytes in a PEM block (``label`` e.g. ``X509 CRL``)."""
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def pem_to_der(pem: str | bytes, label: str) -> bytes:
    """Return the DER bytes of the first PEM block called ``label``."""
    text = pem.decode("ascii", errors="replace") if isinstance(pem, bytes) else pem
    for match in _PEM_BLOCK_RE.finditer(text):
        if match.group("label") == label:
            try:
                return base64.b64decode("".join(match.group("body").split()), validate=True)
            except binascii.Error:
                raise ValueError(f"the PEM {label} block is not valid base64") from None
    raise ValueError(f"no PEM {label} block found")


def is_self_signed(certificate: x509.Certificate) -> bool:
    """True when the certificate names itself as issuer and its signature checks out."""
    if certificate.issuer != certificate.subject:
        return False  # every leaf of a CA: answered without keeping the certificate
    return _signs_itself(certificate)


@functools.lru_cache(maxsize=64)
def _signs_itself(certificate: x509.Certificate) -> bool:
    """Remembered per certificate (equal DER, equal answer): every issuance asks it of its CA's chain.

    Only self-named certificates get here (roots, self-signed leaves): the CAs in use at once fit,
    and no more than 64 certificates are kept alive by the cache.
    """
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
