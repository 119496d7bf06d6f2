"""Errors raised by the PKI layer.

Every error carries a stable ``reason`` (a CamelCase word suited to a
Kubernetes condition reason or an Event reason) and a human message. Messages
describe what is wrong with a request, a certificate or a key; they never
include key material.
"""

from __future__ import annotations

from typing import ClassVar


class PKIError(Exception):
    """Base class of every error the PKI layer raises on purpose."""

    reason: ClassVar[str] = "PKIError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidRequestError(PKIError):
    """A certificate request (or a CRL / OCSP input) is not acceptable."""

    reason = "InvalidRequest"


class UnsupportedKeyError(PKIError):
    """A key algorithm, size or encoding this project does not support."""

    reason = "UnsupportedKey"


class AuthorityError(PKIError):
    """Base class of the errors found while validating a CA or responder key pair."""


class InvalidCertificateError(AuthorityError):
    """Certificate data that cannot be parsed or does not form a usable chain."""

    reason = "InvalidCertificate"


class InvalidKeyError(AuthorityError):
    """Private key data that cannot be parsed or is of an unusable kind."""

    reason = "InvalidKey"


class NotACAError(AuthorityError):
    """A certificate lacks basicConstraints CA=true or the keyCertSign usage."""

    reason = "NotACA"


class KeyMismatchError(AuthorityError):
    """The private key does not belong to the certificate."""

    reason = "KeyMismatch"


class CertificateExpiredError(AuthorityError):
    """A certificate's notAfter has passed."""

    reason = "Expired"


class CertificateNotYetValidError(AuthorityError):
    """A certificate's notBefore is still in the future."""

    reason = "NotYetValid"


class CRLSignNotPermittedError(PKIError):
    """The CA certificate's keyUsage does not allow signing CRLs (no cRLSign)."""

    reason = "CRLSignNotPermitted"


class InvalidRevocationError(PKIError):
    """A revocation entry (serial, time or reason) is not acceptable."""

    reason = "InvalidRevocation"


class MalformedOCSPRequestError(PKIError):
    """An OCSP request could not be decoded or uses something unsupported."""

    reason = "MalformedOCSPRequest"
