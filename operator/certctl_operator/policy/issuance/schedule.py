"""When a ManagedCertificate next needs attention: renewal time, back-off, revocation, renew requests.

Everything here reads the certificate's spec and status (and ``now``); the
reconciler uses it to decide whether an issuance may start and when to look
at the certificate again.
"""

from __future__ import annotations

from datetime import datetime

from certctl_operator.api.certificate import (
    ManagedCertificate,
    ManagedCertificateSpec,
    ManagedCertificateStatus,
)
from certctl_operator.api.common import ConditionType, find_condition
from certctl_operator.api.metadata_keys import (
    ANNOTATION_RENEW,
)
from certctl_operator.pki import DEFAULT_BACKDATE
from certctl_operator.policy.issuance.names import (
    ISSUER_FAILURES,
    Reason,
    renew_token,
)
from certctl_operator.policy.issuance.notices import next_expiry_notice_time
from certctl_operator.policy.renewal import renewal_time


def certificate_renewal_time(
    spec: ManagedCertificateSpec, not_before: datetime, not_after: datetime
) -> datetime:
    """When a certificate valid ``not_before``..``not_after`` is renewed under ``spec``.

    The lifetime is counted from the issuance, not from the backdated
    notBefore, so a short certificate is not renewed the moment it is issued.
    A certificate valid for exactly ``spec.duration`` was not backdated: one
    cert-manager issued (adopted through ``certctl.io/allow-takeover-by``)
    starts at its signing time, and counting its lifetime from notBefore
    renews it when cert-manager would have.
    """
    backdated = not_after - not_before != spec.duration_delta
    issued_at = min(not_before + DEFAULT_BACKDATE, not_after) if backdated else not_before
    if spec.renew_before is not None:
        return renewal_time(issued_at, not_after, renew_before=spec.renew_before_delta)
    if spec.renew_before_percentage is not None:
        return renewal_time(issued_at, not_after, renew_before_percentage=spec.renew_before_percentage)
    return renewal_time(issued_at, not_after)


def current_serial_revoked(status: ManagedCertificateStatus) -> bool:
    """Whether the revocation side marked the current certificate revoked."""
    if status.revoked:
        return True
    serial = (status.serial_number or "").lower()
    return bool(serial) and serial in {s.lower() for s in status.revoked_serial_numbers or ()}


def revoked_serials(status: ManagedCertificateStatus) -> set[str]:
    return {s.lower() for s in status.revoked_serial_numbers or ()}


def pending_renew_request(cert: ManagedCertificate) -> str | None:
    """The ``certctl.io/renew`` value not answered yet, if any."""
    token = renew_token(cert.metadata.annotations.get(ANNOTATION_RENEW))
    if token is None or token == cert.status.last_renew_request:
        return None
    return token


def backoff_until(
    cert: ManagedCertificate, *, issuer_ready: bool, now: datetime, secret_free: bool = True
) -> datetime | None:
    """When the next issuance may start after failures; None when it may start now.

    The back-off is skipped when the spec changed since the failure, when a
    new ``certctl.io/renew`` value came after it (what ``kubectl certctl renew``
    promises), when the failure was the issuer's and the issuer can sign again,
    and when the failure was a Secret conflict and the Secret is free now.
    """
    status = cert.status
    if not status.failed_issuance_attempts or status.next_attempt_time is None:
        return None
    if now >= status.next_attempt_time:
        return None
    if cert.metadata.generation is not None and status.observed_generation != cert.metadata.generation:
        return None
    renew = pending_renew_request(cert)
    if renew is not None and renew != status.failed_renew_request:
        return None
    ready = find_condition(status.conditions, ConditionType.READY)
    if ready is not None and ready.reason in ISSUER_FAILURES and issuer_ready:
        return None
    if ready is not None and ready.reason == Reason.SECRET_CONFLICT and secret_free:
        return None
    return status.next_attempt_time


def next_action_time(cert: ManagedCertificate, now: datetime) -> datetime | None:
    """When this certificate next needs the reconciler, judged from its status alone."""
    status = cert.status
    ready = find_condition(status.conditions, ConditionType.READY)
    if (
        ready is not None
        and ready.reason == Reason.INVALID_SPEC
        and status.observed_generation == cert.metadata.generation
    ):
        return None
    revoked = current_serial_revoked(status)
    candidates: list[datetime] = []
    if not revoked:
        if status.renewal_time is not None:
            candidates.append(status.renewal_time)
        if status.not_after is not None:
            candidates.append(status.not_after)
    notice = next_expiry_notice_time(cert, now)
    if notice is not None:
        candidates.append(notice)
    future = [when for when in candidates if when > now]
    if status.failed_issuance_attempts and status.next_attempt_time is not None:
        # A retry stays due once its time has passed, and then runs now. Its time is whole seconds
        # (the failure's second plus the back-off), so with a short back-off it can pass before the
        # status that records it is written; dropped as past, the retry would never run. The
        # reconcile it brings clears it or sets a later one, so it does not come back at once.
        future.append(max(status.next_attempt_time, now))
    return min(future) if future else None
