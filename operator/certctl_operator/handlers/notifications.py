"""NotificationChannel and NotificationEvent: reliable delivery with retries and a dead-letter queue.

How an event moves (the rules themselves are in
:mod:`certctl_operator.policy.notification`):

* One Kopf timer per event that still takes attempts (no phase yet, Pending
  or Failed) or that has an unhandled requeue request. Sent and Dead events
  match no filter, so they cost no task. A Pending event's timer fires at
  once; a Failed one's first tick is delayed by a random fraction of the
  interval, so a restarted operator does not wake every timer together.
* Each tick compares ``status.nextRetryAt`` with the clock. An attempt due
  within the current interval is waited for inside the tick, so attempts
  happen at their scheduled time rather than up to an interval late.
* Before an attempt the event is read again from the API server under a
  per-event lock; the decision is taken on that fresh copy, never on a
  possibly stale watch body. The outcome, the next schedule, the conditions
  and the attempt history are written in one status patch.
* Requeue: the ``certctl.io/requeue`` annotation set to a value other than
  ``status.lastHandledRequeue`` resets the delivery in one status write
  (also storing the handled value, so it is level-triggered and survives
  restarts), then delivers again.
* The ``certctl.io/phase=dead`` label is kept in step with the phase by a
  watch-event handler (and right after each write), which also maintains the
  per-phase counts behind the gauges and the list of Sent events that a
  background sweeper deletes once their retention has passed.

Nothing that decides when to try again lives only in memory: after a restart
every schedule resumes from the status. On shutdown an attempt on the wire
gets :data:`DELIVERY_STOP_GRACE` to finish and be recorded, else it is
cancelled unrecorded and made again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import random
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import kopf
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator import API_GROUP, API_VERSION, metrics
from certctl_operator.api.common import ConditionStatus, find_condition, status_patch
from certctl_operator.api.notification import (
    DeliveryPhase,
    NotificationChannel,
    NotificationChannelStatus,
    NotificationEvent,
    NotificationEventStatus,
)
from certctl_operator.context import OperatorContext
from certctl_operator.handlers.pausing import STOP_POLL_SECONDS, pause
from certctl_operator.kube import channels as channel_kube
from certctl_operator.kube import notification_status as event_status
from certctl_operator.kube.notification_objects import (
    CHANNELS,
    EVENTS,
    delete_if_unchanged,
    get_object,
    patch_labels,
    patch_status,
)
from certctl_operator.logs import object_extra
from certctl_operator.notify.egress import EgressPolicy
from certctl_operator.notify.senders import DeliveryResult, HttpClientPool, Notifier
from certctl_operator.policy import notification as policy
from certctl_operator.policy.notification import DeliveryState
from certctl_operator.settings import Settings

logger = logging.getLogger("certctl.notifications")

# Kopf fixes a timer's interval when the handler is registered, which is at
# import time; the operator's settings come from the same CERTCTL_*
# variables, so reading them here gives the same values.
_IMPORT_SETTINGS = Settings.from_env()
TIMER_INTERVAL = max(_IMPORT_SETTINGS.notification_retry_interval.total_seconds(), 0.1)

RUNTIME_KEY = "notifications"

DUE_MARGIN = 0.02
"""Seconds added to an in-tick wait for a due attempt."""

DELIVERY_STOP_GRACE = 5.0
"""Seconds a delivery already on the wire may still take once the operator is stopping.

Past it the attempt is cancelled and not recorded: the event keeps its status
(not done) and the next start makes the attempt again under the same
Idempotency-Key. Shorter than the grace Kopf gives a timer to exit
(``configure_kopf``), so the timer ends before the clients it uses are closed.
"""

EVENT_DELIVERED = "Delivered"
EVENT_DELIVERY_FAILED = "DeliveryFailed"
EVENT_DEAD_LETTERED = "NotificationDeadLettered"
EVENT_CHANNEL_NOT_FOUND = "ChannelNotFound"
EVENT_REQUEUED = "NotificationRequeued"
EVENT_CHANNEL_READY = "ChannelReady"
EVENT_CHANNEL_NOT_READY = "ChannelNotReady"

_announced_channel_ready: dict[str, ConditionStatus] = {}
"""The Ready status last announced by an Event, by channel uid."""

RESULT_SUCCESS = "success"
RESULT_FAILURE = "failure"
RESULT_SKIPPED = "skipped"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _describe(error: BaseException) -> str:
    """A short, secret-free description of an unexpected error for the log."""
    if isinstance(error, ApiException):
        return f"API error {error.status} {error.reason or ''}".strip()
    return type(error).__name__


# --------------------------------------------------------------------------- runtime state


@dataclass
class TrackedEvent:
    """What the operator last saw of one NotificationEvent (from the watch)."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    phase: DeliveryPhase
    sent_at: datetime | None

    def log_extra(self) -> dict[str, Any]:
        return object_extra(
            {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": "NotificationEvent",
                "metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid},
            }
        )


@dataclass(frozen=True)
class UnrecordedOutcome:
    """An attempt whose outcome the operator knows but could not write (the API server was away).

    ``basis`` is the delivery state the attempt was made from: the outcome is
    recorded only onto that same state, so a requeue or another writer in
    the meantime makes it void instead of overwriting newer facts.
    """

    attempt: int
    basis: tuple[object, ...]
    result: DeliveryResult
    at: datetime


def outcome_basis(state: policy.DeliveryState) -> tuple[object, ...]:
    """What identifies the state an attempt starts from: phase, counts and the last attempt's time."""
    return (state.phase, state.retry_count, state.requeue_count, state.last_attempt_at, len(state.attempts))


@dataclass
class NotificationRuntime:
    """Per-process helpers: the notifier, per-event locks and the watch-maintained event book."""

    settings: Settings
    pool: HttpClientPool
    notifier: Notifier
    policy: policy.RetryPolicy
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    events: dict[str, TrackedEvent] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    sweeper: asyncio.Task[None] | None = None
    unrecorded: dict[str, UnrecordedOutcome] = field(default_factory=dict)
    """Outcomes not yet written, by event uid; see :meth:`keep_outcome`."""

    def lock(self, uid: str) -> asyncio.Lock:
        return self.locks.setdefault(uid, asyncio.Lock())

    def keep_outcome(self, uid: str, state: DeliveryState, result: DeliveryResult, at: datetime) -> None:
        """Remember the outcome of the attempt made from ``state`` until it is written."""
        self.unrecorded[uid] = UnrecordedOutcome(state.retry_count + 1, outcome_basis(state), result, at)

    def forget_outcome(self, uid: str) -> None:
        self.unrecorded.pop(uid, None)

    def kept_outcome(self, uid: str, state: DeliveryState) -> UnrecordedOutcome | None:
        """The kept outcome of the attempt due from ``state``, if any; a stale one is dropped."""
        kept = self.unrecorded.get(uid)
        if kept is None:
            return None
        if kept.basis != outcome_basis(state) or kept.attempt != state.retry_count + 1:
            del self.unrecorded[uid]
            return None
        return kept

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Update the book from one watch event and refresh the gauges."""
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if not uid:
            return
        if event_type == "DELETED":
            self.events.pop(uid, None)
            self.forget_outcome(uid)
            lock = self.locks.get(uid)
            if lock is not None and not lock.locked():
                del self.locks[uid]
        else:
            status = body.get("status") or {}
            try:
                phase = DeliveryPhase(status.get("phase") or DeliveryPhase.PENDING.value)
            except ValueError:
                phase = DeliveryPhase.PENDING
            sent_at = None
            if status.get("sentAt"):
                with contextlib.suppress(ValueError):
                    sent_at = datetime.fromisoformat(str(status["sentAt"]).replace("Z", "+00:00"))
            self.events[uid] = TrackedEvent(
                namespace=str(meta.get("namespace") or ""),
                name=str(meta.get("name") or ""),
                uid=uid,
                resource_version=str(meta.get("resourceVersion") or ""),
                phase=phase,
                sent_at=sent_at,
            )
        self.update_gauges()

    def phase_counts(self) -> dict[DeliveryPhase, int]:
        counts = dict.fromkeys(DeliveryPhase, 0)
        for tracked in self.events.values():
            counts[tracked.phase] += 1
        return counts

    def update_gauges(self) -> None:
        counts = self.phase_counts()
        for phase, count in counts.items():
            metrics.notification_events.labels(phase=phase.value).set(count)
        metrics.notification_dead_total.set(counts[DeliveryPhase.DEAD])

    def expired(self, now: datetime) -> list[TrackedEvent]:
        """Sent events older than the retention period."""
        retention = self.settings.notification_sent_retention
        return [
            tracked
            for tracked in self.events.values()
            if tracked.phase is DeliveryPhase.SENT
            and policy.should_expire(
                policy.DeliveryState(phase=policy.DeliveryPhase.SENT, sent_at=tracked.sent_at), now, retention
            )
        ]


def _body(raw: Mapping[str, Any]) -> kopf.Body:
    """A Kopf body around an object read from the API, for posting Events about it."""
    return kopf.Body(cast(kopf.RawBody, raw))


def _context(memo: Any) -> OperatorContext:
    context: OperatorContext = memo.context
    return context


def _runtime(memo: Any) -> NotificationRuntime:
    runtime: NotificationRuntime = _context(memo).extras[RUNTIME_KEY]
    return runtime


def sweep_period(retention: timedelta) -> float:
    """How often the retention sweeper looks: a tenth of the retention, between 1 s and 10 min."""
    return min(max(retention.total_seconds() / 10, 1.0), 600.0)


async def _sweep_forever(runtime: NotificationRuntime, context: OperatorContext) -> None:
    """Delete Sent events whose retention has passed; Dead ones stay until a person acts."""
    period = sweep_period(runtime.settings.notification_sent_retention)
    while True:
        await asyncio.sleep(period)
        if context.api is None:
            continue
        for tracked in runtime.expired(_utcnow()):
            try:
                deleted = await delete_if_unchanged(
                    context.api,
                    EVENTS,
                    tracked.namespace,
                    tracked.name,
                    tracked.uid,
                    tracked.resource_version,
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning(
                    "could not delete expired NotificationEvent %s/%s: %s",
                    tracked.namespace,
                    tracked.name,
                    _describe(error),
                    extra=tracked.log_extra(),
                )
                continue
            if deleted:
                logger.info(
                    "deleted NotificationEvent %s/%s: sent more than %s ago",
                    tracked.namespace,
                    tracked.name,
                    runtime.settings.notification_sent_retention,
                    extra=tracked.log_extra(),
                )


_ROUTINE_HANDLERS = (
    "notification-delivery",
    "notification-bookkeeping",
    "notification-channel-check",
    "channel-secret-watch",
)


class QuietRoutineSuccess(logging.Filter):
    """Drop Kopf's "... succeeded." line for handlers that run on every tick or watch event.

    What they did is logged by the handlers themselves; failures still pass.
    """

    _lines = frozenset(
        f"{kind} {handler_id!r} succeeded."
        for kind in ("Timer", "Handler")
        for handler_id in _ROUTINE_HANDLERS
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or record.getMessage() not in self._lines


_QUIET = QuietRoutineSuccess()


@kopf.on.startup(id="notifications-startup")
async def start_notifications(memo: Any, **_: Any) -> None:
    context = _context(memo)
    logging.getLogger("kopf.objects").addFilter(_QUIET)
    egress = context.settings.egress_policy()
    pool = HttpClientPool(egress=egress)
    context.http_pool = pool
    runtime = NotificationRuntime(
        settings=context.settings,
        pool=pool,
        notifier=Notifier(pool, egress=egress),
        policy=policy.RetryPolicy.from_settings(context.settings),
        egress=egress,
    )
    runtime.update_gauges()
    runtime.sweeper = asyncio.create_task(_sweep_forever(runtime, context), name="notification-retention")
    context.extras[RUNTIME_KEY] = runtime


@kopf.on.cleanup(id="notifications-cleanup")
async def stop_notifications(memo: Any, **_: Any) -> None:
    context = _context(memo)
    runtime: NotificationRuntime | None = context.extras.pop(RUNTIME_KEY, None)
    if runtime is not None and runtime.sweeper is not None:
        runtime.sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runtime.sweeper
    if context.http_pool is not None:
        await context.http_pool.aclose()
        context.http_pool = None
    logging.getLogger("kopf.objects").removeFilter(_QUIET)


# --------------------------------------------------------------------------- events: filters


def event_wants_attention(annotations: Mapping[str, str], status: Mapping[str, Any], **_: Any) -> bool:
    return event_status.wants_attention(annotations, status)


def event_initial_delay(annotations: Mapping[str, str], status: Mapping[str, Any], **_: Any) -> float:
    """No delay for new and requeued events (prompt first attempt); jitter for retries."""
    failed = (status or {}).get("phase") == DeliveryPhase.FAILED.value
    if failed and not event_status.raw_requeue_pending(annotations, status):
        return random.uniform(0, TIMER_INTERVAL)  # noqa: S311 (spreading load, not security)
    return 0.0


# --------------------------------------------------------------------------- events: writes


async def _write_event_status(
    api: Any,
    model: NotificationEvent,
    after: NotificationEventStatus,
) -> tuple[dict[str, Any], NotificationEvent]:
    patch = status_patch(model.status, after)
    meta = model.metadata
    namespace, name = meta.namespace or "", meta.name or ""
    written = await patch_status(api, EVENTS, namespace, name, patch)
    return written, NotificationEvent.from_body(written)


LABEL_WRITE_DELAYS = (0.5, 1.0, 2.0)
"""Pauses between the tries of a dead-letter label write (the watch event is not redelivered)."""


async def _sync_phase_label(api: Any, body: Mapping[str, Any], log: Any) -> None:
    """Put the dead-letter label in step with the phase in ``body``.

    Only the watch-event handler calls this, after it has counted the new
    phase, so a visible label implies up-to-date gauges.
    """
    meta = body.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return
    phase_text = (body.get("status") or {}).get("phase")
    try:
        phase = DeliveryPhase(phase_text) if phase_text else None
    except ValueError:
        phase = None
    patch = event_status.phase_label_patch(meta.get("labels") or {}, phase)
    if patch is None:
        return
    for delay in (*LABEL_WRITE_DELAYS, None):
        try:
            await patch_labels(api, EVENTS, str(meta.get("namespace")), str(meta.get("name")), patch)
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if delay is None:
                log.error("could not update the %s label: %s", event_status.PHASE_LABEL, _describe(error))
                return
            log.warning("retrying the %s label: %s", event_status.PHASE_LABEL, _describe(error))
            await asyncio.sleep(delay)


def _new_status(
    runtime: NotificationRuntime,
    model: NotificationEvent,
    state: policy.DeliveryState,
    now: datetime,
    handled_requeue: str | None = None,
) -> NotificationEventStatus:
    return event_status.status_from_state(
        model.status,
        state,
        now=now,
        policy_=runtime.policy,
        generation=model.metadata.generation,
        handled_requeue=handled_requeue,
    )


# --------------------------------------------------------------------------- events: the timer


@kopf.timer(
    API_GROUP,
    API_VERSION,
    EVENTS,
    id="notification-delivery",
    interval=TIMER_INTERVAL,
    initial_delay=event_initial_delay,
    when=event_wants_attention,
)
async def notification_delivery(body: kopf.Body, memo: Any, logger: Any, **kwargs: Any) -> None:
    """Deliver when due; the schedule is in status, so errors here are only logged."""
    stopped: kopf.DaemonStopped = kwargs["stopped"]
    try:
        await _tick(_runtime(memo), _context(memo), copy.deepcopy(dict(body)), logger, stopped)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        logger.error("notification delivery step failed, will retry next tick: %s", _describe(error))


async def _tick(
    runtime: NotificationRuntime,
    context: OperatorContext,
    body: dict[str, Any],
    log: Any,
    stopped: kopf.DaemonStopped,
) -> None:
    meta = body.get("metadata") or {}
    if not event_status.raw_requeue_pending(meta.get("annotations") or {}, body.get("status")):
        try:
            seen = NotificationEvent.from_body(body)
        except ValueError:
            log.error("NotificationEvent does not parse; not delivering it")
            return
        wait = event_status.seconds_until_due(event_status.state_from_status(seen.status), _utcnow())
        interval = runtime.settings.notification_retry_interval.total_seconds()
        if wait is None or wait > interval:
            return
        if wait > 0:
            # A hair past the schedule: the event loop's clock may wake a little early.
            await pause(stopped, wait + DUE_MARGIN)
            if stopped:
                return
    async with runtime.lock(str(meta.get("uid"))):
        await _step(runtime, context, body, log, stopped)


async def _step(
    runtime: NotificationRuntime,
    context: OperatorContext,
    seen: dict[str, Any],
    log: Any,
    stopped: kopf.DaemonStopped,
) -> None:
    """One decision on the event as stored now: requeue, attempt, or nothing."""
    api = context.api
    meta = seen["metadata"]
    fresh = await get_object(api, EVENTS, meta["namespace"], meta["name"])
    if fresh is None or fresh["metadata"].get("uid") != meta.get("uid"):
        return
    if fresh["metadata"].get("deletionTimestamp"):
        return
    try:
        model = NotificationEvent.from_body(fresh)
    except ValueError:
        log.error("NotificationEvent does not parse; not delivering it")
        return

    request = event_status.requeue_request(model.metadata.annotations, model.status)
    if request is not None:
        _, model = await _requeue(runtime, api, model, request, log)

    state = event_status.state_from_status(model.status)
    kept = runtime.kept_outcome(str(model.metadata.uid), state)
    if kept is not None:
        # The receiver already answered this attempt; sending again would deliver twice.
        await _record_kept_outcome(runtime, api, model, state, kept, log)
        return
    now = _utcnow()
    if not policy.is_due(state, now):
        return
    if model.status.phase is None:
        # Record Pending first: the event is visibly waiting while its channel is tried.
        _, model = await _write_event_status(api, model, _new_status(runtime, model, state, now))
    await _attempt(runtime, api, model, state, log, stopped)


async def _requeue(
    runtime: NotificationRuntime, api: Any, model: NotificationEvent, request: str, log: Any
) -> tuple[dict[str, Any], NotificationEvent]:
    now = _utcnow()
    before = event_status.state_from_status(model.status)
    if model.status.phase is None:
        # A new event that arrived with the annotation: nothing to reset, remember the value.
        return await _write_event_status(api, model, _new_status(runtime, model, before, now, request))
    state = policy.on_requeue(before)
    written, model = await _write_event_status(api, model, _new_status(runtime, model, state, now, request))
    log.info("requeued (was %s after %d failed attempts)", before.phase.value, before.retry_count)
    kopf.info(
        _body(written),
        reason=EVENT_REQUEUED,
        message=(
            f"requeued by {event_status.REQUEUE_ANNOTATION}={request}: was {before.phase.value} "
            f"after {before.retry_count} failed attempt(s); retry budget reset"
        ),
    )
    return written, model


async def _attempt(
    runtime: NotificationRuntime,
    api: Any,
    model: NotificationEvent,
    state: policy.DeliveryState,
    log: Any,
    stopped: kopf.DaemonStopped,
) -> None:
    namespace = model.metadata.namespace or ""
    channel_name = model.spec.channel_ref.name
    resolution = await channel_kube.resolve_channel(api, namespace, channel_name, egress=runtime.egress)

    if not resolution.found:
        now = _utcnow()
        closed = policy.on_channel_missing(state, now, channel=channel_name)
        written, _ = await _write_event_status(api, model, _new_status(runtime, model, closed, now))
        metrics.notification_delivery_attempts_total.labels(
            channel_type="unknown", result=RESULT_SKIPPED
        ).inc()
        log.warning("NotificationChannel %r not found; closed without delivery", channel_name)
        kopf.warn(
            _body(written),
            reason=EVENT_CHANNEL_NOT_FOUND,
            message=f"NotificationChannel {channel_name!r} not found; closed without delivery",
        )
        return

    channel_type = channel_kube.channel_type_label(resolution.model.spec if resolution.model else None)
    if resolution.channel is None:
        problem = resolution.problems[0] if resolution.problems else "not usable"
        result = DeliveryResult.failure(
            timedelta(0),
            policy.DeliveryError(policy.ErrorKind.CONFIGURATION, f"channel {channel_name!r}: {problem}"),
        )
    else:
        delivered = await _deliver_unless_stopping(
            runtime.notifier.deliver(resolution.channel, event_status.build_message(model)), stopped
        )
        if delivered is None:
            log.info(
                "operator stopping: attempt %d cancelled after %.0fs on the wire, not recorded; "
                "it is made again after the restart under the same Idempotency-Key",
                state.retry_count + 1,
                DELIVERY_STOP_GRACE,
            )
            return
        result = delivered
    metrics.notification_delivery_attempts_total.labels(
        channel_type=channel_type, result=RESULT_SUCCESS if result.ok else RESULT_FAILURE
    ).inc()
    metrics.notification_delivery_duration_seconds.labels(channel_type=channel_type).observe(
        result.duration.total_seconds()
    )

    now = _utcnow()
    uid = str(model.metadata.uid)
    # Kept until the status write succeeds: a write that fails (the API server is
    # unreachable) leaves it for the next tick to record instead of sending again.
    runtime.keep_outcome(uid, state, result, now)
    after = _after_attempt(runtime, state, result, now)
    written, written_model = await _write_event_status(api, model, _new_status(runtime, model, after, now))
    runtime.forget_outcome(uid)
    _announce(written, written_model, after, runtime, log)
    # A destination refused on connect (a name resolving to a refused address) makes the channel not Ready.
    problems = (*resolution.problems, *((result.egress_refusal,) if result.egress_refusal else ()))
    if resolution.model is not None:
        await _refresh_channel(api, resolution.model, problems, log)
    elif resolution.body is not None:
        await _refresh_unparsable_channel(api, resolution.body, resolution.problems, log)


async def _deliver_unless_stopping(
    delivery: Coroutine[Any, Any, DeliveryResult], stopped: kopf.DaemonStopped
) -> DeliveryResult | None:
    """The delivery's result; None when the operator stopped and it did not finish within the grace."""
    task = asyncio.ensure_future(delivery)
    try:
        while not task.done() and not stopped:
            await asyncio.wait([task], timeout=STOP_POLL_SECONDS)
        if not task.done():
            await asyncio.wait([task], timeout=DELIVERY_STOP_GRACE)
    finally:
        # Also when this tick itself is cancelled: no delivery outlives its timer.
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()


def _after_attempt(
    runtime: NotificationRuntime, state: policy.DeliveryState, result: DeliveryResult, now: datetime
) -> policy.DeliveryState:
    if result.ok:
        return policy.on_success(state, now, result.duration, detail=result.detail)
    assert result.error is not None
    return policy.on_failure(state, result.error, now, runtime.policy, duration=result.duration)


async def _record_kept_outcome(
    runtime: NotificationRuntime,
    api: Any,
    model: NotificationEvent,
    state: policy.DeliveryState,
    kept: UnrecordedOutcome,
    log: Any,
) -> None:
    """Write the outcome of an attempt made while the status could not be written, as of its time."""
    uid = str(model.metadata.uid)
    after = _after_attempt(runtime, state, kept.result, kept.at)
    written, written_model = await _write_event_status(
        api, model, _new_status(runtime, model, after, _utcnow())
    )
    runtime.forget_outcome(uid)
    log.info(
        "recorded attempt %d, made while the API server was unreachable, without sending again", kept.attempt
    )
    _announce(written, written_model, after, runtime, log)


def _announce(
    written: dict[str, Any],
    model: NotificationEvent,
    state: policy.DeliveryState,
    runtime: NotificationRuntime,
    log: Any,
) -> None:
    """Post the Kubernetes Event of this transition and log it."""
    delivered, dead_letter = policy.delivery_conditions(state, runtime.policy)
    if state.phase is policy.DeliveryPhase.SENT:
        log.info("notification %s", delivered.message)
        kopf.info(_body(written), reason=EVENT_DELIVERED, message=delivered.message)
    elif state.phase is policy.DeliveryPhase.DEAD:
        log.warning("notification dead-lettered: %s", dead_letter.message)
        kopf.warn(_body(written), reason=EVENT_DEAD_LETTERED, message=dead_letter.message)
    else:
        retry_at = model.status.next_retry_at
        when = f"; next attempt at {retry_at:%Y-%m-%dT%H:%M:%SZ}" if retry_at else ""
        message = (
            f"attempt {state.retry_count} of {runtime.policy.max_attempts} failed: "
            f"{state.last_error or 'unknown error'}{when}"
        )
        log.warning("notification %s", message)
        # One Warning per failure, not one per retry: later attempts are in status.attempts and the log.
        if state.retry_count == 1:
            kopf.warn(_body(written), reason=EVENT_DELIVERY_FAILED, message=message)


# --------------------------------------------------------------------------- events: bookkeeping


@kopf.on.event(API_GROUP, API_VERSION, EVENTS, id="notification-bookkeeping")
async def notification_bookkeeping(
    type: str | None, body: kopf.Body, memo: Any, logger: Any, **_: Any
) -> None:
    """Counts by phase (the gauges), the retention list, and the dead-letter label."""
    runtime = _runtime(memo)
    runtime.observe(type, body)
    if type == "DELETED":
        return
    api = _context(memo).api
    if api is not None:
        await _sync_phase_label(api, body, logger)


# --------------------------------------------------------------------------- channels


def channel_needs_check(meta: Mapping[str, Any], status: Mapping[str, Any], **_: Any) -> bool:
    """A channel is checked until its Ready condition is True for its current generation."""
    if meta.get("deletionTimestamp"):
        return False
    status = status or {}
    if status.get("observedGeneration") != meta.get("generation") or not status.get("type"):
        return True
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return ready is None or ready.get("status") != ConditionStatus.TRUE.value


def channel_initial_delay(status: Mapping[str, Any], **_: Any) -> float:
    """Prompt for a channel never checked; jittered re-checks after a restart."""
    if not (status or {}).get("conditions"):
        return 0.0
    return random.uniform(0, TIMER_INTERVAL)  # noqa: S311 (spreading load, not security)


async def _refresh_channel(api: Any, model: NotificationChannel, problems: tuple[str, ...], log: Any) -> None:
    """Write the channel's type and Ready condition when they changed; post an Event on a Ready flip."""
    now = _utcnow()
    after = channel_kube.channel_status(
        model.status, model.spec, problems, now=now, generation=model.metadata.generation
    )
    meta = model.metadata
    await _write_channel_status(api, meta.namespace or "", meta.name or "", model.status, after, log)


async def _refresh_unparsable_channel(
    api: Any, body: Mapping[str, Any], problems: tuple[str, ...], log: Any
) -> None:
    """Ready=False (InvalidConfiguration) for a stored channel the schema's rules now refuse."""
    before, after = channel_kube.unparsable_channel_status(body, problems, now=_utcnow())
    meta = body.get("metadata") or {}
    await _write_channel_status(api, str(meta.get("namespace")), str(meta.get("name")), before, after, log)


async def _write_channel_status(
    api: Any,
    namespace: str,
    name: str,
    before: NotificationChannelStatus,
    after: NotificationChannelStatus,
    log: Any,
) -> None:
    patch = status_patch(before, after)
    if not patch:
        return
    try:
        written = await patch_status(api, CHANNELS, namespace, name, patch)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        log.warning("could not update NotificationChannel %s status: %s", name, _describe(error))
        return
    was = find_condition(before.conditions, "Ready")
    now_ready = find_condition(after.conditions, "Ready")
    if now_ready is None:
        return
    # Checks of one channel can run side by side (timer, Secret watch, delivery), each
    # from its own read of the status: the flip is announced by the first that writes it.
    uid = str((written.get("metadata") or {}).get("uid"))
    previous = _announced_channel_ready.get(uid, was.status if was is not None else None)
    _announced_channel_ready[uid] = now_ready.status
    if previous == now_ready.status:
        return
    if now_ready.status == ConditionStatus.TRUE:
        kopf.info(_body(written), reason=EVENT_CHANNEL_READY, message=now_ready.message)
    else:
        kopf.warn(_body(written), reason=EVENT_CHANNEL_NOT_READY, message=now_ready.message)


@kopf.timer(
    API_GROUP,
    API_VERSION,
    CHANNELS,
    id="notification-channel-check",
    interval=TIMER_INTERVAL,
    initial_delay=channel_initial_delay,
    when=channel_needs_check,
)
async def notification_channel_check(body: kopf.Body, memo: Any, logger: Any, **_: Any) -> None:
    """Check the channel's Secrets and settings until it is Ready."""
    try:
        raw = copy.deepcopy(dict(body))
        meta = raw["metadata"]
        api = _context(memo).api
        runtime = _runtime(memo)
        resolution = await channel_kube.resolve_channel(
            api, meta["namespace"], meta["name"], egress=runtime.egress, resolve_names=True
        )
        if resolution.model is not None:
            await _refresh_channel(api, resolution.model, resolution.problems, logger)
        elif resolution.body is not None:
            await _refresh_unparsable_channel(api, resolution.body, resolution.problems, logger)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        logger.error("NotificationChannel check failed, will retry: %s", _describe(error))


@kopf.on.event(API_GROUP, API_VERSION, CHANNELS, id="channel-secret-watch")
async def channel_secret_watch(type: str | None, body: kopf.Body, memo: Any, logger: Any, **_: Any) -> None:
    """Check the channel again at once when a Secret it references is created, changed or deleted."""
    from certctl_operator.kube.secret_watch import secret_watcher

    context = _context(memo)
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    try:
        gone = type == "DELETED" or bool(body.metadata.get("deletionTimestamp"))
        names = [] if gone else channel_kube.secret_names(NotificationChannel.from_body(dict(body)).spec)
    except ValueError:
        names = []

    async def recheck() -> None:
        resolution = await channel_kube.resolve_channel(
            context.api, namespace, name, egress=_runtime(memo).egress, resolve_names=True
        )
        if resolution.model is not None:
            await _refresh_channel(context.api, resolution.model, resolution.problems, logger)

    secret_watcher(context).watch((CHANNELS, namespace, name), [(namespace, n) for n in names], recheck)
