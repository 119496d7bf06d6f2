"""NotificationChannel and NotificationEvent: reliable delivery with retries and a dead-letter queue.

How an event moves (the rules themselves are in
:mod:`certctl_operator.policy.notification`):

* Watch events only keep a small record per event (its name, uid,
  resourceVersion, phase and ``sentAt``, never the body) and put the event on
  one keyed work queue (:class:`~certctl_operator.workqueue.WorkQueue`) with a
  due-time scheduler. A new, Pending or requeued event is due at once, a
  Failed one at ``status.nextRetryAt``, a Sent one when its retention has
  passed (it is deleted then), a Dead one never. Ten thousand events waiting
  for their next attempt are ten thousand heap entries and one sleeping
  scheduler task, and an attempt starts at its scheduled time rather than at
  the next tick of a timer.
* A worker takes the event under a per-event lock and reads it again from
  the API server: the decision is taken on that fresh copy, never on a
  possibly stale watch body. The outcome, the next schedule, the conditions
  and the attempt history are written in one status patch, whose watch
  event schedules the next attempt.
* Requeue: the ``certctl.io/requeue`` annotation set to a value other than
  ``status.lastHandledRequeue`` resets the delivery in one status write
  (also storing the handled value, so it is level-triggered and survives
  restarts), then delivers again.
* The ``certctl.io/phase=dead`` label is kept in step with the phase by the
  watch-event handler, which also keeps the per-phase counts behind the
  gauges, one transition at a time.
* Channels that are not Ready are checked again on the same queue every
  ``notificationRetryInterval`` (and at once when a Secret they use
  changes), until they are.

Nothing that decides when to try again lives only in memory: after a restart
Kopf's initial listing rebuilds every schedule from the status, and an
unchanged object costs no write. The handlers here are ``@kopf.on.event``
handlers only, so Kopf keeps no progress or diff-base annotation of its own
on these objects. The queue runs while the operator runs, which with leader
election is only while it holds the Lease. On shutdown no new attempt
starts; one on the wire gets :data:`DELIVERY_STOP_GRACE` to finish and be
recorded, else it is cancelled unrecorded and made again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

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
from certctl_operator.controllers.pausing import STOP_POLL_SECONDS
from certctl_operator.kube import channels as channel_kube
from certctl_operator.kube import notification_status as event_status
from certctl_operator.kube.client import create_api_client
from certctl_operator.kube.events import NORMAL, WARNING, post_event
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
from certctl_operator.workqueue import Requeue, WorkQueue

logger = logging.getLogger("certctl.notifications")

RUNTIME_KEY = "notifications"

DELIVERY_WORKERS = 32
"""Events and channels handled at the same time.

Deliveries wait on the network, so several run side by side; a few channels
that hang until their timeout hold a few workers, not all of them.
"""

DELIVERY_STOP_GRACE = 5.0
"""Seconds a delivery already on the wire may still take once the operator is stopping.

Past it the attempt is cancelled and not recorded: the event keeps its status
(not done) and the next start makes the attempt again under the same
Idempotency-Key.
"""

STOP_RECORD_GRACE = 5.0
"""Seconds, beyond the delivery grace, that a stopping operator waits for outcomes to be written."""

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


@dataclass(slots=True)
class TrackedEvent:
    """What the operator last saw of one NotificationEvent (from the watch); small on purpose."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    phase: DeliveryPhase
    sent_at: datetime | None
    requeue_pending: bool = False

    def log_extra(self) -> dict[str, Any]:
        return object_extra(
            {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": "NotificationEvent",
                "metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid},
            }
        )


class ChannelKey(NamedTuple):
    """A NotificationChannel on the work queue (events are on it by uid)."""

    namespace: str
    name: str


WorkKey = str | ChannelKey
"""An event's uid, or a channel."""


class StopSignal(Protocol):
    """True once the operator is stopping."""

    def __bool__(self) -> bool: ...


class Stopping:
    """The notification runtime's stop flag: set once, when the operator begins to stop."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def __bool__(self) -> bool:
        return self._set


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
    """Per-process state: the notifier, the work queue, per-event locks and the watch-maintained book."""

    settings: Settings
    pool: HttpClientPool
    notifier: Notifier
    policy: policy.RetryPolicy
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    api: Any = None
    """The API client of deliveries, the runtime's own: it stays open until the last outcome is written."""
    events: dict[str, TrackedEvent] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    unrecorded: dict[str, UnrecordedOutcome] = field(default_factory=dict)
    """Outcomes not yet written, by event uid; see :meth:`keep_outcome`."""
    own_writes: dict[str, str] = field(default_factory=dict)
    """resourceVersions of event writes made while the event is being handled, by uid."""
    counts: dict[DeliveryPhase, int] = field(default_factory=lambda: dict.fromkeys(DeliveryPhase, 0))
    stopping: Stopping = field(default_factory=Stopping)
    queue: WorkQueue[WorkKey] = field(init=False)

    def __post_init__(self) -> None:
        interval = max(self.settings.notification_retry_interval, timedelta(milliseconds=100))
        self.queue = WorkQueue(
            self._process,
            workers=DELIVERY_WORKERS,
            name="notifications",
            max_sleep=interval,
            # An API server that is away is tried again at least once an interval.
            retry_cap=interval,
            log_extra=self.log_extra_of,
        )

    @property
    def interval(self) -> timedelta:
        """How often a channel that is not Ready is checked again."""
        return self.settings.notification_retry_interval

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

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> TrackedEvent | None:
        """Update the book and the gauges from one watch event; the record, None once deleted."""
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if not uid:
            return None
        previous = self.events.get(uid)
        if previous is not None:
            self.counts[previous.phase] -= 1
        if event_type == "DELETED":
            self.events.pop(uid, None)
            self.own_writes.pop(uid, None)
            self.forget_outcome(uid)
            lock = self.locks.get(uid)
            if lock is not None and not lock.locked():
                del self.locks[uid]
            self.update_gauges()
            return None
        status = body.get("status") or {}
        try:
            phase = DeliveryPhase(status.get("phase") or DeliveryPhase.PENDING.value)
        except ValueError:
            phase = DeliveryPhase.PENDING
        tracked = TrackedEvent(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=uid,
            resource_version=str(meta.get("resourceVersion") or ""),
            phase=phase,
            sent_at=event_status.parse_time(status.get("sentAt")),
            requeue_pending=event_status.raw_requeue_pending(meta.get("annotations") or {}, status),
        )
        self.events[uid] = tracked
        self.counts[phase] += 1
        self.update_gauges()
        return tracked

    def phase_counts(self) -> dict[DeliveryPhase, int]:
        return dict(self.counts)

    def update_gauges(self) -> None:
        for phase, count in self.counts.items():
            metrics.notification_events.labels(phase=phase.value).set(count)
        metrics.notification_dead_total.set(self.counts[DeliveryPhase.DEAD])

    def expired(self, tracked: TrackedEvent, now: datetime) -> bool:
        """Whether ``tracked`` is a Sent event older than the retention period, and not requeued."""
        if tracked.phase is not DeliveryPhase.SENT or tracked.requeue_pending:
            return False
        state = policy.DeliveryState(phase=policy.DeliveryPhase.SENT, sent_at=tracked.sent_at)
        return policy.should_expire(state, now, self.settings.notification_sent_retention)

    def remember_write(self, written: Mapping[str, Any]) -> None:
        """Note a write made while handling the event: its watch event needs no visit of its own."""
        meta = written.get("metadata") or {}
        if meta.get("uid") and meta.get("resourceVersion"):
            self.own_writes[str(meta["uid"])] = str(meta["resourceVersion"])

    def is_own_write(self, uid: str, resource_version: str) -> bool:
        """Whether this version of the event was written by its own handling (forgotten once seen)."""
        if self.own_writes.get(uid) != resource_version:
            return False
        del self.own_writes[uid]
        return True

    def log_extra_of(self, key: WorkKey) -> dict[str, Any]:
        if isinstance(key, ChannelKey):
            return object_extra(
                {
                    "apiVersion": f"{API_GROUP}/{API_VERSION}",
                    "kind": "NotificationChannel",
                    "metadata": {"namespace": key.namespace, "name": key.name},
                }
            )
        tracked = self.events.get(key)
        return tracked.log_extra() if tracked is not None else {}

    async def _process(self, key: WorkKey) -> None:
        if self.stopping:
            # Nothing new starts once stopping: the status says what is still due after the restart.
            return
        if isinstance(key, ChannelKey):
            await _check_channel(self, key)
        else:
            await _visit_event(self, key)

    async def stop(self) -> None:
        """Start nothing new, let the attempts under way finish (within the grace), then stop."""
        self.stopping.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DELIVERY_STOP_GRACE + STOP_POLL_SECONDS + STOP_RECORD_GRACE):
                await self.queue.wait_idle()
        await self.queue.stop()


async def _post_event(api: Any, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
    """Post a Kubernetes Event about ``obj`` (as written); one that cannot be posted is only logged.

    Posted by the operator itself rather than through Kopf, whose posting
    works only inside its per-object handler tasks, not in the queue's workers.
    """
    try:
        await post_event(api, obj, event_type=event_type, reason=reason, message=message)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        logger.warning("could not post the %s Event: %s", reason, _describe(error), extra=object_extra(obj))


def _context(memo: Any) -> OperatorContext:
    context: OperatorContext = memo.context
    return context


def _runtime(memo: Any) -> NotificationRuntime:
    runtime: NotificationRuntime = _context(memo).extras[RUNTIME_KEY]
    return runtime


DELIVERY_LOGGER = logging.getLogger("kopf.objects")
"""What happened to an event is logged as Kopf logs about objects, as it was when Kopf drove deliveries."""


def _event_logger(tracked: TrackedEvent) -> logging.LoggerAdapter[logging.Logger]:
    """Log records about one event, carrying its reference."""
    return logging.LoggerAdapter(DELIVERY_LOGGER, tracked.log_extra())


_ROUTINE_HANDLERS = ("notification-bookkeeping", "channel-secret-watch")


class QuietRoutineSuccess(logging.Filter):
    """Drop Kopf's "... succeeded." line for handlers that run on every watch event.

    What they did is logged by the handlers themselves; failures still pass.
    """

    _lines = frozenset(f"Handler {handler_id!r} succeeded." for handler_id in _ROUTINE_HANDLERS)

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
        # Cleanup handlers run one after the other and the operator's client may close before
        # this runtime's: deliveries answered during the shutdown must still be recorded.
        api=await create_api_client(),
    )
    runtime.update_gauges()
    context.extras[RUNTIME_KEY] = runtime
    runtime.queue.start()


@kopf.on.cleanup(id="notifications-cleanup")
async def stop_notifications(memo: Any, **_: Any) -> None:
    context = _context(memo)
    runtime: NotificationRuntime | None = context.extras.pop(RUNTIME_KEY, None)
    if runtime is not None:
        await runtime.stop()
        if runtime.api is not None:
            await runtime.api.close()
    if context.http_pool is not None:
        await context.http_pool.aclose()
        context.http_pool = None
    logging.getLogger("kopf.objects").removeFilter(_QUIET)


# --------------------------------------------------------------------------- events: the watch


@kopf.on.event(API_GROUP, API_VERSION, EVENTS, id="notification-bookkeeping")
async def notification_bookkeeping(
    type: str | None, body: kopf.Body, memo: Any, logger: Any, **_: Any
) -> None:
    """The book and its gauges, the schedule of the event, and the dead-letter label."""
    runtime = _runtime(memo)
    uid = str(body.metadata.get("uid") or "")
    first_seen = uid not in runtime.events
    tracked = runtime.observe(type, body)
    if tracked is None:
        if uid:
            runtime.queue.forget(uid)
        return
    own = runtime.is_own_write(uid, tracked.resource_version)
    schedule_event(runtime, body, own_write=own, now=_utcnow(), first_seen=first_seen)
    if runtime.api is not None:
        await _sync_phase_label(runtime.api, body, logger)


def schedule_event(
    runtime: NotificationRuntime,
    body: Mapping[str, Any],
    *,
    own_write: bool,
    now: datetime,
    first_seen: bool = False,
) -> None:
    """Put the event on the queue for its next visit, from the body of a watch event.

    A version written by a visit that goes on needs no visit of its own. A
    retry found overdue when the event is first seen (the listing after a
    restart) is made within one interval, at a random moment, so a restart
    does not make every overdue retry at once.
    """
    meta = body.get("metadata") or {}
    uid = str(meta.get("uid"))
    annotations = meta.get("annotations") or {}
    status = body.get("status") or {}
    when = event_status.next_visit(
        annotations,
        status,
        now=now,
        retention=runtime.settings.notification_sent_retention,
        deleting=bool(meta.get("deletionTimestamp")),
    )
    overdue_retry = (
        first_seen
        and status.get("phase") == DeliveryPhase.FAILED.value
        and not event_status.raw_requeue_pending(annotations, status)
    )
    if when is not None and when <= now and overdue_retry:
        spread = random.uniform(0, runtime.interval.total_seconds())  # noqa: S311 (spreading load)
        when = now + timedelta(seconds=spread)
    if when is None:
        runtime.queue.schedule(uid, None)
    elif when > now:
        runtime.queue.schedule(uid, when)
    elif not own_write:
        runtime.queue.schedule(uid, None)
        runtime.queue.add(uid)


async def _visit_event(runtime: NotificationRuntime, uid: str) -> None:
    """One visit of a due event: deliver, record, requeue, or delete it once its retention passed."""
    tracked = runtime.events.get(uid)
    if tracked is None:
        return
    log = _event_logger(tracked)
    if runtime.expired(tracked, _utcnow()):
        await _delete_expired(runtime, tracked, log)
        return
    lock = runtime.lock(uid)
    try:
        async with lock:
            await _step(runtime, tracked, log)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        # The schedule is in the status; the queue comes back to this event after a back-off.
        log.error("notification delivery step failed, will retry: %s", _describe(error))
        raise Requeue(_describe(error)) from error
    finally:
        # Kept only while in use: ten thousand waiting events hold no lock each.
        if not lock.locked() and runtime.locks.get(uid) is lock:
            del runtime.locks[uid]


async def _delete_expired(runtime: NotificationRuntime, tracked: TrackedEvent, log: Any) -> None:
    """Delete a Sent event whose retention has passed; Dead ones stay until a person acts."""
    try:
        deleted = await delete_if_unchanged(
            runtime.api, EVENTS, tracked.namespace, tracked.name, tracked.uid, tracked.resource_version
        )
    except asyncio.CancelledError:
        raise
    except Exception as error:
        log.warning(
            "could not delete expired NotificationEvent %s/%s: %s",
            tracked.namespace,
            tracked.name,
            _describe(error),
        )
        raise Requeue(_describe(error)) from error
    if deleted:
        log.info(
            "deleted NotificationEvent %s/%s: sent more than %s ago",
            tracked.namespace,
            tracked.name,
            runtime.settings.notification_sent_retention,
        )


async def _step(runtime: NotificationRuntime, tracked: TrackedEvent, log: Any) -> None:
    """One decision on the event as stored now: requeue, attempt, or nothing."""
    api = runtime.api
    fresh = await get_object(api, EVENTS, tracked.namespace, tracked.name)
    if fresh is None or fresh["metadata"].get("uid") != tracked.uid:
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
    kept = runtime.kept_outcome(tracked.uid, state)
    if kept is not None:
        # The receiver already answered this attempt; sending again would deliver twice.
        await _record_kept_outcome(runtime, api, model, state, kept, log)
        return
    now = _utcnow()
    if not policy.is_due(state, now):
        # Woken before the time in the status (or it moved): come back then.
        if state.next_retry_at is not None and not state.terminal:
            runtime.queue.schedule(tracked.uid, event_status.ceil_to_second(state.next_retry_at))
        return
    if runtime.stopping:
        return
    if model.status.phase is None:
        # Record Pending first: the event is visibly waiting while its channel is tried.
        _, model = await _write_event_status(
            runtime, model, _new_status(runtime, model, state, now), visit_goes_on=True
        )
    await _attempt(runtime, api, model, state, log, runtime.stopping)


async def _requeue(
    runtime: NotificationRuntime, api: Any, model: NotificationEvent, request: str, log: Any
) -> tuple[dict[str, Any], NotificationEvent]:
    now = _utcnow()
    before = event_status.state_from_status(model.status)
    if model.status.phase is None:
        # A new event that arrived with the annotation: nothing to reset, remember the value.
        return await _write_event_status(
            runtime, model, _new_status(runtime, model, before, now, request), visit_goes_on=True
        )
    state = policy.on_requeue(before)
    written, model = await _write_event_status(
        runtime, model, _new_status(runtime, model, state, now, request), visit_goes_on=True
    )
    log.info("requeued (was %s after %d failed attempts)", before.phase.value, before.retry_count)
    await _post_event(
        runtime.api,
        written,
        NORMAL,
        EVENT_REQUEUED,
        (
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
    stopped: StopSignal,
) -> None:
    namespace = model.metadata.namespace or ""
    channel_name = model.spec.channel_ref.name
    resolution = await channel_kube.resolve_channel(api, namespace, channel_name, egress=runtime.egress)

    if not resolution.found:
        now = _utcnow()
        closed = policy.on_channel_missing(state, now, channel=channel_name)
        written, _ = await _write_event_status(runtime, model, _new_status(runtime, model, closed, now))
        metrics.notification_delivery_attempts_total.labels(
            channel_type="unknown", result=RESULT_SKIPPED
        ).inc()
        log.warning("NotificationChannel %r not found; closed without delivery", channel_name)
        await _post_event(
            api,
            written,
            WARNING,
            EVENT_CHANNEL_NOT_FOUND,
            f"NotificationChannel {channel_name!r} not found; closed without delivery",
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
    # unreachable) leaves it for the next visit to record instead of sending again.
    runtime.keep_outcome(uid, state, result, now)
    after = _after_attempt(runtime, state, result, now)
    written, written_model = await _write_event_status(
        runtime, model, _new_status(runtime, model, after, now)
    )
    runtime.forget_outcome(uid)
    await _announce(written, written_model, after, runtime, log)
    # A destination refused on connect (a name resolving to a refused address) makes the channel not Ready.
    problems = (*resolution.problems, *((result.egress_refusal,) if result.egress_refusal else ()))
    if resolution.model is not None:
        await _refresh_channel(api, resolution.model, problems, log)
    elif resolution.body is not None:
        await _refresh_unparsable_channel(api, resolution.body, resolution.problems, log)


async def _deliver_unless_stopping(
    delivery: Coroutine[Any, Any, DeliveryResult], stopped: StopSignal
) -> DeliveryResult | None:
    """The delivery's result; None when the operator stopped and it did not finish within the grace."""
    task = asyncio.ensure_future(delivery)
    try:
        while not task.done() and not stopped:
            await asyncio.wait([task], timeout=STOP_POLL_SECONDS)
        if not task.done():
            await asyncio.wait([task], timeout=DELIVERY_STOP_GRACE)
    finally:
        # Also when the visit itself is cancelled: no delivery outlives the worker that made it.
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
        runtime, model, _new_status(runtime, model, after, _utcnow())
    )
    runtime.forget_outcome(uid)
    log.info(
        "recorded attempt %d, made while the API server was unreachable, without sending again", kept.attempt
    )
    await _announce(written, written_model, after, runtime, log)


async def _announce(
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
        await _post_event(runtime.api, written, NORMAL, EVENT_DELIVERED, delivered.message)
    elif state.phase is policy.DeliveryPhase.DEAD:
        log.warning("notification dead-lettered: %s", dead_letter.message)
        await _post_event(runtime.api, written, WARNING, EVENT_DEAD_LETTERED, dead_letter.message)
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
            await _post_event(runtime.api, written, WARNING, EVENT_DELIVERY_FAILED, message)


# --------------------------------------------------------------------------- events: writes


async def _write_event_status(
    runtime: NotificationRuntime,
    model: NotificationEvent,
    after: NotificationEventStatus,
    *,
    visit_goes_on: bool = False,
) -> tuple[dict[str, Any], NotificationEvent]:
    """Merge-patch the status; ``visit_goes_on`` for a write the same visit follows with an attempt.

    The watch event of such a write (Pending, due at once) must not queue the
    event again. Any other write ends the visit, and its watch event
    schedules the next one, even when that is due at once.
    """
    patch = status_patch(model.status, after)
    meta = model.metadata
    namespace, name = meta.namespace or "", meta.name or ""
    written = await patch_status(runtime.api, EVENTS, namespace, name, patch)
    if visit_goes_on:
        runtime.remember_write(written)
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


# --------------------------------------------------------------------------- channels


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
    # Checks of one channel can run side by side (its own check, deliveries), each
    # from its own read of the status: the flip is announced by the first that writes it.
    uid = str((written.get("metadata") or {}).get("uid"))
    previous = _announced_channel_ready.get(uid, was.status if was is not None else None)
    _announced_channel_ready[uid] = now_ready.status
    if previous == now_ready.status:
        return
    if now_ready.status == ConditionStatus.TRUE:
        await _post_event(api, written, NORMAL, EVENT_CHANNEL_READY, now_ready.message)
    else:
        await _post_event(api, written, WARNING, EVENT_CHANNEL_NOT_READY, now_ready.message)


def channel_needs_check(meta: Mapping[str, Any], status: Mapping[str, Any], **_: Any) -> bool:
    """A channel is checked until its Ready condition is True for its current generation."""
    if meta.get("deletionTimestamp"):
        return False
    status = status or {}
    if status.get("observedGeneration") != meta.get("generation") or not status.get("type"):
        return True
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return ready is None or ready.get("status") != ConditionStatus.TRUE.value


def channel_initial_delay(status: Mapping[str, Any], interval: float, **_: Any) -> float:
    """Prompt for a channel never checked; re-checks after a restart spread over one interval."""
    if not (status or {}).get("conditions"):
        return 0.0
    return random.uniform(0, interval)  # noqa: S311 (spreading load, not security)


def schedule_channel(
    runtime: NotificationRuntime, key: ChannelKey, body: Mapping[str, Any], now: datetime
) -> None:
    """Put a channel that is not Ready on the queue: at once when never checked, else within an interval."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    if not channel_needs_check(meta, status):
        runtime.queue.schedule(key, None)
        return
    checked = status.get("observedGeneration") == meta.get("generation") and bool(status.get("conditions"))
    if not checked:
        runtime.queue.add(key)
    elif runtime.queue.scheduled(key) is None:
        delay = channel_initial_delay(status, runtime.interval.total_seconds())
        runtime.queue.schedule(key, now + timedelta(seconds=delay))


async def _check_channel(runtime: NotificationRuntime, key: ChannelKey) -> None:
    """Check the channel's Secrets and settings; again an interval later while it is not Ready."""
    channel_log = logging.LoggerAdapter(logger, runtime.log_extra_of(key))
    try:
        resolution = await channel_kube.resolve_channel(
            runtime.api, key.namespace, key.name, egress=runtime.egress, resolve_names=True
        )
        if resolution.model is not None:
            await _refresh_channel(runtime.api, resolution.model, resolution.problems, channel_log)
        elif resolution.body is not None:
            await _refresh_unparsable_channel(runtime.api, resolution.body, resolution.problems, channel_log)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        channel_log.error("NotificationChannel check failed, will retry: %s", _describe(error))
        runtime.queue.schedule(key, _utcnow() + runtime.interval)
        return
    if resolution.body is not None and (resolution.channel is None or resolution.problems):
        runtime.queue.schedule(key, _utcnow() + runtime.interval)


@kopf.on.event(API_GROUP, API_VERSION, CHANNELS, id="channel-secret-watch")
async def channel_secret_watch(type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
    """Check a channel that is not Ready, and again at once when a Secret it references changes."""
    from certctl_operator.kube.secret_watch import secret_watcher

    context = _context(memo)
    runtime = _runtime(memo)
    key = ChannelKey(body.metadata.namespace or "", body.metadata.name or "")
    gone = type == "DELETED" or bool(body.metadata.get("deletionTimestamp"))
    try:
        names = [] if gone else channel_kube.secret_names(NotificationChannel.from_body(dict(body)).spec)
    except ValueError:
        names = []
    if gone:
        runtime.queue.forget(key)
        _announced_channel_ready.pop(str(body.metadata.get("uid")), None)
    else:
        schedule_channel(runtime, key, body, _utcnow())

    async def recheck() -> None:
        runtime.queue.add(key)

    secret_watcher(context).watch(
        (CHANNELS, key.namespace, key.name), [(key.namespace, n) for n in names], recheck
    )
