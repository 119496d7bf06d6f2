"""The one thing the reconciler does with a ManagedCertificate now, and why a new certificate is due.

:func:`decide` first settles what is not an issuance (a spec that can never be
issued, a revoked certificate nobody asked to reissue, a Secret written before
a crash to adopt), then asks :data:`REISSUE_CHAIN` whether a certificate must
be issued and why. The chain is an ordered tuple of small pure checks, like
cert-manager's ``policies.Chain``: each takes the same :class:`ReissueInput`
and returns None when it has nothing to say or a :class:`ReissueReason` (the
Issuing condition's reason and message); the first hit wins, so the order in
the tuple is the precedence. An issuance that is due then waits out its
back-off or gives way to a Secret conflict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from certctl_operator.api.certificate import (
    ManagedCertificate,
    ManagedCertificateSpec,
    ManagedCertificateStatus,
    RotationPolicy,
)
from certctl_operator.api.metadata_keys import (
    ANNOTATION_RENEW,
)
from certctl_operator.pki import key_matches_spec
from certctl_operator.policy.clock import format_rfc3339, require_aware
from certctl_operator.policy.issuance.names import (
    Reason,
)
from certctl_operator.policy.issuance.schedule import (
    backoff_until,
    certificate_renewal_time,
    current_serial_revoked,
    pending_renew_request,
    revoked_serials,
)
from certctl_operator.policy.issuance.secret import Mismatch, SecretExamination
from certctl_operator.policy.issuance.spec import key_spec_for


class Action(StrEnum):
    NONE = "None"
    """The Secret is current and nothing is due."""
    ADOPT = "Adopt"
    """The Secret holds the next revision, written before a crash: record it in the status."""
    ISSUE = "Issue"
    """Issue revision ``Decision.revision`` now."""
    WAIT = "Wait"
    """An issuance is needed but the back-off after a failure has not passed."""
    INVALID = "Invalid"
    """The spec can never be issued; reported, not retried."""
    REVOKED = "Revoked"
    """The current certificate is revoked and no reissue was requested."""
    CONFLICT = "Conflict"
    """An issuance is due but the Secret is not this certificate's to write (``Decision.conflict``)."""


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    message: str = ""
    revision: int | None = None
    new_key: bool = True
    renew_request: str | None = None
    not_before: datetime | None = None
    """For WAIT: when the next attempt is due."""
    conflict: str | None = None
    """For CONFLICT, and for WAIT while it lasts: why the Secret must not be written."""


# --------------------------------------------------------------------------- the reissue chain


@dataclass(frozen=True)
class ReissueInput:
    """What every reissue check looks at: the certificate, its Secret as examined, and ``now``."""

    spec: ManagedCertificateSpec
    status: ManagedCertificateStatus
    secret: SecretExamination
    own_revision: int | None
    """The revision the Secret counts as for this certificate (see :func:`claimed_revision`)."""
    renew_request: str | None
    """The ``certctl.io/renew`` value not answered yet (:func:`pending_renew_request`)."""
    now: datetime

    @property
    def in_sync(self) -> bool:
        """The Secret fits and holds the very certificate the status records."""
        secret, status = self.secret, self.status
        return (
            secret.fits
            and self.own_revision == (status.revision or 0)
            and secret.serial == (status.serial_number or "").lower()
            and (status.fingerprint_sha256 is None or secret.fingerprint == status.fingerprint_sha256.lower())
        )


@dataclass(frozen=True)
class ReissueReason:
    """Why a new certificate is due: the Issuing condition's reason and its human message."""

    reason: Reason
    message: str


ReissueCheck = Callable[[ReissueInput], ReissueReason | None]


def secret_does_not_exist(facts: ReissueInput) -> ReissueReason | None:
    if facts.secret.exists:
        return None
    return ReissueReason(Reason.DOES_NOT_EXIST, f"Secret {facts.spec.secret_name} does not exist")


def secret_does_not_fit(facts: ReissueInput) -> ReissueReason | None:
    """The Secret differs from what the spec and the issuer want; every difference is listed."""
    problems = facts.secret.problems
    if not problems:
        return None
    kinds = {kind for kind, _ in problems}
    # Named after the most telling difference: an edited Secret, then the spec, then the issuer.
    reason = Reason(next(kind for kind in Mismatch if kind in kinds).value)
    return ReissueReason(reason, "; ".join(text for _, text in problems))


def secret_is_not_the_recorded_certificate(facts: ReissueInput) -> ReissueReason | None:
    """The Secret fits but holds another revision or certificate than the status records.

    Past this check the Secret is in sync, which the renewal checks after it rely on.
    """
    if facts.in_sync:
        # examine_secret reads the validity with the serial: a Secret in sync has both.
        assert facts.secret.not_before is not None and facts.secret.not_after is not None
        return None
    secret, status = facts.secret, facts.status
    return ReissueReason(
        Reason.SECRET_MISMATCH,
        f"the Secret holds revision {secret.revision} (serial {secret.serial}), the status records revision "
        f"{status.revision} (serial {status.serial_number})",
    )


def renewal_requested(facts: ReissueInput) -> ReissueReason | None:
    if facts.renew_request is None:
        return None
    return ReissueReason(
        Reason.MANUALLY_TRIGGERED, f"renewal requested with {ANNOTATION_RENEW}={facts.renew_request}"
    )


def certificate_expired(facts: ReissueInput) -> ReissueReason | None:
    not_after = facts.secret.not_after
    if not_after is None or facts.now < not_after:
        return None
    return ReissueReason(Reason.EXPIRED, f"the certificate expired at {format_rfc3339(not_after)}")


def renewal_time_reached(facts: ReissueInput) -> ReissueReason | None:
    not_before, not_after = facts.secret.not_before, facts.secret.not_after
    if not_before is None or not_after is None:
        return None
    if facts.now < certificate_renewal_time(facts.spec, not_before, not_after):
        return None
    return ReissueReason(Reason.RENEWING, "the renewal time has come")


REISSUE_CHAIN: tuple[ReissueCheck, ...] = (
    secret_does_not_exist,
    secret_does_not_fit,
    secret_is_not_the_recorded_certificate,
    renewal_requested,
    certificate_expired,
    renewal_time_reached,
)
"""The reissue checks in order of precedence: the Secret's state first, then the reasons to renew."""


def reissue_reason(
    facts: ReissueInput, chain: Sequence[ReissueCheck] = REISSUE_CHAIN
) -> ReissueReason | None:
    """The first check of ``chain`` that asks for a new certificate; None when none does."""
    for check in chain:
        hit = check(facts)
        if hit is not None:
            return hit
    return None


# --------------------------------------------------------------------------- adoption


def claimed_revision(cert: ManagedCertificate, exam: SecretExamination) -> int | None:
    """The revision the Secret counts as for ``cert``; None when it is not this certificate's.

    A Secret written for ``cert`` counts as the revision its annotation names. A
    handed-over Secret (``certctl.io/allow-takeover-by``) that the status already
    records counts as the status's revision.
    """
    status = cert.status
    current = status.revision or 0
    if (
        exam.taken_over
        and exam.fits
        and exam.not_before is not None
        and exam.not_after is not None
        and current >= 1
        and exam.serial == (status.serial_number or "").lower()
    ):
        return current
    return exam.revision if exam.owner == (cert.metadata.name or "") else None


def adoption(
    cert: ManagedCertificate,
    exam: SecretExamination,
    *,
    own_revision: int | None,
    renew: str | None,
    now: datetime,
) -> Decision | None:
    """The ADOPT decision when the Secret holds a certificate to record rather than replace.

    ``own_revision`` is :func:`claimed_revision`; ``renew`` is :func:`pending_renew_request`.
    """
    status = cert.status
    current = status.revision or 0
    handled = renew if renew is not None else status.last_renew_request
    if exam.taken_over and exam.fits and exam.not_before is not None and exam.not_after is not None:
        # Adoption of a handed-over Secret: its key and certificate are kept until renewal is
        # due, as revision 1; the next reconcile finds it in sync and adds certctl's annotations.
        due = now >= certificate_renewal_time(cert.spec, exam.not_before, exam.not_after)
        if current == 0 and not due and renew is None:
            return Decision(Action.ADOPT, revision=1, renew_request=handled)
    if (
        exam.fits
        and own_revision is not None
        and exam.serial != (status.serial_number or "").lower()
        and exam.serial not in revoked_serials(status)
        # More than one ahead when status writes lost races while the spec kept changing: each
        # issuance took the revision after the Secret's, and none was recorded. The newest fits.
        and own_revision > current
    ):
        return Decision(Action.ADOPT, revision=own_revision, renew_request=exam.renew_request or handled)
    return None


# --------------------------------------------------------------------------- the decision


def decide(
    cert: ManagedCertificate,
    exam: SecretExamination,
    *,
    problems: Sequence[str],
    issuer_ready: bool,
    now: datetime,
    conflict: str | None = None,
) -> Decision:
    """The one thing to do now.

    ``problems`` are :func:`spec_problems`; ``conflict`` is :func:`secret_conflict`.
    """
    require_aware(now)
    status = cert.status
    if problems:
        return Decision(Action.INVALID, Reason.INVALID_SPEC, "; ".join(problems))

    revoked = current_serial_revoked(status)
    renew = pending_renew_request(cert)
    handled = renew if renew is not None else status.last_renew_request
    if revoked and renew is None:
        return Decision(Action.REVOKED, Reason.REVOKED)

    own_revision = claimed_revision(cert, exam)
    adopted = adoption(cert, exam, own_revision=own_revision, renew=renew, now=now)
    if adopted is not None:
        return adopted

    facts = ReissueInput(
        spec=cert.spec, status=status, secret=exam, own_revision=own_revision, renew_request=renew, now=now
    )
    due = reissue_reason(facts)
    if due is None:
        return Decision(Action.NONE)

    waiting = backoff_until(cert, issuer_ready=issuer_ready, secret_free=conflict is None, now=now)
    if waiting is not None:
        return Decision(Action.WAIT, due.reason, due.message, not_before=waiting, conflict=conflict)
    if conflict is not None:
        return Decision(Action.CONFLICT, due.reason, due.message, renew_request=handled, conflict=conflict)
    reusable = exam.key is not None and key_matches_spec(exam.key, key_spec_for(cert.spec))
    new_key = revoked or cert.spec.key.rotation_policy is RotationPolicy.ALWAYS or not reusable
    return Decision(
        Action.ISSUE,
        due.reason,
        due.message,
        revision=max(status.revision or 0, own_revision or 0) + 1,
        new_key=new_key,
        renew_request=handled,
    )
