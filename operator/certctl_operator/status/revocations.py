"""What a Revocation's ``.status`` says at each step, built from plain values.

Pure: the Revocation model, its metadata (for who asked), what was resolved
or recorded, and ``now`` go in; a new :class:`RevocationStatus` comes out and
the Revocation passed in is left as it was. The controllers in
``controllers/revocations`` decide when to write these; the messages of the
Ready condition live here so the status and the Events built from it agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from certctl_operator.api import (
    Condition,
    ConditionStatus,
    ConditionType,
    Revocation,
    RevocationPhase,
    RevocationReason,
    RevocationStatus,
    RevokedCertificate,
    find_condition,
    set_condition,
)
from certctl_operator.policy.revocation import IssuerKey, requested_by

SETTLED = (RevocationPhase.REVOKED.value, RevocationPhase.FAILED.value)
"""The phases (as written in the status) after which a Revocation is never looked at again."""


def is_unsettled(status: Mapping[str, Any] | None) -> bool:
    """True while the raw ``status`` of a Revocation is neither Revoked nor Failed."""
    return (status or {}).get("phase") not in SETTLED


def ready_condition(status: RevocationStatus) -> Condition | None:
    """The Ready condition of ``status``, if it has one."""
    return find_condition(status.conditions, ConditionType.READY)


def is_pending_for(status: RevocationStatus, reason: str, message: str) -> bool:
    """True when ``status`` already says Pending for ``reason`` with ``message`` (nothing to write)."""
    ready = ready_condition(status)
    return (
        status.phase is RevocationPhase.PENDING
        and ready is not None
        and (ready.reason, ready.message) == (reason, message)
    )


def _with_ready(
    after: RevocationStatus,
    revocation: Revocation,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
) -> RevocationStatus:
    after.observed_generation = revocation.metadata.generation
    after.conditions = set_condition(
        after.conditions,
        ConditionType.READY,
        status,
        reason,
        message,
        now=now,
        observed_generation=revocation.metadata.generation,
    )
    return after


def not_ready_status(
    revocation: Revocation,
    metadata: Mapping[str, Any],
    phase: RevocationPhase,
    reason: str,
    message: str,
    now: datetime,
) -> RevocationStatus:
    """The Revocation's status in ``phase`` (Pending or Failed) with Ready=False for ``reason``."""
    after = revocation.status.model_copy(deep=True)
    after.phase = phase
    after.requested_by, after.requested_by_source = requested_by(metadata)
    return _with_ready(after, revocation, ConditionStatus.FALSE, reason, message, now)


def resolved_status(
    revocation: Revocation,
    metadata: Mapping[str, Any],
    serial: str,
    key: IssuerKey,
    not_after: datetime | None,
    now: datetime,
) -> RevocationStatus:
    """Still Pending, with the resolved serial and issuer kept (Ready=False, reason Revoking)."""
    after = revocation.status.model_copy(deep=True)
    after.phase = RevocationPhase.PENDING
    after.serial_number = serial
    after.issuer_ref = key.reference
    after.not_after = not_after
    after.requested_by, after.requested_by_source = requested_by(metadata)
    message = f"revoking serial {serial} on the CRL of issuer {key.label}"
    return _with_ready(after, revocation, ConditionStatus.FALSE, "Revoking", message, now)


def revoked_on_crl_message(
    entry: RevokedCertificate, key: IssuerKey, crl_number: int | None, listed_now: bool
) -> str:
    """The Ready message (and Event) of a serial revoked on the CRL of a CA issuer."""
    message = (
        f"serial {entry.serial_number} is revoked ({entry.reason.value}) "
        f"on the CRL of issuer {key.label}, first listed in CRL number {crl_number}"
    )
    if not listed_now:
        message += (
            "; the serial was already listed (by an earlier attempt of this Revocation or by another "
            "Revocation), so nothing was listed twice"
        )
    return message


def revoked_at_acme_message(serial: str, reason: RevocationReason, key: IssuerKey) -> str:
    """The Ready message (and Event) of a serial revoked by the ACME CA of an acme issuer."""
    return f"serial {serial} is revoked ({reason.value}) by the ACME CA of issuer {key.label}"


def acme_notified_reason(key: IssuerKey, reason: RevocationReason, already_revoked: bool) -> str:
    """Why the status says the ACME CA was notified: it accepted revokeCert, or had revoked it before."""
    if already_revoked:
        return f"the ACME CA of issuer {key.label} had already revoked it"
    return f"the ACME CA of issuer {key.label} accepted revokeCert with reason code {reason.code}"


def revoked_status(
    revocation: Revocation,
    metadata: Mapping[str, Any],
    entry: RevokedCertificate,
    key: IssuerKey,
    *,
    crl_number: int | None,
    issuer_notified: bool,
    issuer_notified_reason: str,
    message: str,
    now: datetime,
) -> RevocationStatus:
    """Phase Revoked: what was revoked, by which issuer, when, and Ready=True with ``message``."""
    after = revocation.status.model_copy(deep=True)
    after.phase = RevocationPhase.REVOKED
    after.serial_number = entry.serial_number
    after.issuer_ref = key.reference
    after.revoked_at = entry.revoked_at
    after.not_after = entry.not_after
    after.crl_number = crl_number
    after.issuer_notified = issuer_notified
    after.issuer_notified_reason = issuer_notified_reason
    after.requested_by, after.requested_by_source = requested_by(metadata)
    return _with_ready(after, revocation, ConditionStatus.TRUE, "Revoked", message, now)


__all__ = [
    "SETTLED",
    "acme_notified_reason",
    "is_pending_for",
    "is_unsettled",
    "not_ready_status",
    "ready_condition",
    "resolved_status",
    "revoked_at_acme_message",
    "revoked_on_crl_message",
    "revoked_status",
]
