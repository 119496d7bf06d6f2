"""The delivery state machine of one NotificationEvent.

Every function here is pure: it takes the current :class:`DeliveryState`, the
outcome of one delivery attempt and the caller's clock, and returns the next
state. The handler glue stores the state in the event's status subresource and
maps it to and from the CRD model.

Phases::

    Pending --success--------------------> Sent
    Pending --failure, budget left-------> Failed --(next_retry_at reached)--> attempt again
    Failed  --success--------------------> Sent
    Failed  --failure, budget left-------> Failed
    Pending/Failed --failure, budget spent--> Dead
    Pending/Failed --channel missing-----> Sent (reason ChannelNotFound)
    any phase --requeue------------------> Pending (count, schedule and error reset)

Attempt accounting (the retry budget):

* ``retry_count`` is the number of *failed* attempts since the event was
  created or last requeued. It is the only counter.
* The attempt being made is number ``retry_count + 1``.
* A failure schedules the next attempt ``backoff(retry_count)`` later, where
  ``retry_count`` is the count *before* this failure: with the defaults the
  waits are 1, 2, 4 and 8 minutes. The first failure is scheduled too (the
  reference implementation left it unscheduled, so a real failure never
  entered the retry sweep).
* A failure increments ``retry_count``; when the new count reaches
  ``max_attempts`` the event is Dead. With ``max_attempts=5`` that is exactly
  five attempts (the initial send and four retries), and a Dead event reads
  ``retry_count == 5``: "5 of 5 attempts failed". (The reference keeps the
  count at 4 on promotion to dead; counting the fatal failure as well keeps
  the invariant "retry_count == failed attempts" without exception.)
* Success leaves ``retry_count`` untouched, so a Sent event was delivered on
  attempt ``retry_count + 1``.

Every failure consumes the budget, whatever its kind: a client error (HTTP
4xx, a rejected recipient) may be fixed by correcting the channel while the
event waits, and the budget bounds the cost of one that is not. The kind is
kept with the error so the status explains what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, NamedTuple

from certctl_operator.api.notification import DeliveryPhase
from certctl_operator.policy.backoff import backoff_delay
from certctl_operator.policy.clock import format_rfc3339, require_aware

if TYPE_CHECKING:
    from certctl_operator.settings import Settings

ATTEMPT_HISTORY_LIMIT = 10
"""How many attempts the state remembers (the newest ones)."""

ERROR_MESSAGE_LIMIT = 256
"""Longest ``last_error`` kept in the status, in characters."""

CONDITION_DELIVERED = "Delivered"
CONDITION_DEAD_LETTER = "DeadLetter"

REASON_PENDING = "Pending"
REASON_REQUEUED = "Requeued"
REASON_DELIVERED = "Delivered"
REASON_RETRY_SCHEDULED = "RetryScheduled"
REASON_RETRIES_EXHAUSTED = "RetriesExhausted"
REASON_CHANNEL_NOT_FOUND = "ChannelNotFound"
REASON_WITHIN_BUDGET = "WithinRetryBudget"


class ErrorKind(StrEnum):
    """Why one attempt failed."""

    TIMEOUT = "Timeout"
    CONNECTION = "ConnectionError"
    SERVER_ERROR = "ServerError"
    RATE_LIMITED = "RateLimited"
    CLIENT_ERROR = "ClientError"
    TLS = "TLSError"
    CONFIGURATION = "InvalidConfiguration"
    UNEXPECTED = "UnexpectedError"


RETRYABLE_KINDS: frozenset[ErrorKind] = frozenset(
    {
        ErrorKind.TIMEOUT,
        ErrorKind.CONNECTION,
        ErrorKind.SERVER_ERROR,
        ErrorKind.RATE_LIMITED,
        ErrorKind.UNEXPECTED,
    }
)
"""Kinds that are transient by nature. The others still follow the budget."""


@dataclass(frozen=True)
class DeliveryError:
    """A failed attempt, described without secrets.

    ``message`` is short and safe to show in a status (``HTTP 503 Service
    Unavailable``, ``timeout after 5s``, ``connection refused``).
    ``retry_after`` is the receiver's own hint (HTTP ``Retry-After``); the
    policy waits at least that long, never longer than its cap.
    """

    kind: ErrorKind
    message: str
    status_code: int | None = None
    retry_after: timedelta | None = None

    @property
    def retryable(self) -> bool:
        """True for transient failures (timeouts, connection errors, 5xx, 429, 408)."""
        return self.kind in RETRYABLE_KINDS

    def __str__(self) -> str:
        return self.message


class AttemptOutcome(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"


@dataclass(frozen=True)
class Attempt:
    """One entry of the bounded attempt history."""

    number: int
    at: datetime
    outcome: AttemptOutcome
    duration: timedelta | None = None
    message: str | None = None
    error_kind: ErrorKind | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """The retry budget: waits of ``min(2**n * base, cap)``, ``max_attempts`` attempts in all."""

    base: timedelta = timedelta(minutes=1)
    cap: timedelta = timedelta(hours=1)
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base < timedelta(0) or self.cap < timedelta(0):
            raise ValueError("base and cap must not be negative")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            base=settings.notification_retry_base,
            cap=settings.notification_retry_cap,
            max_attempts=settings.notification_max_attempts,
        )

    def delay(self, retry_count: int, retry_after: timedelta | None = None) -> timedelta:
        """Wait after a failure counted ``retry_count`` before it.

        A receiver's ``retry_after`` hint lengthens the wait up to the cap; it
        never shortens it.
        """
        wait = backoff_delay(retry_count, self.base, self.cap)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.cap))
        return wait


@dataclass(frozen=True)
class DeliveryState:
    """What the status subresource records about the delivery of one event."""

    phase: DeliveryPhase = DeliveryPhase.PENDING
    retry_count: int = 0
    next_retry_at: datetime | None = None
    last_error: str | None = None
    last_error_kind: ErrorKind | None = None
    last_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    dead_at: datetime | None = None
    reason: str | None = None
    requeue_count: int = 0
    attempts: tuple[Attempt, ...] = ()

    @property
    def terminal(self) -> bool:
        """Sent and Dead take no further attempts (until a requeue)."""
        return self.phase in (DeliveryPhase.SENT, DeliveryPhase.DEAD)

    @property
    def delivered(self) -> bool:
        """Sent because a channel accepted it (not closed for a missing channel)."""
        return self.phase is DeliveryPhase.SENT and self.reason == REASON_DELIVERED

    @property
    def delivered_on_attempt(self) -> int | None:
        return self.retry_count + 1 if self.delivered else None


class InvalidTransition(ValueError):
    """An attempt outcome was applied to an event that takes no attempts."""


class ConditionFields(NamedTuple):
    """A status condition as ``(type, status, reason, message)``."""

    type: str
    status: Literal["True", "False"]
    reason: str
    message: str


def truncate_error(text: str, limit: int = ERROR_MESSAGE_LIMIT) -> str:
    """Collapse whitespace and cut ``text`` to ``limit`` characters (ending with an ellipsis)."""
    flat = " ".join(text.split()) or "unknown error"
    if len(flat) <= limit:
        return flat
    return flat[: max(limit - 1, 0)] + "\u2026"


def _with_attempt(history: tuple[Attempt, ...], attempt: Attempt) -> tuple[Attempt, ...]:
    return (*history, attempt)[-ATTEMPT_HISTORY_LIMIT:]


def _require_open(state: DeliveryState, transition: str) -> None:
    if state.terminal:
        raise InvalidTransition(
            f"{transition} does not apply to a {state.phase.value} notification; requeue it first"
        )


def on_success(
    state: DeliveryState,
    now: datetime,
    duration: timedelta | None = None,
    *,
    detail: str | None = None,
) -> DeliveryState:
    """A channel accepted the notification: Sent, ``retry_count`` unchanged."""
    require_aware(now)
    _require_open(state, "success")
    attempt = Attempt(
        number=state.retry_count + 1,
        at=now,
        outcome=AttemptOutcome.SUCCEEDED,
        duration=duration,
        message=truncate_error(detail) if detail else None,
    )
    return replace(
        state,
        phase=DeliveryPhase.SENT,
        next_retry_at=None,
        last_error=None,
        last_error_kind=None,
        last_attempt_at=now,
        sent_at=now,
        reason=REASON_DELIVERED,
        attempts=_with_attempt(state.attempts, attempt),
    )


def on_failure(
    state: DeliveryState,
    error: DeliveryError,
    now: datetime,
    policy: RetryPolicy | None = None,
    *,
    duration: timedelta | None = None,
) -> DeliveryState:
    """An attempt failed: Failed with the next attempt scheduled, or Dead when the budget is spent.

    The wait is ``policy.delay(retry_count)`` with the count before this
    failure, so the first failure is scheduled ``base`` later.
    """
    require_aware(now)
    _require_open(state, "failure")
    policy = policy or RetryPolicy()
    before = state.retry_count
    message = truncate_error(error.message)
    attempt = Attempt(
        number=before + 1,
        at=now,
        outcome=AttemptOutcome.FAILED,
        duration=duration,
        message=message,
        error_kind=error.kind,
    )
    failed = replace(
        state,
        retry_count=before + 1,
        last_error=message,
        last_error_kind=error.kind,
        last_attempt_at=now,
        attempts=_with_attempt(state.attempts, attempt),
    )
    if before + 1 >= policy.max_attempts:
        return replace(
            failed,
            phase=DeliveryPhase.DEAD,
            next_retry_at=None,
            dead_at=now,
            reason=REASON_RETRIES_EXHAUSTED,
        )
    return replace(
        failed,
        phase=DeliveryPhase.FAILED,
        next_retry_at=now + policy.delay(before, error.retry_after),
        reason=REASON_RETRY_SCHEDULED,
    )


def on_channel_missing(state: DeliveryState, now: datetime, *, channel: str | None = None) -> DeliveryState:
    """The channel no longer exists: close the event as Sent (reason ChannelNotFound) so it never wedges."""
    require_aware(now)
    _require_open(state, "channel-missing")
    what = f"channel {channel!r} not found" if channel else "channel not found"
    message = truncate_error(f"{what}; closed without delivery")
    attempt = Attempt(
        number=state.retry_count + 1,
        at=now,
        outcome=AttemptOutcome.SKIPPED,
        message=message,
    )
    return replace(
        state,
        phase=DeliveryPhase.SENT,
        next_retry_at=None,
        last_error=message,
        last_error_kind=ErrorKind.CONFIGURATION,
        last_attempt_at=now,
        sent_at=now,
        reason=REASON_CHANNEL_NOT_FOUND,
        attempts=_with_attempt(state.attempts, attempt),
    )


def on_requeue(state: DeliveryState) -> DeliveryState:
    """The operator's escape hatch: back to Pending with a fresh budget (history is kept)."""
    return replace(
        state,
        phase=DeliveryPhase.PENDING,
        retry_count=0,
        next_retry_at=None,
        last_error=None,
        last_error_kind=None,
        sent_at=None,
        dead_at=None,
        reason=REASON_REQUEUED,
        requeue_count=state.requeue_count + 1,
    )


def is_due(state: DeliveryState, now: datetime) -> bool:
    """Whether an attempt should be made now.

    Pending is always due. Failed is due once ``next_retry_at`` has come; a
    Failed state without a schedule is due at once, so a damaged status can
    never park an event. Sent and Dead are never due.
    """
    require_aware(now)
    if state.phase is DeliveryPhase.PENDING:
        return True
    if state.phase is DeliveryPhase.FAILED:
        return state.next_retry_at is None or now >= state.next_retry_at
    return False


def time_until_due(state: DeliveryState, now: datetime) -> timedelta | None:
    """How long until :func:`is_due` turns true: zero when due, None when it never will."""
    require_aware(now)
    if state.terminal:
        return None
    if is_due(state, now) or state.next_retry_at is None:
        return timedelta(0)
    return state.next_retry_at - now


def should_expire(state: DeliveryState, now: datetime, retention: timedelta) -> bool:
    """A Sent event older than ``retention`` may be deleted; Dead ones stay for an operator."""
    require_aware(now)
    if state.phase is not DeliveryPhase.SENT or state.sent_at is None:
        return False
    return now - state.sent_at >= retention


def phase_label(state: DeliveryState) -> str:
    """The phase as a lower-case label value (``pending``, ``sent``, ``failed``, ``dead``)."""
    return state.phase.value.lower()


def delivery_conditions(
    state: DeliveryState, policy: RetryPolicy | None = None
) -> tuple[ConditionFields, ConditionFields]:
    """The ``Delivered`` and ``DeadLetter`` conditions describing ``state``."""
    policy = policy or RetryPolicy()
    budget = policy.max_attempts
    phase = state.phase
    if phase is DeliveryPhase.SENT and state.reason == REASON_CHANNEL_NOT_FOUND:
        detail = state.last_error or "channel not found; closed without delivery"
        return (
            ConditionFields(CONDITION_DELIVERED, "False", REASON_CHANNEL_NOT_FOUND, detail),
            ConditionFields(CONDITION_DEAD_LETTER, "False", REASON_CHANNEL_NOT_FOUND, detail),
        )
    if phase is DeliveryPhase.SENT:
        when = f" at {format_rfc3339(state.sent_at)}" if state.sent_at else ""
        message = f"delivered on attempt {state.retry_count + 1}{when}"
        return (
            ConditionFields(CONDITION_DELIVERED, "True", REASON_DELIVERED, message),
            ConditionFields(CONDITION_DEAD_LETTER, "False", REASON_DELIVERED, message),
        )
    if phase is DeliveryPhase.DEAD:
        last = state.last_error or "unknown"
        message = f"{state.retry_count} of {budget} attempts failed; last error: {last}"
        return (
            ConditionFields(CONDITION_DELIVERED, "False", REASON_RETRIES_EXHAUSTED, message),
            ConditionFields(
                CONDITION_DEAD_LETTER,
                "True",
                REASON_RETRIES_EXHAUSTED,
                message + "; requeue the event to try again",
            ),
        )
    if phase is DeliveryPhase.FAILED:
        when = format_rfc3339(state.next_retry_at) if state.next_retry_at else "now"
        message = (
            f"attempt {state.retry_count} of {budget} failed: {state.last_error or 'unknown'}; "
            f"next attempt at {when}"
        )
        return (
            ConditionFields(CONDITION_DELIVERED, "False", REASON_RETRY_SCHEDULED, message),
            ConditionFields(CONDITION_DEAD_LETTER, "False", REASON_WITHIN_BUDGET, message),
        )
    reason = REASON_REQUEUED if state.reason == REASON_REQUEUED else REASON_PENDING
    message = "requeued; waiting for delivery" if reason == REASON_REQUEUED else "waiting for delivery"
    return (
        ConditionFields(CONDITION_DELIVERED, "False", reason, message),
        ConditionFields(CONDITION_DEAD_LETTER, "False", REASON_WITHIN_BUDGET, message),
    )
