"""What a ManagedCertificate's ``.status`` says after each outcome, and how its Ready condition moved.

Pure builders: each takes the certificate (and ``now``) and returns the new
status; the reconciler writes it. The decisions themselves are
:mod:`certctl_operator.policy.issuance`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from certctl_operator.api.certificate import ACMEOrderStatus, ManagedCertificate, ManagedCertificateStatus
from certctl_operator.api.common import (
    Condition,
    ConditionStatus,
    ConditionType,
    find_condition,
    set_condition,
)
from certctl_operator.api.metadata_keys import (
    ANNOTATION_RENEW,
)
from certctl_operator.policy.clock import format_rfc3339
from certctl_operator.policy.issuance.names import (
    Reason,
)
from certctl_operator.policy.issuance.schedule import certificate_renewal_time, pending_renew_request
from certctl_operator.policy.issuance.secret import SecretExamination
from certctl_operator.policy.renewal import issuance_backoff


@dataclass(frozen=True)
class CertificateFacts:
    """The certificate that is now in the Secret."""

    revision: int
    serial: str
    fingerprint: str
    not_before: datetime
    not_after: datetime


def _conditions(
    conditions: Sequence[Condition],
    *,
    now: datetime,
    generation: int | None,
    ready: tuple[ConditionStatus, str, str],
    issuing: tuple[ConditionStatus, str, str],
) -> list[Condition]:
    updated = set_condition(conditions, ConditionType.READY, *ready, now=now, observed_generation=generation)
    return set_condition(updated, ConditionType.ISSUING, *issuing, now=now, observed_generation=generation)


def _ready_message(facts: CertificateFacts) -> str:
    return (
        f"Certificate revision {facts.revision} (serial {facts.serial}) is valid until "
        f"{format_rfc3339(facts.not_after)}"
    )


def status_after_issuance(
    cert: ManagedCertificate, facts: CertificateFacts, *, renew_request: str | None, now: datetime
) -> ManagedCertificateStatus:
    """The status once ``facts`` are in the Secret (issued now, or adopted)."""
    spec = cert.spec
    # Shallow: the fields set below are replaced, never changed in place (set_condition makes a new
    # list), and the deep copy was a noticeable part of the CPU of every issuance.
    status = cert.status.model_copy()
    status.secret_name = spec.secret_name
    status.issuer_ref = spec.issuer_ref.model_copy()
    status.revision = facts.revision
    status.serial_number = facts.serial
    status.fingerprint_sha256 = facts.fingerprint
    status.not_before = facts.not_before
    status.not_after = facts.not_after
    status.renewal_time = certificate_renewal_time(spec, facts.not_before, facts.not_after)
    status.last_failure_time = None
    status.failed_issuance_attempts = None
    status.next_attempt_time = None
    status.notified_expiry_thresholds = None
    status.last_renew_request = renew_request
    status.failed_renew_request = None
    if status.revoked is not None:
        status.revoked = False
    status.observed_generation = cert.metadata.generation
    status.conditions = _conditions(
        status.conditions,
        now=now,
        generation=cert.metadata.generation,
        ready=(ConditionStatus.TRUE, Reason.ISSUED, _ready_message(facts)),
        issuing=(ConditionStatus.FALSE, Reason.UP_TO_DATE, "The Secret holds the current certificate"),
    )
    return status


def status_in_sync(
    cert: ManagedCertificate, exam: SecretExamination, *, now: datetime
) -> ManagedCertificateStatus:
    """The status of a certificate whose Secret is current and that needs nothing now."""
    assert exam.serial and exam.fingerprint and exam.not_before and exam.not_after
    facts = CertificateFacts(
        revision=cert.status.revision or 0,
        serial=exam.serial,
        fingerprint=exam.fingerprint,
        not_before=exam.not_before,
        not_after=exam.not_after,
    )
    status = status_after_issuance(cert, facts, renew_request=cert.status.last_renew_request, now=now)
    status.revoked = cert.status.revoked
    status.notified_expiry_thresholds = cert.status.notified_expiry_thresholds
    return status


def status_after_failure(
    cert: ManagedCertificate,
    *,
    reason: str,
    message: str,
    trigger: str,
    trigger_message: str,
    now: datetime,
    retry_base: timedelta,
    retry_cap: timedelta,
) -> ManagedCertificateStatus:
    """The status after a failed issuance: counted, timed, and the next attempt scheduled.

    The ``certctl.io/renew`` value pending during the attempt is recorded: only
    a newer one skips the back-off.
    """
    status = cert.status.model_copy(deep=True)
    status.failed_renew_request = pending_renew_request(cert)
    attempts = (status.failed_issuance_attempts or 0) + 1
    next_attempt = now.replace(microsecond=0) + issuance_backoff(attempts, retry_base, retry_cap)
    status.failed_issuance_attempts = attempts
    status.last_failure_time = now
    status.next_attempt_time = next_attempt
    status.observed_generation = cert.metadata.generation
    status.conditions = _conditions(
        status.conditions,
        now=now,
        generation=cert.metadata.generation,
        ready=(ConditionStatus.FALSE, reason, message),
        issuing=(
            ConditionStatus.TRUE,
            trigger,
            f"{trigger_message}; attempt {attempts} failed, next attempt at {format_rfc3339(next_attempt)}",
        ),
    )
    return status


def status_conflict_waiting(
    cert: ManagedCertificate, conflict: str, *, now: datetime
) -> ManagedCertificateStatus:
    """A certificate waiting out its back-off after a Secret conflict: Ready says the conflict as it is now.

    The Secret may have changed hands meanwhile (another certificate took it
    over); the message follows without counting an attempt.
    """
    status = cert.status.model_copy(deep=True)
    ready = find_condition(status.conditions, ConditionType.READY)
    if ready is None or ready.reason != Reason.SECRET_CONFLICT or ready.message == conflict:
        return status
    status.conditions = set_condition(
        status.conditions,
        ConditionType.READY,
        ConditionStatus.FALSE,
        Reason.SECRET_CONFLICT,
        conflict,
        now=now,
        observed_generation=ready.observed_generation,
    )
    return status


def status_invalid(cert: ManagedCertificate, message: str, *, now: datetime) -> ManagedCertificateStatus:
    """The status of a spec that can never be issued: reported once, never retried."""
    status = cert.status.model_copy(deep=True)
    status.next_attempt_time = None
    status.observed_generation = cert.metadata.generation
    status.conditions = _conditions(
        status.conditions,
        now=now,
        generation=cert.metadata.generation,
        ready=(ConditionStatus.FALSE, Reason.INVALID_SPEC, message),
        issuing=(ConditionStatus.FALSE, Reason.INVALID_SPEC, "Not issued until the spec is corrected"),
    )
    return status


def status_revoked(cert: ManagedCertificate, *, now: datetime) -> ManagedCertificateStatus:
    """The status of a certificate that stays revoked until a reissue is requested.

    A Ready condition the revocation already set to False/Revoked is kept as it is.
    """
    status = cert.status.model_copy(deep=True)
    status.next_attempt_time = None
    status.observed_generation = cert.metadata.generation
    ready = find_condition(status.conditions, ConditionType.READY)
    if ready is None or (ready.status, ready.reason) != (ConditionStatus.FALSE, Reason.REVOKED):
        status.conditions = set_condition(
            status.conditions,
            ConditionType.READY,
            ConditionStatus.FALSE,
            Reason.REVOKED,
            f"The current certificate (serial {status.serial_number}) is revoked",
            now=now,
            observed_generation=cert.metadata.generation,
        )
    status.conditions = set_condition(
        status.conditions,
        ConditionType.ISSUING,
        ConditionStatus.FALSE,
        Reason.REVOKED,
        f"Not reissued automatically while revoked: set the annotation {ANNOTATION_RENEW} to a new value "
        "to issue a new certificate with a new key",
        now=now,
        observed_generation=cert.metadata.generation,
    )
    return status


def ready_condition(status: ManagedCertificateStatus) -> Condition | None:
    return find_condition(status.conditions, ConditionType.READY)


def ready_transition(before: ManagedCertificateStatus, after: ManagedCertificateStatus) -> bool:
    """Whether the Ready condition changed its status or reason (what deserves an Event)."""
    old, new = ready_condition(before), ready_condition(after)
    if new is None:
        return False
    return old is None or (old.status, old.reason) != (new.status, new.reason)


def status_unreadable(
    body: Mapping[str, Any], message: str, *, now: datetime
) -> tuple[ManagedCertificateStatus, ManagedCertificateStatus]:
    """(current, wanted) status of a ManagedCertificate whose spec the models refuse.

    Ready and Issuing become False/InvalidSpec with ``message``; the rest of the
    status is kept. A status the models cannot read either is replaced whole.
    """
    try:
        current = ManagedCertificateStatus.model_validate(dict(body.get("status") or {}))
    except ValidationError:
        current = ManagedCertificateStatus()
    generation = (body.get("metadata") or {}).get("generation")
    wanted = current.model_copy(deep=True)
    wanted.next_attempt_time = None
    wanted.observed_generation = generation
    wanted.conditions = _conditions(
        wanted.conditions,
        now=now,
        generation=generation,
        ready=(ConditionStatus.FALSE, Reason.INVALID_SPEC, message),
        issuing=(ConditionStatus.FALSE, Reason.INVALID_SPEC, "Not issued until the spec is corrected"),
    )
    return current, wanted


def with_acme_order(status: ManagedCertificateStatus, order: ACMEOrderStatus) -> ManagedCertificateStatus:
    """``status`` recording ``order`` as the ACME order in progress (the rest unchanged)."""
    return status.model_copy(update={"acme_order": order})


def ready_or_message_changed(before: ManagedCertificateStatus, after: ManagedCertificateStatus) -> bool:
    """Whether Ready changed its status or reason, or kept them with another message.

    An invalid spec stays Invalid while being edited; a new problem in it
    deserves its own Event even though the condition's reason is the same.
    """
    old, new = ready_condition(before), ready_condition(after)
    return ready_transition(before, after) or (
        old is not None and new is not None and old.message != new.message
    )


__all__ = [
    "CertificateFacts",
    "ready_condition",
    "ready_or_message_changed",
    "ready_transition",
    "status_after_failure",
    "status_after_issuance",
    "status_conflict_waiting",
    "status_in_sync",
    "status_invalid",
    "status_revoked",
    "status_unreadable",
    "with_acme_order",
]
