"""What an issuer's status says about signing, built from its check (no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from certctl_operator.api import (
    ConditionStatus,
    ConditionType,
    IssuerSpec,
    IssuerStatus,
    IssuerType,
    find_condition,
)
from certctl_operator.pki import KeyAlgorithm, KeySpec, create_self_signed_ca, serial_to_hex
from certctl_operator.policy.issuers import IssuerCheck
from certctl_operator.status.issuers import issuer_status, ready_changed, ready_status

NOW = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)
READY = IssuerCheck(True, "Ready", "self-signed issuer")
NO_SECRET = IssuerCheck(False, "SecretNotFound", "Secret ca-keypair does not exist")


def test_a_ready_check_sets_type_generation_and_ready() -> None:
    status = issuer_status(IssuerStatus(), READY, generation=3, issuer_type=IssuerType.SELF_SIGNED, now=NOW)
    assert status.type == IssuerType.SELF_SIGNED and status.observed_generation == 3
    assert status.ca_serial_number is None and status.ca_not_after is None
    ready = find_condition(status.conditions, ConditionType.READY)
    assert ready is not None
    assert (ready.status, ready.reason, ready.message) == (
        ConditionStatus.TRUE,
        "Ready",
        "self-signed issuer",
    )
    assert ready.last_transition_time == NOW and ready.observed_generation == 3


def test_the_ca_in_use_is_recorded_and_the_fields_it_does_not_own_are_kept() -> None:
    spec = IssuerSpec.model_validate({"ca": {"secretName": "ca-keypair"}})
    ca = create_self_signed_ca("unit CA", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=30), NOW)
    authority = ca.authority
    check = IssuerCheck(True, "Ready", "CA ready", authority)
    before = IssuerStatus(crl_number=7)
    status = issuer_status(before, check, generation=1, issuer_type=spec.type, now=NOW)
    assert status.type == IssuerType.CA
    assert status.ca_serial_number == serial_to_hex(authority.certificate.serial_number).lower()
    assert status.ca_not_after == authority.not_after
    assert status.crl_number == 7, "the CRL fields belong to the revocation side"
    assert before.conditions == [], "the status it started from is not changed"


def test_ready_keeps_its_transition_time_while_it_keeps_its_status() -> None:
    first = issuer_status(IssuerStatus(), NO_SECRET, generation=1, issuer_type=IssuerType.CA, now=NOW)
    later = NOW + timedelta(minutes=5)
    other = IssuerCheck(False, "InvalidCertificate", "tls.crt is not a certificate")
    again = issuer_status(first, other, generation=1, issuer_type=IssuerType.CA, now=later)
    ready = find_condition(again.conditions, ConditionType.READY)
    assert ready is not None and ready.reason == "InvalidCertificate" and ready.last_transition_time == NOW


def test_an_event_is_worth_it_when_ready_changes_status_or_reason() -> None:
    assert ready_status(READY) is ConditionStatus.TRUE and ready_status(NO_SECRET) is ConditionStatus.FALSE
    assert ready_changed(IssuerStatus(), READY), "no Ready condition yet"
    ready = issuer_status(IssuerStatus(), READY, generation=1, issuer_type=IssuerType.SELF_SIGNED, now=NOW)
    assert not ready_changed(ready, IssuerCheck(True, "Ready", "another message"))
    assert ready_changed(ready, NO_SECRET)
    failing = issuer_status(IssuerStatus(), NO_SECRET, generation=1, issuer_type=IssuerType.CA, now=NOW)
    assert ready_changed(failing, IssuerCheck(False, "InvalidCertificate", "not a certificate"))
