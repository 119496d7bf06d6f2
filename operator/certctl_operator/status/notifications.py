"""The NotificationEvent status subresource, read into and written from the delivery state machine.

Pure: no API calls, no clock. The controller reads an event with
:func:`state_from_status`, let :mod:`certctl_operator.policy.notification`
compute the next :class:`~certctl_operator.policy.notification.DeliveryState`,
and write it back with :func:`status_from_state`, which also sets the
Delivered, DeadLetter and Ready conditions. Everything the operator needs to
resume after a restart is in that status: the phase, the retry count, the
schedule (``nextRetryAt``) and the requeue value last handled. The same
facts are also read from raw watch bodies (:func:`next_visit`,
:func:`raw_requeue_pending`), which carry no parsed model.

Schedules are rounded *up* to whole seconds, because the status stores whole
seconds: a retry read back from the status is never earlier than the policy
asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from certctl_operator.api.common import ConditionStatus, find_condition, set_condition
from certctl_operator.api.metadata_keys import ANNOTATION_REQUEUE, LABEL_PHASE, LABEL_PHASE_DEAD
from certctl_operator.api.notification import (
    AttemptResult,
    DeliveryAttempt,
    DeliveryErrorKind,
    DeliveryPhase,
    NotificationEventStatus,
)
from certctl_operator.policy import notification as policy
from certctl_operator.policy.clock import require_aware

CONDITION_READY = "Ready"

_RESULTS = {
    policy.AttemptOutcome.SUCCEEDED: AttemptResult.SUCCEEDED,
    policy.AttemptOutcome.FAILED: AttemptResult.FAILED,
    policy.AttemptOutcome.SKIPPED: AttemptResult.SKIPPED,
}
_OUTCOMES = {result: outcome for outcome, result in _RESULTS.items()}


def ceil_to_second(value: datetime) -> datetime:
    """``value`` rounded up to a whole second (unchanged when it is one already)."""
    require_aware(value, "value")
    if value.microsecond == 0:
        return value
    return value.replace(microsecond=0) + timedelta(seconds=1)


def _error_kind(kind: DeliveryErrorKind | None) -> policy.ErrorKind | None:
    return policy.ErrorKind(kind.value) if kind is not None else None


def _api_error_kind(kind: policy.ErrorKind | None) -> DeliveryErrorKind | None:
    return DeliveryErrorKind(kind.value) if kind is not None else None


def _attempt_from_api(attempt: DeliveryAttempt, fallback_number: int) -> policy.Attempt:
    outcome = _OUTCOMES[attempt.result]
    message = attempt.detail if outcome is policy.AttemptOutcome.SUCCEEDED else attempt.error
    duration = timedelta(seconds=attempt.duration_seconds) if attempt.duration_seconds is not None else None
    return policy.Attempt(
        number=attempt.number or fallback_number,
        at=attempt.time,
        outcome=outcome,
        duration=duration,
        message=message,
        error_kind=_error_kind(attempt.error_kind),
    )


def _attempt_to_api(attempt: policy.Attempt) -> DeliveryAttempt:
    succeeded = attempt.outcome is policy.AttemptOutcome.SUCCEEDED
    duration = round(attempt.duration.total_seconds(), 3) if attempt.duration is not None else None
    return DeliveryAttempt(
        time=attempt.at,
        result=_RESULTS[attempt.outcome],
        number=attempt.number,
        error=None if succeeded else attempt.message,
        error_kind=_api_error_kind(attempt.error_kind),
        detail=attempt.message if succeeded else None,
        duration_seconds=duration,
    )


def state_from_status(status: NotificationEventStatus) -> policy.DeliveryState:
    """The delivery state recorded in ``status``; an empty status is a new, Pending event."""
    delivered = find_condition(status.conditions, policy.CONDITION_DELIVERED)
    attempts = tuple(_attempt_from_api(attempt, index + 1) for index, attempt in enumerate(status.attempts))
    return policy.DeliveryState(
        phase=status.phase or DeliveryPhase.PENDING,
        retry_count=status.retry_count or 0,
        next_retry_at=status.next_retry_at,
        last_error=status.last_error,
        last_error_kind=_error_kind(status.last_error_kind),
        last_attempt_at=status.last_attempt_at,
        sent_at=status.sent_at,
        dead_at=status.dead_at,
        reason=delivered.reason if delivered is not None else None,
        requeue_count=status.requeue_count or 0,
        attempts=attempts,
    )


def ready_condition(state: policy.DeliveryState) -> tuple[ConditionStatus, str, str]:
    """Ready is True exactly when a channel accepted the message; otherwise it mirrors Delivered."""
    delivered, _ = policy.delivery_conditions(state)
    status = ConditionStatus.TRUE if state.delivered else ConditionStatus.FALSE
    return status, delivered.reason, delivered.message


def status_from_state(
    previous: NotificationEventStatus,
    state: policy.DeliveryState,
    *,
    now: datetime,
    policy_: policy.RetryPolicy,
    generation: int | None = None,
    handled_requeue: str | None = None,
) -> NotificationEventStatus:
    """The status recording ``state``; fields the state machine does not own are kept from ``previous``.

    Conditions: Delivered and DeadLetter as the policy words them, except
    that a Dead event's DeadLetter message is its last error; Ready is True
    only for a delivered event. ``handled_requeue`` replaces the requeue
    value last acted on when given.
    """
    require_aware(now)
    status = previous.model_copy(deep=True)
    status.phase = DeliveryPhase(state.phase.value)
    status.retry_count = state.retry_count
    status.next_retry_at = ceil_to_second(state.next_retry_at) if state.next_retry_at else None
    status.last_error = state.last_error
    status.last_error_kind = _api_error_kind(state.last_error_kind)
    status.last_attempt_at = state.last_attempt_at
    status.sent_at = state.sent_at
    status.dead_at = state.dead_at
    status.requeue_count = state.requeue_count or None
    status.attempts = [_attempt_to_api(attempt) for attempt in state.attempts]
    if handled_requeue is not None:
        status.last_handled_requeue = handled_requeue
    if generation is not None:
        status.observed_generation = generation
    delivered, dead_letter = policy.delivery_conditions(state, policy_)
    if state.phase is DeliveryPhase.DEAD and state.last_error:
        # The dead-letter queue shows why each entry is there: the last error, verbatim.
        dead_letter = dead_letter._replace(message=state.last_error)
    conditions = status.conditions
    for condition in (delivered, dead_letter):
        conditions = set_condition(
            conditions,
            condition.type,
            ConditionStatus(condition.status),
            condition.reason,
            condition.message,
            now=now,
            observed_generation=generation,
        )
    ready, reason, message = ready_condition(state)
    status.conditions = set_condition(
        conditions, CONDITION_READY, ready, reason, message, now=now, observed_generation=generation
    )
    return status


def requeue_request(annotations: Mapping[str, str], status: NotificationEventStatus) -> str | None:
    """The requeue annotation's value when it has not been acted on yet, else None."""
    value = annotations.get(ANNOTATION_REQUEUE)
    if value is None or value == status.last_handled_requeue:
        return None
    return value


def phase_label_patch(labels: Mapping[str, str], phase: DeliveryPhase | None) -> dict[str, str | None] | None:
    """The ``metadata.labels`` merge patch putting the dead-letter label in step with ``phase``.

    None when the labels already match.
    """
    current = labels.get(LABEL_PHASE)
    if phase is DeliveryPhase.DEAD:
        return None if current == LABEL_PHASE_DEAD else {LABEL_PHASE: LABEL_PHASE_DEAD}
    return None if current is None else {LABEL_PHASE: None}


# --------------------------------------------------------------------------- what is due


def is_open(status: Mapping[str, Any] | None) -> bool:
    """Whether a raw status still takes attempts: no phase yet, Pending or Failed."""
    phase = (status or {}).get("phase")
    return phase in (None, DeliveryPhase.PENDING.value, DeliveryPhase.FAILED.value)


def raw_requeue_pending(annotations: Mapping[str, str], status: Mapping[str, Any] | None) -> bool:
    """:func:`requeue_request` on a raw object (a watch event's body)."""
    value = annotations.get(ANNOTATION_REQUEUE)
    return value is not None and value != (status or {}).get("lastHandledRequeue")


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 status timestamp as an aware datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def next_visit(
    annotations: Mapping[str, str],
    status: Mapping[str, Any] | None,
    *,
    now: datetime,
    retention: timedelta,
    deleting: bool = False,
) -> datetime | None:
    """When the operator has to look at an event next, from its raw object; None when never.

    * ``now`` for a new, Pending or requeued event, and for a Failed one
      without a readable schedule (a damaged status never parks an event);
    * ``nextRetryAt`` for a Failed event;
    * ``sentAt`` plus ``retention`` for a Sent event: it is deleted then
      (never, when ``sentAt`` is unreadable);
    * None for a Dead event (it waits for a person), one being deleted, and
      one whose phase is unknown.
    """
    require_aware(now)
    if deleting:
        return None
    status = status or {}
    if raw_requeue_pending(annotations, status):
        return now
    phase = status.get("phase")
    if phase in (None, DeliveryPhase.PENDING.value):
        return now
    if phase == DeliveryPhase.FAILED.value:
        return parse_time(status.get("nextRetryAt")) or now
    if phase == DeliveryPhase.SENT.value:
        sent_at = parse_time(status.get("sentAt"))
        return sent_at + retention if sent_at is not None else None
    return None
