"""The reissue chain: each check alone, and the order in which they are asked."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certctl_operator.api import ManagedCertificate
from certctl_operator.api.metadata_keys import (
    ANNOTATION_RENEW,
)
from certctl_operator.policy.issuance import (
    REISSUE_CHAIN,
    Mismatch,
    Reason,
    ReissueInput,
    ReissueReason,
    SecretExamination,
    certificate_expired,
    certificate_renewal_time,
    claimed_revision,
    reissue_reason,
    renewal_requested,
    renewal_time_reached,
    secret_does_not_exist,
    secret_does_not_fit,
    secret_is_not_the_recorded_certificate,
)

NOW = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)
NOT_BEFORE = NOW - timedelta(days=1, hours=1)  # backdated by an hour, like an issued certificate
NOT_AFTER = NOW + timedelta(days=29)


def certificate(status: dict[str, Any] | None = None) -> ManagedCertificate:
    return ManagedCertificate.from_body(
        {
            "apiVersion": "certctl.io/v1alpha1",
            "kind": "ManagedCertificate",
            "metadata": {"name": "web", "namespace": "team", "generation": 1},
            "spec": {
                "secretName": "web-tls",
                "dnsNames": ["web.example.test"],
                "issuerRef": {"name": "ca"},
                "duration": "30d",
            },
            "status": status or {},
        }
    )


RECORDED = {"revision": 2, "serialNumber": "AB12", "fingerprintSHA256": "F00D"}
IN_SYNC = SecretExamination(
    exists=True,
    owner="web",
    revision=2,
    serial="ab12",
    fingerprint="f00d",
    not_before=NOT_BEFORE,
    not_after=NOT_AFTER,
)


def facts(
    secret: SecretExamination = IN_SYNC,
    *,
    status: dict[str, Any] | None = None,
    renew_request: str | None = None,
    now: datetime = NOW,
) -> ReissueInput:
    cert = certificate(RECORDED if status is None else status)
    return ReissueInput(
        spec=cert.spec,
        status=cert.status,
        secret=secret,
        own_revision=claimed_revision(cert, secret),
        renew_request=renew_request,
        now=now,
    )


RENEWAL = certificate_renewal_time(certificate().spec, NOT_BEFORE, NOT_AFTER)


def test_the_chain_order_is_the_precedence() -> None:
    assert (
        secret_does_not_exist,
        secret_does_not_fit,
        secret_is_not_the_recorded_certificate,
        renewal_requested,
        certificate_expired,
        renewal_time_reached,
    ) == REISSUE_CHAIN


def test_an_in_sync_secret_before_its_renewal_time_needs_nothing() -> None:
    assert facts().in_sync
    assert reissue_reason(facts()) is None
    assert all(check(facts()) is None for check in REISSUE_CHAIN)


def test_the_first_hit_wins() -> None:
    # A missing Secret, a pending renew request and an expired certificate: the Secret speaks first.
    late = facts(SecretExamination(exists=False), renew_request="now", now=NOT_AFTER)
    hit = reissue_reason(late)
    assert hit is not None and hit.reason is Reason.DOES_NOT_EXIST
    # An expired certificate is also past its renewal time: Expired comes first.
    expired = reissue_reason(facts(now=NOT_AFTER))
    assert expired is not None and expired.reason is Reason.EXPIRED
    # A renew request outranks both.
    asked = reissue_reason(facts(renew_request="now", now=NOT_AFTER))
    assert asked is not None and asked.reason is Reason.MANUALLY_TRIGGERED


def test_reissue_reason_walks_the_chain_it_is_given() -> None:
    never = reissue_reason(facts(SecretExamination(exists=False)), chain=(renewal_requested,))
    assert never is None


def test_secret_does_not_exist() -> None:
    assert secret_does_not_exist(facts()) is None
    assert secret_does_not_exist(facts(SecretExamination(exists=False))) == ReissueReason(
        Reason.DOES_NOT_EXIST, "Secret web-tls does not exist"
    )


@pytest.mark.parametrize(
    ("kinds", "reason"),
    [
        ((Mismatch.SPEC,), Reason.SPEC_CHANGED),
        ((Mismatch.ISSUER,), Reason.ISSUER_CHANGED),
        ((Mismatch.ISSUER, Mismatch.SPEC), Reason.SPEC_CHANGED),
        ((Mismatch.ISSUER, Mismatch.SPEC, Mismatch.SECRET), Reason.SECRET_MISMATCH),
    ],
)
def test_secret_does_not_fit_names_the_most_telling_difference(
    kinds: tuple[Mismatch, ...], reason: Reason
) -> None:
    assert secret_does_not_fit(facts()) is None
    problems = tuple((kind, f"{kind.value} differs") for kind in kinds)
    hit = secret_does_not_fit(facts(replace(IN_SYNC, problems=problems)))
    assert hit == ReissueReason(reason, "; ".join(f"{kind.value} differs" for kind in kinds))


@pytest.mark.parametrize(
    "secret",
    [
        replace(IN_SYNC, revision=1),
        replace(IN_SYNC, serial="cd34"),
        replace(IN_SYNC, fingerprint="beef"),
        replace(IN_SYNC, owner="other"),
    ],
)
def test_secret_is_not_the_recorded_certificate(secret: SecretExamination) -> None:
    assert secret_is_not_the_recorded_certificate(facts()) is None
    hit = secret_is_not_the_recorded_certificate(facts(secret))
    assert hit == ReissueReason(
        Reason.SECRET_MISMATCH,
        f"the Secret holds revision {secret.revision} (serial {secret.serial}), "
        "the status records revision 2 (serial AB12)",
    )


def test_a_status_without_a_fingerprint_compares_the_serial_only() -> None:
    status = {"revision": 2, "serialNumber": "AB12"}
    assert secret_is_not_the_recorded_certificate(facts(status=status)) is None


def test_renewal_requested() -> None:
    assert renewal_requested(facts()) is None
    assert renewal_requested(facts(renew_request="2030-01-15")) == ReissueReason(
        Reason.MANUALLY_TRIGGERED, f"renewal requested with {ANNOTATION_RENEW}=2030-01-15"
    )


def test_certificate_expired() -> None:
    assert certificate_expired(facts(now=NOT_AFTER - timedelta(seconds=1))) is None
    assert certificate_expired(facts(SecretExamination(exists=False), now=NOT_AFTER)) is None
    assert certificate_expired(facts(now=NOT_AFTER)) == ReissueReason(
        Reason.EXPIRED, "the certificate expired at 2030-02-13T12:00:00Z"
    )


def test_renewal_time_reached() -> None:
    assert NOW < RENEWAL < NOT_AFTER
    assert renewal_time_reached(facts(now=RENEWAL - timedelta(seconds=1))) is None
    assert renewal_time_reached(facts(SecretExamination(exists=False), now=NOT_AFTER)) is None
    assert renewal_time_reached(facts(now=RENEWAL)) == ReissueReason(
        Reason.RENEWING, "the renewal time has come"
    )


def test_a_handed_over_secret_the_status_records_counts_as_the_status_revision() -> None:
    taken = replace(IN_SYNC, owner=None, revision=None, taken_over=True)
    assert facts(taken).own_revision == 2
    assert facts(taken).in_sync
    assert facts(replace(taken, taken_over=False)).own_revision is None
    assert facts(IN_SYNC, status={}).own_revision == 2


def test_the_input_is_frozen() -> None:
    with pytest.raises(AttributeError):
        facts().now = NOW  # type: ignore[misc]
