"""Names and formats a ManagedCertificate's issuance shares with its Secret and its Events.

The ``certctl.io/*`` annotations and labels the operator writes on Secrets and
reads on certificates, the condition and Event reasons, and how renew tokens,
label values and serial numbers are written down.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

from certctl_operator.api.metadata_keys import (
    ANNOTATION_CERTIFICATE_NAME,
    ANNOTATION_ISSUER_KIND,
    ANNOTATION_ISSUER_NAME,
    ANNOTATION_RENEW_REQUEST,
    ANNOTATION_REQUEST_HASH,
    ANNOTATION_REVISION,
    ANNOTATION_SERIAL_NUMBER,
)
from certctl_operator.pki import serial_to_hex
from certctl_operator.policy.renewal import object_name

OUR_ANNOTATIONS = (
    ANNOTATION_CERTIFICATE_NAME,
    ANNOTATION_ISSUER_NAME,
    ANNOTATION_ISSUER_KIND,
    ANNOTATION_SERIAL_NUMBER,
    ANNOTATION_REVISION,
    ANNOTATION_REQUEST_HASH,
    ANNOTATION_RENEW_REQUEST,
)

CLUSTER_SEGMENT = "_cluster"
"""Stands for the namespace in the CRL and OCSP URLs of a ClusterIssuer."""

RENEW_TOKEN_LIMIT = 256


class Reason(StrEnum):
    """Condition and Event reasons of a ManagedCertificate."""

    ISSUED = "Issued"
    RENEWED = "Renewed"
    UP_TO_DATE = "UpToDate"
    ISSUER_NOT_FOUND = "IssuerNotFound"
    ISSUER_NOT_READY = "IssuerNotReady"
    ISSUANCE_FAILED = "IssuanceFailed"
    SECRET_CONFLICT = "SecretConflict"  # noqa: S105 (a reason, not a password)
    INVALID_SPEC = "InvalidSpec"
    NAME_CONSTRAINTS = "NameConstraintViolation"
    REVOKED = "Revoked"
    # Why an issuance is needed (the Issuing condition's reason).
    DOES_NOT_EXIST = "DoesNotExist"
    SECRET_MISMATCH = "SecretMismatch"  # noqa: S105 (a reason, not a password)
    SPEC_CHANGED = "SpecChanged"
    ISSUER_CHANGED = "IssuerChanged"
    RENEWING = "Renewing"
    EXPIRED = "Expired"
    MANUALLY_TRIGGERED = "ManuallyTriggered"


ISSUER_FAILURES = frozenset({Reason.ISSUER_NOT_FOUND, Reason.ISSUER_NOT_READY})


def renew_token(value: str | None) -> str | None:
    """How a ``certctl.io/renew`` value is recorded: as is, or its SHA-256 when very long."""
    if value is None:
        return None
    if len(value) <= RENEW_TOKEN_LIMIT:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def managed_by_label_value(certificate_name: str) -> str:
    """The ``managed-by-certificate`` label value: the name, or a hashed form when over 63 characters."""
    return object_name(certificate_name, max_length=63)


def serial_hex(serial: int) -> str:
    """Serial numbers as the status and annotations write them: lowercase hex."""
    return serial_to_hex(serial).lower()
