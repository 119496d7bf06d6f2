from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from certctl_operator.api.notification import DeliveryPhase
from certctl_operator.policy.notification import (
    ATTEMPT_HISTORY_LIMIT,
    ERROR_MESSAGE_LIMIT,
    AttemptOutcome,
    ConditionFields,
    DeliveryError,
    DeliveryState,
    ErrorKind,
    InvalidTransition,
    RetryPolicy,
    delivery_conditions,
    is_due,
    on_channel_missing,
    on_failure,
    on_requeue,
    on_success,
    phase_label,
    should_expire,
    time_until_due,
    truncate_error,
)
from certctl_operator.settings import Settings

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
UNAVAILABLE = DeliveryError(ErrorKind.SERVER_ERROR, "HTTP 503 Service Unavailable", 503)


def fail(state: DeliveryState, now: datetime = NOW, policy: RetryPolicy | None = None) -> DeliveryState:
    return on_failure(state, UNAVAILABLE, now, policy)


# ------------------------------------------------------------------ failure


def test_first_failure_is_scheduled() -> None:
    state = fail(DeliveryState())
    assert state.phase is DeliveryPhase.FAILED
    assert state.retry_count == 1
    assert state.next_retry_at == NOW + MINUTE
    assert state.last_error == "HTTP 503 Service Unavailable"
    assert state.last_error_kind is ErrorKind.SERVER_ERROR
    assert state.last_attempt_at == NOW
    assert state.reason == "RetryScheduled"
    assert [(a.number, a.outcome) for a in state.attempts] == [(1, AttemptOutcome.FAILED)]
    assert is_due(state, NOW) is False
    assert is_due(state, NOW + MINUTE) is True


def test_waits_follow_the_reference_contract_then_dead_after_five_attempts() -> None:
    now = NOW
    state = DeliveryState()
    waits: list[timedelta] = []
    attempts = 0
    while not state.terminal:
        assert is_due(state, now)
        attempts += 1
        state = fail(state, now)
        if state.next_retry_at is not None:
            waits.append(state.next_retry_at - now)
            now = state.next_retry_at
    assert attempts == 5
    assert waits == [MINUTE, 2 * MINUTE, 4 * MINUTE, 8 * MINUTE]
    assert state.phase is DeliveryPhase.DEAD
    assert state.retry_count == 5
    assert state.next_retry_at is None
    assert state.dead_at == now
    assert state.last_error == "HTTP 503 Service Unavailable"
    assert state.reason == "RetriesExhausted"
    assert [a.number for a in state.attempts] == [1, 2, 3, 4, 5]
    assert is_due(state, now + timedelta(days=365)) is False


def test_dead_when_count_before_the_attempt_reaches_max_minus_one() -> None:
    policy = RetryPolicy()
    four_failures = DeliveryState(phase=DeliveryPhase.FAILED, retry_count=3, next_retry_at=NOW)
    assert fail(four_failures, policy=policy).phase is DeliveryPhase.FAILED
    last = DeliveryState(phase=DeliveryPhase.FAILED, retry_count=4, next_retry_at=NOW)
    assert fail(last, policy=policy).phase is DeliveryPhase.DEAD


def test_single_attempt_budget_dies_on_first_failure() -> None:
    state = fail(DeliveryState(), policy=RetryPolicy(max_attempts=1))
    assert state.phase is DeliveryPhase.DEAD
    assert state.retry_count == 1


def test_count_already_over_a_lowered_budget_dies() -> None:
    state = DeliveryState(phase=DeliveryPhase.FAILED, retry_count=7)
    assert fail(state, policy=RetryPolicy(max_attempts=3)).phase is DeliveryPhase.DEAD


def test_every_error_kind_consumes_the_budget() -> None:
    client_error = DeliveryError(ErrorKind.CLIENT_ERROR, "HTTP 404 Not Found", 404)
    assert client_error.retryable is False
    state = on_failure(DeliveryState(), client_error, NOW)
    assert state.phase is DeliveryPhase.FAILED
    assert state.next_retry_at == NOW + MINUTE
    assert state.last_error_kind is ErrorKind.CLIENT_ERROR


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(base=MINUTE, cap=timedelta(minutes=5), max_attempts=20)
    state = DeliveryState(phase=DeliveryPhase.FAILED, retry_count=10)
    assert fail(state, policy=policy).next_retry_at == NOW + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (timedelta(seconds=10), MINUTE),  # shorter than the backoff: ignored
        (timedelta(minutes=3), timedelta(minutes=3)),  # longer: honoured
        (timedelta(days=2), timedelta(hours=1)),  # beyond the cap: capped
    ],
)
def test_retry_after_hint_lengthens_the_wait_up_to_the_cap(
    retry_after: timedelta, expected: timedelta
) -> None:
    error = DeliveryError(ErrorKind.RATE_LIMITED, "HTTP 429 Too Many Requests", 429, retry_after)
    state = on_failure(DeliveryState(), error, NOW)
    assert state.next_retry_at == NOW + expected


def test_last_error_is_flattened_and_truncated() -> None:
    error = DeliveryError(ErrorKind.SERVER_ERROR, "line one\n\tline two " + "x" * 1000)
    state = on_failure(DeliveryState(), error, NOW)
    assert state.last_error is not None
    assert len(state.last_error) == ERROR_MESSAGE_LIMIT
    assert state.last_error.startswith("line one line two x")
    assert state.last_error.endswith("\u2026")
    assert truncate_error("   ") == "unknown error"


def test_attempt_history_is_bounded_to_the_newest() -> None:
    policy = RetryPolicy(max_attempts=100)
    state = DeliveryState()
    for _ in range(15):
        state = fail(state, policy=policy)
    assert len(state.attempts) == ATTEMPT_HISTORY_LIMIT
    assert [a.number for a in state.attempts] == list(range(6, 16))


def test_failure_records_duration() -> None:
    state = on_failure(DeliveryState(), UNAVAILABLE, NOW, duration=timedelta(seconds=2))
    assert state.attempts[-1].duration == timedelta(seconds=2)


# ------------------------------------------------------------------ success


def test_success_from_pending() -> None:
    state = on_success(DeliveryState(), NOW, timedelta(milliseconds=40), detail="HTTP 200 OK")
    assert state.phase is DeliveryPhase.SENT
    assert state.sent_at == NOW
    assert state.retry_count == 0
    assert state.next_retry_at is None
    assert state.delivered is True
    assert state.delivered_on_attempt == 1
    assert state.attempts[-1].outcome is AttemptOutcome.SUCCEEDED
    assert state.attempts[-1].message == "HTTP 200 OK"
    assert state.attempts[-1].duration == timedelta(milliseconds=40)


def test_success_after_failures_keeps_the_count() -> None:
    state = fail(fail(DeliveryState()), NOW + MINUTE)
    later = NOW + 3 * MINUTE
    state = on_success(state, later)
    assert state.phase is DeliveryPhase.SENT
    assert state.retry_count == 2
    assert state.delivered_on_attempt == 3
    assert state.next_retry_at is None
    assert state.last_error is None
    assert state.sent_at == later
    assert [a.outcome for a in state.attempts] == [
        AttemptOutcome.FAILED,
        AttemptOutcome.FAILED,
        AttemptOutcome.SUCCEEDED,
    ]


# ------------------------------------------------------------------ terminal phases


@pytest.mark.parametrize(
    "state",
    [
        DeliveryState(phase=DeliveryPhase.SENT, sent_at=NOW),
        DeliveryState(phase=DeliveryPhase.DEAD, retry_count=5),
    ],
)
def test_attempt_outcomes_do_not_apply_to_terminal_states(state: DeliveryState) -> None:
    with pytest.raises(InvalidTransition):
        on_success(state, NOW)
    with pytest.raises(InvalidTransition):
        on_failure(state, UNAVAILABLE, NOW)
    with pytest.raises(InvalidTransition):
        on_channel_missing(state, NOW)


# ------------------------------------------------------------------ channel missing


def test_channel_missing_closes_the_event() -> None:
    failed = fail(DeliveryState())
    state = on_channel_missing(failed, NOW + MINUTE, channel="ops-slack")
    assert state.phase is DeliveryPhase.SENT
    assert state.reason == "ChannelNotFound"
    assert state.retry_count == 1
    assert state.next_retry_at is None
    assert state.sent_at == NOW + MINUTE
    assert state.delivered is False
    assert state.delivered_on_attempt is None
    assert state.last_error == "channel 'ops-slack' not found; closed without delivery"
    assert state.attempts[-1].outcome is AttemptOutcome.SKIPPED
    assert is_due(state, NOW + timedelta(days=1)) is False
    assert should_expire(state, NOW + timedelta(days=8), timedelta(days=7)) is True


# ------------------------------------------------------------------ requeue


def test_requeue_resets_a_dead_event_and_grants_a_new_budget() -> None:
    state = DeliveryState()
    for _ in range(5):
        state = fail(state)
    assert state.phase is DeliveryPhase.DEAD
    requeued = on_requeue(state)
    assert requeued.phase is DeliveryPhase.PENDING
    assert requeued.retry_count == 0
    assert requeued.next_retry_at is None
    assert requeued.last_error is None
    assert requeued.last_error_kind is None
    assert requeued.dead_at is None
    assert requeued.requeue_count == 1
    assert requeued.attempts == state.attempts
    assert is_due(requeued, NOW)
    again = fail(requeued)
    assert again.phase is DeliveryPhase.FAILED
    assert again.next_retry_at == NOW + MINUTE


def test_requeue_of_a_sent_event_clears_sent_at() -> None:
    requeued = on_requeue(on_success(DeliveryState(), NOW))
    assert requeued.phase is DeliveryPhase.PENDING
    assert requeued.sent_at is None
    assert requeued.reason == "Requeued"


# ------------------------------------------------------------------ due / expiry


def test_is_due_per_phase() -> None:
    assert is_due(DeliveryState(), NOW)
    failed = DeliveryState(phase=DeliveryPhase.FAILED, retry_count=1, next_retry_at=NOW)
    assert not is_due(failed, NOW - timedelta(seconds=1))
    assert is_due(failed, NOW)
    assert is_due(failed, NOW + timedelta(seconds=1))
    assert is_due(replace(failed, next_retry_at=None), NOW - timedelta(days=1))
    assert not is_due(DeliveryState(phase=DeliveryPhase.SENT), NOW)
    assert not is_due(DeliveryState(phase=DeliveryPhase.DEAD), NOW)


def test_time_until_due() -> None:
    failed = DeliveryState(phase=DeliveryPhase.FAILED, next_retry_at=NOW + MINUTE)
    assert time_until_due(failed, NOW) == MINUTE
    assert time_until_due(failed, NOW + 2 * MINUTE) == timedelta(0)
    assert time_until_due(DeliveryState(), NOW) == timedelta(0)
    assert time_until_due(DeliveryState(phase=DeliveryPhase.DEAD), NOW) is None


def test_should_expire_only_sent_events_past_retention() -> None:
    retention = timedelta(days=7)
    sent = on_success(DeliveryState(), NOW)
    assert not should_expire(sent, NOW + retention - timedelta(seconds=1), retention)
    assert should_expire(sent, NOW + retention, retention)
    dead = DeliveryState(phase=DeliveryPhase.DEAD, dead_at=NOW, sent_at=None)
    assert not should_expire(dead, NOW + timedelta(days=3650), retention)
    assert not should_expire(fail(DeliveryState()), NOW + timedelta(days=3650), retention)
    assert not should_expire(DeliveryState(phase=DeliveryPhase.SENT), NOW, retention)


# ------------------------------------------------------------------ views


def test_phase_labels() -> None:
    assert [phase_label(DeliveryState(phase=p)) for p in DeliveryPhase] == [
        "pending",
        "sent",
        "failed",
        "dead",
    ]


def test_conditions_pending() -> None:
    delivered, dead = delivery_conditions(DeliveryState())
    assert delivered == ConditionFields("Delivered", "False", "Pending", "waiting for delivery")
    assert dead[:3] == ("DeadLetter", "False", "WithinRetryBudget")


def test_conditions_failed() -> None:
    delivered, dead = delivery_conditions(fail(DeliveryState()))
    assert delivered.type == "Delivered"
    assert delivered.status == "False"
    assert delivered.reason == "RetryScheduled"
    assert delivered.message == (
        "attempt 1 of 5 failed: HTTP 503 Service Unavailable; next attempt at 2025-01-01T12:01:00Z"
    )
    assert dead.status == "False"


def test_conditions_sent() -> None:
    state = on_success(fail(DeliveryState()), NOW + MINUTE)
    delivered, dead = delivery_conditions(state)
    assert delivered == ConditionFields(
        "Delivered", "True", "Delivered", "delivered on attempt 2 at 2025-01-01T12:01:00Z"
    )
    assert dead.status == "False"


def test_conditions_dead() -> None:
    state = DeliveryState()
    for _ in range(5):
        state = fail(state)
    delivered, dead = delivery_conditions(state)
    assert delivered.status == "False"
    assert delivered.reason == "RetriesExhausted"
    assert dead.status == "True"
    assert dead.reason == "RetriesExhausted"
    assert dead.message.startswith("5 of 5 attempts failed; last error: HTTP 503 Service Unavailable")
    assert "requeue" in dead.message


def test_conditions_channel_missing() -> None:
    delivered, dead = delivery_conditions(on_channel_missing(DeliveryState(), NOW))
    assert (delivered.status, delivered.reason) == ("False", "ChannelNotFound")
    assert (dead.status, dead.reason) == ("False", "ChannelNotFound")


def test_conditions_requeued() -> None:
    delivered, _ = delivery_conditions(on_requeue(DeliveryState(phase=DeliveryPhase.DEAD)))
    assert delivered.reason == "Requeued"


# ------------------------------------------------------------------ inputs


def test_naive_now_is_rejected() -> None:
    naive = datetime(2025, 1, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        on_success(DeliveryState(), naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_due(DeliveryState(), naive)


def test_policy_from_settings_and_validation() -> None:
    policy = RetryPolicy.from_settings(Settings())
    assert policy == RetryPolicy(base=MINUTE, cap=timedelta(hours=1), max_attempts=5)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base=-MINUTE)


@pytest.mark.parametrize(
    ("kind", "retryable"),
    [
        (ErrorKind.TIMEOUT, True),
        (ErrorKind.CONNECTION, True),
        (ErrorKind.SERVER_ERROR, True),
        (ErrorKind.RATE_LIMITED, True),
        (ErrorKind.UNEXPECTED, True),
        (ErrorKind.CLIENT_ERROR, False),
        (ErrorKind.TLS, False),
        (ErrorKind.CONFIGURATION, False),
    ],
)
def test_error_kinds(kind: ErrorKind, retryable: bool) -> None:
    assert DeliveryError(kind, "x").retryable is retryable


def test_an_error_reads_as_its_message() -> None:
    assert str(UNAVAILABLE) == "HTTP 503 Service Unavailable"
    assert (
        f"{DeliveryError(ErrorKind.TIMEOUT, 'timeout after 5s (127.0.0.1:80)')}"
        == "timeout after 5s (127.0.0.1:80)"
    )
