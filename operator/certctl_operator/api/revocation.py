"""Revocation: an immutable request to revoke one ManagedCertificate's certificate."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, WithJsonSchema, field_validator

from certctl_operator.api.common import (
    AGE_COLUMN,
    ApiModel,
    CelRule,
    IssuerReference,
    LocalObjectReference,
    PrinterColumn,
    Resource,
    ShortText,
    StatusBase,
    StrictBool,
    StrictInt,
    Timestamp,
    cel_rules,
)


class RevocationReason(StrEnum):
    """The RFC 5280 CRLReason values accepted for a revocation."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    CA_COMPROMISE = "cACompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    CERTIFICATE_HOLD = "certificateHold"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"

    @property
    def code(self) -> int:
        """The CRLReason number RFC 5280 gives this reason."""
        return _REASON_CODES[self]


_REASON_CODES = {
    RevocationReason.UNSPECIFIED: 0,
    RevocationReason.KEY_COMPROMISE: 1,
    RevocationReason.CA_COMPROMISE: 2,
    RevocationReason.AFFILIATION_CHANGED: 3,
    RevocationReason.SUPERSEDED: 4,
    RevocationReason.CESSATION_OF_OPERATION: 5,
    RevocationReason.CERTIFICATE_HOLD: 6,
    RevocationReason.PRIVILEGE_WITHDRAWN: 9,
}

REFUSED_REASONS: dict[str, CelRule] = {
    "removeFromCRL": CelRule(
        rule="self != 'removeFromCRL'",
        message=(
            "removeFromCRL is not accepted: it is only meaningful in delta CRLs, to lift a certificateHold, "
            "and is never a reason to revoke a certificate"
        ),
    ),
    "aACompromise": CelRule(
        rule="self != 'aACompromise'",
        message=(
            "aACompromise is not accepted: it concerns attribute authorities and attribute certificates, "
            "which this operator does not issue"
        ),
    ),
}
"""The two RFC 5280 reasons that are refused, each with the message saying why."""

_ACCEPTED_REASONS = CelRule(
    rule=f"self in {[str(reason) for reason in RevocationReason]} || self in {list(REFUSED_REASONS)}",
    message="reason must be one of " + ", ".join(RevocationReason),
    message_expression=(
        "'unknown revocation reason ' + self + ': use one of " + ", ".join(RevocationReason) + "'"
    ),
)
# No enum in the schema: an enum failure stops the API server from running the
# CEL rules, and the refused reasons must say why they are refused.
_REASON_SCHEMA = {
    "type": "string",
    "maxLength": 32,
    **cel_rules(*REFUSED_REASONS.values(), _ACCEPTED_REASONS),
}

SPEC_IMMUTABLE = CelRule(
    rule="self == oldSelf",
    message=(
        "Revocation spec is immutable: a revocation cannot be changed once requested; "
        "create another Revocation instead"
    ),
)


class RevocationSpec(ApiModel):
    """Which certificate to revoke and why. The spec cannot be changed after creation."""

    model_config = ConfigDict(json_schema_extra=cel_rules(SPEC_IMMUTABLE))

    certificate_ref: LocalObjectReference = Field(
        description="The ManagedCertificate, in this namespace, whose current certificate is revoked."
    )
    reason: Annotated[RevocationReason, WithJsonSchema(_REASON_SCHEMA)] = Field(
        description=(
            "RFC 5280 reason for the revocation: unspecified, keyCompromise, cACompromise, "
            "affiliationChanged, superseded, cessationOfOperation, certificateHold or privilegeWithdrawn. "
            "removeFromCRL and aACompromise are refused."
        ),
    )
    reissue: StrictBool = Field(
        default=True,
        description="Whether the ManagedCertificate is issued again, with a new serial number, once revoked.",
    )
    comment: ShortText | None = Field(
        default=None,
        description="Free text kept with the revocation for the audit trail (not published in the CRL).",
    )

    @field_validator("reason", mode="before")
    @classmethod
    def _refused_reason(cls, value: Any) -> Any:
        refused = REFUSED_REASONS.get(value) if isinstance(value, str) else None
        if refused is not None:
            raise ValueError(refused.message)
        return value


class RevocationPhase(StrEnum):
    """Where a revocation stands."""

    PENDING = "Pending"
    REVOKED = "Revoked"
    FAILED = "Failed"


class RequestedBySource(StrEnum):
    """Where a Revocation's requestedBy was read from."""

    FIELD_MANAGER = "FieldManager"
    ANNOTATION = "Annotation"


class RevocationStatus(StatusBase):
    """Observed state of a Revocation."""

    phase: RevocationPhase | None = Field(
        default=None,
        description="Pending, then Revoked once the certificate is on its issuer's CRL; or Failed.",
    )
    serial_number: str | None = Field(
        default=None,
        max_length=128,
        description="Serial number of the revoked certificate, lowercase hexadecimal without separators.",
    )
    issuer_ref: IssuerReference | None = Field(
        default=None,
        description="The issuer that signed the revoked certificate and lists it on its CRL.",
    )
    revoked_at: Timestamp | None = Field(default=None, description="When the certificate was revoked.")
    crl_number: StrictInt | None = Field(
        default=None,
        ge=0,
        description="Number of the first CRL that lists the certificate.",
        json_schema_extra={"format": "int64"},
    )
    issuer_notified: StrictBool | None = Field(
        default=None,
        description="Whether the issuing CA acknowledged the revocation (best effort; never blocks it).",
    )
    issuer_notified_reason: ShortText | None = Field(
        default=None,
        description="Why the issuing CA was or was not notified.",
    )
    not_after: Timestamp | None = Field(
        default=None, description="Expiry of the revoked certificate; its CRL entry is kept until then."
    )
    requested_by: str | None = Field(
        default=None,
        max_length=512,
        description=(
            "Who created the Revocation, as far as the API tells: the field manager that created the "
            "object, or the certctl.io/requested-by annotation. Not an authenticated identity; the API "
            "server's audit log has that."
        ),
    )
    requested_by_source: RequestedBySource | None = Field(
        default=None,
        description="Where requestedBy comes from: FieldManager or Annotation.",
    )


class Revocation(Resource[RevocationSpec, RevocationStatus]):
    """A request to revoke the current certificate of one ManagedCertificate."""

    KIND: ClassVar[str] = "Revocation"
    PLURAL: ClassVar[str] = "revocations"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ctlrevoke",)
    PRINTER_COLUMNS: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn(
            "Certificate", "string", ".spec.certificateRef.name", "The ManagedCertificate revoked."
        ),
        PrinterColumn("Reason", "string", ".spec.reason", "RFC 5280 reason."),
        PrinterColumn("Phase", "string", ".status.phase", "Pending, Revoked or Failed."),
        PrinterColumn("Revoked At", "date", ".status.revokedAt", "When the certificate was revoked."),
        PrinterColumn("Serial", "string", ".status.serialNumber", "Serial number revoked.", priority=1),
        AGE_COLUMN,
    )

    status: RevocationStatus = Field(default_factory=RevocationStatus)
