"""Conditions and status patches: small pure helpers the handlers build on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from certctl_operator.api import (
    Condition,
    ConditionStatus,
    ConditionType,
    ManagedCertificateStatus,
    condition_is_true,
    find_condition,
    merge_patch,
    set_condition,
    status_patch,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_a_new_condition_is_appended_with_now() -> None:
    conditions = set_condition([], ConditionType.READY, ConditionStatus.FALSE, "Pending", "waiting", now=T0)
    assert conditions == [
        Condition(
            type="Ready",
            status=ConditionStatus.FALSE,
            reason="Pending",
            message="waiting",
            last_transition_time=T0,
        )
    ]


def test_same_status_keeps_the_transition_time_but_takes_the_new_reason() -> None:
    before = set_condition([], "Ready", ConditionStatus.FALSE, "Pending", now=T0)
    after = set_condition(
        before, "Ready", ConditionStatus.FALSE, "IssuerNotReady", "CA missing", now=T1, observed_generation=2
    )
    assert after[0].last_transition_time == T0
    assert (after[0].reason, after[0].message, after[0].observed_generation) == (
        "IssuerNotReady",
        "CA missing",
        2,
    )


def test_status_change_moves_the_transition_time() -> None:
    before = set_condition([], "Ready", ConditionStatus.FALSE, "Pending", now=T0)
    after = set_condition(before, "Ready", ConditionStatus.TRUE, "Issued", now=T1)
    assert after[0].last_transition_time == T1
    assert condition_is_true(after, "Ready")
    assert not condition_is_true(before, "Ready")


def test_other_conditions_keep_their_place_and_the_input_is_not_changed() -> None:
    conditions = set_condition([], "Ready", ConditionStatus.TRUE, "Issued", now=T0)
    conditions = set_condition(conditions, "Issuing", ConditionStatus.FALSE, "Done", now=T0)
    updated = set_condition(conditions, "Ready", ConditionStatus.FALSE, "Expired", now=T1)
    assert [c.type for c in updated] == ["Ready", "Issuing"]
    assert conditions[0].status is ConditionStatus.TRUE
    issuing = find_condition(updated, "Issuing")
    assert issuing is not None and issuing.reason == "Done"
    assert find_condition(updated, "Missing") is None


def test_conditions_dump_like_metav1() -> None:
    status = ManagedCertificateStatus(
        observed_generation=1,
        conditions=set_condition(
            [], "Ready", ConditionStatus.TRUE, "Issued", "ok", now=T0, observed_generation=1
        ),
    )
    assert status.dump()["conditions"] == [
        {
            "type": "Ready",
            "status": "True",
            "observedGeneration": 1,
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "reason": "Issued",
            "message": "ok",
        }
    ]


def test_merge_patch_clears_removed_fields_and_diffs_nested_objects() -> None:
    before = {"phase": "Failed", "nextRetryAt": "t", "nested": {"a": 1, "b": 2}, "list": [1, 2], "same": 1}
    after = {"phase": "Sent", "nested": {"a": 1, "b": 3}, "list": [1], "same": 1, "new": True}
    assert merge_patch(before, after) == {
        "nextRetryAt": None,
        "phase": "Sent",
        "nested": {"b": 3},
        "list": [1],
        "new": True,
    }
    assert merge_patch(after, after) == {}


def test_status_patch_clears_a_field_set_to_none() -> None:
    before = ManagedCertificateStatus(failed_issuance_attempts=2, next_attempt_time=T1, last_failure_time=T0)
    after = before.model_copy(update={"failed_issuance_attempts": 0, "next_attempt_time": None})
    assert status_patch(before, after) == {"failedIssuanceAttempts": 0, "nextAttemptTime": None}
