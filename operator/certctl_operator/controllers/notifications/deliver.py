"""One visit of a due NotificationEvent: requeue, attempt the delivery and record its outcome, or expire it.

A worker takes the event under a per-event lock and reads it again from the
API server: the decision is taken on that fresh copy, never on a possibly
stale watch body. The outcome, the next schedule, the conditions and the
attempt history are written in one status patch (:mod:`.record`), whose
watch event schedules the next visit.

An answer the receiver gave is never thrown away: the outcome is kept in the
runtime until its status write succeeds, so when the API server was away it
is recorded on the next visit instead of being sent again. On shutdown no
new attempt starts; one on the wire gets :data:`DELIVERY_STOP_GRACE` to
finish and be recorded, else it is cancelled unrecorded and made again after
the restart under the same Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any

from certctl_operator.api.notification import NotificationEvent
from certctl_operator.controllers.notifications import announce
from certctl_operator.controllers.notifications.channels import refresh_channel, refresh_unparsable_channel
from certctl_operator.controllers.notifications.logs import describe_error, event_logger
from certctl_operator.controllers.notifications.message import build_message
from certctl_operator.controllers.notifications.metrics import count_attempt, count_skipped_attempt
from certctl_operator.controllers.notifications.record import new_status, write_event_status
from certctl_operator.controllers.notifications.runtime import (
    ChannelKey,
    NotificationRuntime,
    StopSignal,
    TrackedEvent,
    UnrecordedOutcome,
)
from certctl_operator.controllers.pausing import STOP_POLL_SECONDS
from certctl_operator.kube import channels as channel_kube
from certctl_operator.kube.objects import delete_if_unchanged, get_object
from certctl_operator.notify.channel_config import channel_type_label
from certctl_operator.notify.senders import DeliveryResult
from certctl_operator.policy import notification as policy
from certctl_operator.policy.clock import utc_now
from certctl_operator.status import notifications as event_status
from certctl_operator.workqueue import Requeue

DELIVERY_STOP_GRACE = 5.0
"""Seconds a delivery already on the wire may still take once the operator is stopping.

Past it the attempt is cancelled and not recorded: the event keeps its status
(not done) and the next start makes the attempt again under the same
Idempotency-Key.
"""


async def visit_event(runtime: NotificationRuntime, uid: str) -> None:
    """One visit of a due event: deliver, record, requeue, or delete it once its retention passed."""
    tracked = runtime.events.get(uid)
    if tracked is None:
        return
    log = event_logger(tracked)
    if runtime.expired(tracked, utc_now()):
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
        log.error("notification delivery step failed, will retry: %s", describe_error(error))
        raise Requeue(describe_error(error)) from error
    finally:
        # Kept only while in use: ten thousand waiting events hold no lock each.
        if not lock.locked() and runtime.locks.get(uid) is lock:
            del runtime.locks[uid]


async def _delete_expired(runtime: NotificationRuntime, tracked: TrackedEvent, log: Any) -> None:
    """Delete a Sent event whose retention has passed; Dead ones stay until a person acts."""
    try:
        deleted = await delete_if_unchanged(
            runtime.api,
            NotificationEvent.PLURAL,
            namespace=tracked.namespace,
            name=tracked.name,
            uid=tracked.uid,
            resource_version=tracked.resource_version,
        )
    except asyncio.CancelledError:
        raise
    except Exception as error:
        log.warning(
            "could not delete expired NotificationEvent %s/%s: %s",
            tracked.namespace,
            tracked.name,
            describe_error(error),
        )
        raise Requeue(describe_error(error)) from error
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
    fresh = await get_object(api, NotificationEvent.PLURAL, namespace=tracked.namespace, name=tracked.name)
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
        _, model = await _requeue(runtime, model, request, log)

    state = event_status.state_from_status(model.status)
    kept = runtime.kept_outcome(tracked.uid, state)
    if kept is not None:
        # The receiver already answered this attempt; sending again would deliver twice.
        await _record_kept_outcome(runtime, model, state, kept, log)
        return
    now = utc_now()
    if not policy.is_due(state, now):
        # Woken before the time in the status (or it moved): come back then.
        if state.next_retry_at is not None and not state.terminal:
            runtime.queue.schedule(tracked.uid, event_status.ceil_to_second(state.next_retry_at))
        return
    if runtime.stopping:
        return
    if model.status.phase is None:
        # Record Pending first: the event is visibly waiting while its channel is tried.
        _, model = await write_event_status(
            runtime, model, new_status(runtime, model, state, now), visit_goes_on=True
        )
    await _attempt(runtime, model, state, log, runtime.stopping)


async def _requeue(
    runtime: NotificationRuntime, model: NotificationEvent, request: str, log: Any
) -> tuple[dict[str, Any], NotificationEvent]:
    """Reset the delivery for a new requeue value and remember the value, in one status write."""
    now = utc_now()
    before = event_status.state_from_status(model.status)
    if model.status.phase is None:
        # A new event that arrived with the annotation: nothing to reset, remember the value.
        return await write_event_status(
            runtime, model, new_status(runtime, model, before, now, request), visit_goes_on=True
        )
    state = policy.on_requeue(before)
    written, model = await write_event_status(
        runtime, model, new_status(runtime, model, state, now, request), visit_goes_on=True
    )
    log.info("requeued (was %s after %d failed attempts)", before.phase.value, before.retry_count)
    await announce.announce_requeue(runtime, written, before, request)
    return written, model


async def _attempt(
    runtime: NotificationRuntime,
    model: NotificationEvent,
    state: policy.DeliveryState,
    log: Any,
    stopped: StopSignal,
) -> None:
    """Resolve the event's channel, deliver the message, and record and announce the outcome."""
    api = runtime.api
    namespace = model.metadata.namespace or ""
    channel_name = model.spec.channel_ref.name
    # The channel as its watch delivered it: no read per attempt (a channel not seen yet is read).
    known = runtime.channels.get(ChannelKey(namespace, channel_name))
    resolution = await channel_kube.resolve_channel(
        api, namespace, channel_name, egress=runtime.egress, known=known
    )

    if not resolution.found:
        now = utc_now()
        closed = policy.on_channel_missing(state, now, channel=channel_name)
        written, _ = await write_event_status(runtime, model, new_status(runtime, model, closed, now))
        count_skipped_attempt()
        log.warning("NotificationChannel %r not found; closed without delivery", channel_name)
        await announce.announce_channel_missing(api, written, channel_name)
        return

    channel_type = channel_type_label(resolution.model.spec if resolution.model else None)
    if resolution.channel is None:
        problem = resolution.problems[0] if resolution.problems else "not usable"
        result = DeliveryResult.failure(
            timedelta(0),
            policy.DeliveryError(policy.ErrorKind.CONFIGURATION, f"channel {channel_name!r}: {problem}"),
        )
    else:
        delivered = await deliver_unless_stopping(
            runtime.notifier.deliver(resolution.channel, build_message(model)), stopped
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
    count_attempt(channel_type, result)

    now = utc_now()
    uid = str(model.metadata.uid)
    # Kept until the status write succeeds: a write that fails (the API server is
    # unreachable) leaves it for the next visit to record instead of sending again.
    runtime.keep_outcome(uid, state, result, now)
    after = _after_attempt(runtime, state, result, now)
    written, written_model = await write_event_status(runtime, model, new_status(runtime, model, after, now))
    runtime.forget_outcome(uid)
    await announce.announce_outcome(written, written_model, after, runtime, log)
    # A destination refused on connect (a name resolving to a refused address) makes the channel not Ready.
    problems = (*resolution.problems, *((result.egress_refusal,) if result.egress_refusal else ()))
    if resolution.model is not None:
        await refresh_channel(api, resolution.model, problems, log)
    elif resolution.body is not None:
        await refresh_unparsable_channel(api, resolution.body, resolution.problems, log)


async def deliver_unless_stopping(
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
    """The delivery state once ``result`` is known, under the runtime's retry policy."""
    if result.ok:
        return policy.on_success(state, now, result.duration, detail=result.detail)
    assert result.error is not None
    return policy.on_failure(state, result.error, now, runtime.policy, duration=result.duration)


async def _record_kept_outcome(
    runtime: NotificationRuntime,
    model: NotificationEvent,
    state: policy.DeliveryState,
    kept: UnrecordedOutcome,
    log: Any,
) -> None:
    """Write the outcome of an attempt made while the status could not be written, as of its time."""
    uid = str(model.metadata.uid)
    after = _after_attempt(runtime, state, kept.result, kept.at)
    written, written_model = await write_event_status(
        runtime, model, new_status(runtime, model, after, utc_now())
    )
    runtime.forget_outcome(uid)
    log.info(
        "recorded attempt %d, made while the API server was unreachable, without sending again", kept.attempt
    )
    await announce.announce_outcome(written, written_model, after, runtime, log)
