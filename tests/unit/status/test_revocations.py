"""A Revocation's status at each step, from plain values (no cluster, the clock passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from certctl_operator.api import (
    ConditionStatus,
    IssuerKind,
    RequestedBySource,
    Revocation,
    RevocationPhase,
    RevocationReason,
    RevokedCertificate,
)
from certctl_operator.policy.revocation import IssuerKey
from certctl_operator.status.revocations import (
    acme_notified_reason,
    is_pending_for,
    is_unsettled,
    not_ready_status,
    ready_condition,
    resolved_status,
    revoked_at_acme_message,
    revoked_on_crl_message,
    revoked_status,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = IssuerKey(IssuerKind.ISSUER, "team-ca", "team-a")
METADATA: dict[str, Any] = {"annotations": {"certctl.io/requested-by": "alice"}}


def revocation(status: dict[str, Any] | None = None) -> Revocation:
    return Revocation.from_body(
        {
            "apiVersion": "certctl.io/v1alpha1",
            "kind": "Revocation",
            "metadata": {"name": "web-gone", "namespace": "team-a", "uid": "u-1", "generation": 2},
            "spec": {"certificateRef": {"name": "web"}, "reason": "keyCompromise", "reissue": True},
            "status": status or {},
        }
    )


def entry(serial: str = "0a1b") -> RevokedCertificate:
    return RevokedCertificate(
        serial_number=serial,
        revoked_at=NOW,
        reason=RevocationReason.KEY_COMPROMISE,
        not_after=NOW + timedelta(days=30),
    )


def test_only_revoked_and_failed_are_settled() -> None:
    assert is_unsettled(None)
    assert is_unsettled({})
    assert is_unsettled({"phase": "Pending"})
    assert not is_unsettled({"phase": "Revoked"})
    assert not is_unsettled({"phase": "Failed"})


def test_not_ready_status_sets_phase_requester_and_ready_false() -> None:
    before = revocation()
    after = not_ready_status(before, METADATA, RevocationPhase.PENDING, "CertificateNotIssued", "wait", NOW)
    assert after.phase is RevocationPhase.PENDING
    assert (after.requested_by, after.requested_by_source) == ("alice", RequestedBySource.ANNOTATION)
    assert after.observed_generation == 2
    ready = ready_condition(after)
    assert ready is not None
    assert (ready.status, ready.reason, ready.message) == (
        ConditionStatus.FALSE,
        "CertificateNotIssued",
        "wait",
    )
    assert ready.last_transition_time == NOW
    assert before.status.phase is None, "the Revocation passed in is left as it was"


def test_pending_for_the_same_reason_and_message_needs_no_write() -> None:
    pending = revocation().model_copy(
        update={
            "status": not_ready_status(
                revocation(), METADATA, RevocationPhase.PENDING, "IssuerNotFound", "m", NOW
            )
        }
    )
    assert is_pending_for(pending.status, "IssuerNotFound", "m")
    assert not is_pending_for(pending.status, "IssuerNotFound", "other")
    assert not is_pending_for(pending.status, "IssuerNotReady", "m")
    failed = not_ready_status(revocation(), METADATA, RevocationPhase.FAILED, "IssuerNotFound", "m", NOW)
    assert not is_pending_for(failed, "IssuerNotFound", "m")
    assert not is_pending_for(revocation().status, "IssuerNotFound", "m")


def test_resolved_status_keeps_the_target_and_says_revoking() -> None:
    not_after = NOW + timedelta(days=3)
    after = resolved_status(revocation(), METADATA, "0a1b", KEY, not_after, NOW)
    assert after.phase is RevocationPhase.PENDING
    assert after.serial_number == "0a1b"
    assert after.issuer_ref == KEY.reference
    assert after.not_after == not_after
    ready = ready_condition(after)
    assert ready is not None
    assert (ready.status, ready.reason) == (ConditionStatus.FALSE, "Revoking")
    assert ready.message == "revoking serial 0a1b on the CRL of issuer team-a/team-ca"


def test_revoked_on_crl_message_says_when_nothing_was_listed_twice() -> None:
    fresh = revoked_on_crl_message(entry(), KEY, 7, listed_now=True)
    assert fresh == (
        "serial 0a1b is revoked (keyCompromise) on the CRL of issuer team-a/team-ca, "
        "first listed in CRL number 7"
    )
    again = revoked_on_crl_message(entry(), KEY, 7, listed_now=False)
    assert again.startswith(fresh + "; the serial was already listed")


def test_revoked_status_records_what_was_revoked_where_and_by_whom() -> None:
    before = revocation({"phase": "Pending", "serialNumber": "0a1b"})
    message = revoked_on_crl_message(entry(), KEY, 7, listed_now=True)
    after = revoked_status(
        before,
        {"managedFields": [{"manager": "kubectl-create", "fieldsV1": {"f:spec": {}}}]},
        entry(),
        KEY,
        crl_number=7,
        issuer_notified=False,
        issuer_notified_reason="no CA service to tell",
        message=message,
        now=NOW,
    )
    assert after.phase is RevocationPhase.REVOKED
    assert (after.serial_number, after.issuer_ref, after.crl_number) == ("0a1b", KEY.reference, 7)
    assert (after.revoked_at, after.not_after) == (NOW, NOW + timedelta(days=30))
    assert (after.issuer_notified, after.issuer_notified_reason) == (False, "no CA service to tell")
    assert (after.requested_by, after.requested_by_source) == (
        "kubectl-create",
        RequestedBySource.FIELD_MANAGER,
    )
    ready = ready_condition(after)
    assert ready is not None
    assert (ready.status, ready.reason, ready.message) == (ConditionStatus.TRUE, "Revoked", message)
    assert ready.observed_generation == 2


def test_acme_messages() -> None:
    reason = RevocationReason.KEY_COMPROMISE
    assert revoked_at_acme_message("0a1b", reason, KEY) == (
        "serial 0a1b is revoked (keyCompromise) by the ACME CA of issuer team-a/team-ca"
    )
    assert acme_notified_reason(KEY, reason, already_revoked=False) == (
        f"the ACME CA of issuer team-a/team-ca accepted revokeCert with reason code {reason.code}"
    )
    assert acme_notified_reason(KEY, reason, already_revoked=True) == (
        "the ACME CA of issuer team-a/team-ca had already revoked it"
    )
