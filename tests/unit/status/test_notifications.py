"""NotificationEvent status <-> delivery state, requeue detection, the dead-letter label, what is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certctl_operator.api import (
    AttemptResult,
    ConditionStatus,
    DeliveryErrorKind,
    DeliveryPhase,
    NotificationEventStatus,
    find_condition,
    status_patch,
)
from certctl_operator.api.metadata_keys import ANNOTATION_REQUEUE, LABEL_PHASE
from certctl_operator.policy import notification as policy
from certctl_operator.status import notifications as ns

NOW = datetime(2026, 1, 1, 12, 0, 0, 400_000, tzinfo=UTC)
POLICY = policy.RetryPolicy()
FAILURE = policy.DeliveryError(policy.ErrorKind.SERVER_ERROR, "HTTP 503 Service Unavailable", 503)


def roundtrip(
    state: policy.DeliveryState, previous: NotificationEventStatus | None = None
) -> NotificationEventStatus:
    return ns.status_from_state(
        previous or NotificationEventStatus(), state, now=NOW, policy_=POLICY, generation=2
    )


def conditions(status: NotificationEventStatus) -> dict[str, tuple[str, str, str]]:
    return {c.type: (c.status.value, c.reason, c.message) for c in status.conditions}


def test_ceil_to_second() -> None:
    assert ns.ceil_to_second(NOW) == datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC)
    whole = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert ns.ceil_to_second(whole) == whole
    with pytest.raises(ValueError, match="timezone"):
        ns.ceil_to_second(datetime(2026, 1, 1))


def test_an_empty_status_is_a_new_pending_event() -> None:
    state = ns.state_from_status(NotificationEventStatus())
    assert state == policy.DeliveryState()
    status = roundtrip(state)
    assert status.phase is DeliveryPhase.PENDING and status.retry_count == 0
    assert conditions(status) == {
        "Delivered": ("False", "Pending", "waiting for delivery"),
        "DeadLetter": ("False", "WithinRetryBudget", "waiting for delivery"),
        "Ready": ("False", "Pending", "waiting for delivery"),
    }
    assert status.observed_generation == 2


def test_a_failure_is_scheduled_on_a_whole_second_never_earlier() -> None:
    failed = policy.on_failure(
        policy.DeliveryState(), FAILURE, NOW, POLICY, duration=timedelta(milliseconds=12)
    )
    status = roundtrip(failed)
    assert status.phase is DeliveryPhase.FAILED
    assert status.retry_count == 1
    assert status.next_retry_at == datetime(2026, 1, 1, 12, 1, 1, tzinfo=UTC)
    assert status.next_retry_at >= NOW + timedelta(minutes=1)
    assert status.last_error == "HTTP 503 Service Unavailable"
    assert status.last_error_kind is DeliveryErrorKind.SERVER_ERROR
    (attempt,) = status.attempts
    assert (attempt.result, attempt.number, attempt.error_kind) == (
        AttemptResult.FAILED,
        1,
        DeliveryErrorKind.SERVER_ERROR,
    )
    assert attempt.error == "HTTP 503 Service Unavailable" and attempt.detail is None
    assert attempt.duration_seconds == 0.012
    assert conditions(status)["Ready"][:2] == ("False", "RetryScheduled")


def test_state_survives_the_status_roundtrip() -> None:
    state = policy.on_failure(policy.DeliveryState(), FAILURE, NOW, POLICY)
    state = policy.on_failure(state, FAILURE, NOW + timedelta(minutes=2), POLICY)
    state = policy.on_success(state, NOW + timedelta(minutes=5), timedelta(seconds=1), detail="HTTP 200 OK")
    status = NotificationEventStatus.model_validate(roundtrip(state).dump())
    back = ns.state_from_status(status)
    assert back.phase is policy.DeliveryPhase.SENT
    assert back.retry_count == 2
    assert back.reason == policy.REASON_DELIVERED
    assert back.delivered_on_attempt == 3
    assert back.sent_at == NOW.replace(microsecond=0) + timedelta(minutes=5)
    assert [(a.number, a.outcome, a.message) for a in back.attempts] == [
        (1, policy.AttemptOutcome.FAILED, "HTTP 503 Service Unavailable"),
        (2, policy.AttemptOutcome.FAILED, "HTTP 503 Service Unavailable"),
        (3, policy.AttemptOutcome.SUCCEEDED, "HTTP 200 OK"),
    ]
    assert back.attempts[0].error_kind is policy.ErrorKind.SERVER_ERROR
    assert back.attempts[2].duration == timedelta(seconds=1)
    assert conditions(status)["Ready"] == (
        "True",
        "Delivered",
        "delivered on attempt 3 at 2026-01-01T12:05:00Z",
    )


def test_attempts_without_numbers_are_numbered_by_position() -> None:
    status = NotificationEventStatus.model_validate(
        {"attempts": [{"time": "2026-01-01T12:00:00Z", "result": "Skipped", "error": "gone"}]}
    )
    (attempt,) = ns.state_from_status(status).attempts
    assert (attempt.number, attempt.outcome, attempt.message) == (1, policy.AttemptOutcome.SKIPPED, "gone")


def test_success_clears_the_schedule_and_error_in_the_patch() -> None:
    failed = roundtrip(policy.on_failure(policy.DeliveryState(), FAILURE, NOW, POLICY))
    sent = policy.on_success(ns.state_from_status(failed), NOW + timedelta(minutes=2))
    patch = status_patch(failed, roundtrip(sent, failed))
    assert patch["phase"] == "Sent"
    assert patch["nextRetryAt"] is None and patch["lastError"] is None and patch["lastErrorKind"] is None
    assert "retryCount" not in patch, "success leaves retryCount as it was"


def test_dead_letter_condition_carries_the_last_error() -> None:
    state = policy.DeliveryState()
    for minute in range(5):
        state = policy.on_failure(state, FAILURE, NOW + timedelta(minutes=minute * 10), POLICY)
    status = roundtrip(state)
    assert status.phase is DeliveryPhase.DEAD and status.retry_count == 5
    assert status.next_retry_at is None and status.dead_at is not None
    found = conditions(status)
    assert found["DeadLetter"] == ("True", "RetriesExhausted", "HTTP 503 Service Unavailable")
    assert found["Delivered"][:2] == ("False", "RetriesExhausted")
    assert "5 of 5 attempts failed" in found["Delivered"][2]
    assert found["Ready"][:2] == ("False", "RetriesExhausted")


def test_channel_not_found_is_closed_but_not_ready() -> None:
    state = policy.on_channel_missing(policy.DeliveryState(), NOW, channel="ops")
    status = roundtrip(state)
    assert status.phase is DeliveryPhase.SENT
    assert status.attempts[0].result is AttemptResult.SKIPPED
    assert conditions(status)["Delivered"][:2] == ("False", "ChannelNotFound")
    assert conditions(status)["Ready"][:2] == ("False", "ChannelNotFound")
    assert ns.state_from_status(status).reason == policy.REASON_CHANNEL_NOT_FOUND


def test_requeue_resets_in_one_status_and_records_the_handled_value() -> None:
    state = policy.DeliveryState()
    for _ in range(5):
        state = policy.on_failure(state, FAILURE, NOW, POLICY)
    dead = roundtrip(state)
    requeued = ns.status_from_state(
        dead, policy.on_requeue(ns.state_from_status(dead)), now=NOW, policy_=POLICY, handled_requeue="r1"
    )
    assert requeued.last_handled_requeue == "r1"
    assert requeued.requeue_count == 1
    patch = status_patch(dead, requeued)
    assert patch["phase"] == "Pending" and patch["retryCount"] == 0
    assert patch["lastError"] is None and "nextRetryAt" not in dead.dump()
    dead_letter = find_condition(requeued.conditions, "DeadLetter")
    assert dead_letter is not None and dead_letter.status is ConditionStatus.FALSE
    assert conditions(requeued)["Delivered"][1] == "Requeued"
    # A later write without a new value keeps the handled one.
    again = ns.status_from_state(requeued, ns.state_from_status(requeued), now=NOW, policy_=POLICY)
    assert again.last_handled_requeue == "r1"
    assert again.observed_generation == 2, "kept when no generation is given"


def test_requeue_request() -> None:
    handled = NotificationEventStatus(last_handled_requeue="1")
    assert ns.requeue_request({}, handled) is None
    assert ns.requeue_request({ANNOTATION_REQUEUE: "1"}, handled) is None
    assert ns.requeue_request({ANNOTATION_REQUEUE: "2"}, handled) == "2"
    assert ns.requeue_request({ANNOTATION_REQUEUE: ""}, NotificationEventStatus()) == ""


@pytest.mark.parametrize(
    ("labels", "phase", "patch"),
    [
        ({}, DeliveryPhase.DEAD, {LABEL_PHASE: "dead"}),
        ({LABEL_PHASE: "other"}, DeliveryPhase.DEAD, {LABEL_PHASE: "dead"}),
        ({LABEL_PHASE: "dead"}, DeliveryPhase.DEAD, None),
        ({LABEL_PHASE: "dead"}, DeliveryPhase.PENDING, {LABEL_PHASE: None}),
        ({LABEL_PHASE: "dead"}, None, {LABEL_PHASE: None}),
        ({"app": "x"}, DeliveryPhase.SENT, None),
    ],
)
def test_phase_label_patch(labels: dict[str, str], phase: DeliveryPhase | None, patch: Any) -> None:
    assert ns.phase_label_patch(labels, phase) == patch


def test_filters_on_raw_objects() -> None:
    for phase in (None, "Pending", "Failed"):
        assert ns.is_open({"phase": phase} if phase else {})
    for phase in ("Sent", "Dead"):
        assert not ns.is_open({"phase": phase})
        assert ns.raw_requeue_pending({ANNOTATION_REQUEUE: "x"}, {"phase": phase})
        assert not ns.raw_requeue_pending(
            {ANNOTATION_REQUEUE: "x"}, {"phase": phase, "lastHandledRequeue": "x"}
        )
    assert ns.is_open(None)
    assert not ns.raw_requeue_pending({}, None)


RETENTION = timedelta(hours=1)


@pytest.mark.parametrize(
    ("annotations", "status", "visit"),
    [
        ({}, None, NOW),
        ({}, {"phase": "Pending"}, NOW),
        (
            {},
            {"phase": "Failed", "nextRetryAt": "2026-01-01T12:05:00Z"},
            datetime(2026, 1, 1, 12, 5, tzinfo=UTC),
        ),
        (
            {},
            {"phase": "Failed", "nextRetryAt": "2026-01-01T11:00:00Z"},
            datetime(2026, 1, 1, 11, 0, tzinfo=UTC),
        ),
        ({}, {"phase": "Failed"}, NOW),
        ({}, {"phase": "Failed", "nextRetryAt": "soon"}, NOW),
        ({}, {"phase": "Sent", "sentAt": "2026-01-01T11:30:00Z"}, datetime(2026, 1, 1, 12, 30, tzinfo=UTC)),
        ({}, {"phase": "Sent", "sentAt": "yesterday"}, None),
        ({}, {"phase": "Dead"}, None),
        ({}, {"phase": "Nonsense"}, None),
        ({ANNOTATION_REQUEUE: "1"}, {"phase": "Dead"}, NOW),
        ({ANNOTATION_REQUEUE: "1"}, {"phase": "Dead", "lastHandledRequeue": "1"}, None),
        ({ANNOTATION_REQUEUE: "2"}, {"phase": "Sent", "sentAt": "2026-01-01T11:30:00Z"}, NOW),
    ],
)
def test_next_visit(
    annotations: dict[str, str], status: dict[str, Any] | None, visit: datetime | None
) -> None:
    assert ns.next_visit(annotations, status, now=NOW, retention=RETENTION) == visit


def test_an_event_being_deleted_is_never_visited() -> None:
    assert ns.next_visit({}, {"phase": "Pending"}, now=NOW, retention=RETENTION, deleting=True) is None


def test_parse_time() -> None:
    assert ns.parse_time("2026-01-01T12:00:00Z") == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert ns.parse_time("2026-01-01T12:00:00") is None, "a time without a zone is not trusted"
    assert ns.parse_time(None) is None
    assert ns.parse_time(17) is None


def test_api_and_policy_enums_agree() -> None:
    assert {kind.value for kind in DeliveryErrorKind} == {kind.value for kind in policy.ErrorKind}
    assert {phase.value for phase in DeliveryPhase} == {phase.value for phase in policy.DeliveryPhase}
    assert {result.value for result in AttemptResult} == {outcome.value for outcome in policy.AttemptOutcome}
