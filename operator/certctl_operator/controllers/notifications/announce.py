"""Kubernetes Events about NotificationEvents and NotificationChannels, posted on transitions only.

An event's outcome (Delivered, DeliveryFailed on the first failure only,
NotificationDeadLettered), its requeue, a missing channel, and a channel's
Ready condition flipping (ChannelReady, ChannelNotReady). They are posted by
the operator itself through :func:`certctl_operator.kube.events.post_event`
rather than through Kopf, whose posting works only inside its per-object
handler tasks, not in the work queue's workers. An Event that cannot be
posted is logged and does not stop the work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from certctl_operator.api.common import ConditionStatus, find_condition
from certctl_operator.api.metadata_keys import ANNOTATION_REQUEUE
from certctl_operator.api.notification import DeliveryPhase, NotificationChannelStatus, NotificationEvent
from certctl_operator.controllers.notifications.logs import describe_error, logger
from certctl_operator.controllers.notifications.runtime import NotificationRuntime
from certctl_operator.kube.events import NORMAL, WARNING, post_event
from certctl_operator.logs import object_extra
from certctl_operator.policy import notification as policy

EVENT_DELIVERED = "Delivered"
EVENT_DELIVERY_FAILED = "DeliveryFailed"
EVENT_DEAD_LETTERED = "NotificationDeadLettered"
EVENT_CHANNEL_NOT_FOUND = "ChannelNotFound"
EVENT_REQUEUED = "NotificationRequeued"
EVENT_CHANNEL_READY = "ChannelReady"
EVENT_CHANNEL_NOT_READY = "ChannelNotReady"

_announced_channel_ready: dict[str, ConditionStatus] = {}
"""The Ready status last announced by an Event, by channel uid."""


async def _post(api: Any, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
    """Post a Kubernetes Event about ``obj`` (as written); one that cannot be posted is only logged."""
    try:
        await post_event(api, obj, event_type=event_type, reason=reason, message=message)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        logger.warning(
            "could not post the %s Event: %s", reason, describe_error(error), extra=object_extra(obj)
        )


async def announce_outcome(
    written: dict[str, Any],
    model: NotificationEvent,
    state: policy.DeliveryState,
    runtime: NotificationRuntime,
    log: Any,
) -> None:
    """Post the Kubernetes Event of this transition and log it."""
    delivered, dead_letter = policy.delivery_conditions(state, runtime.policy)
    if state.phase is DeliveryPhase.SENT:
        log.info("notification %s", delivered.message)
        await _post(runtime.api, written, NORMAL, EVENT_DELIVERED, delivered.message)
    elif state.phase is DeliveryPhase.DEAD:
        log.warning("notification dead-lettered: %s", dead_letter.message)
        await _post(runtime.api, written, WARNING, EVENT_DEAD_LETTERED, dead_letter.message)
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
            await _post(runtime.api, written, WARNING, EVENT_DELIVERY_FAILED, message)


async def announce_requeue(
    runtime: NotificationRuntime, written: dict[str, Any], before: policy.DeliveryState, request: str
) -> None:
    """The event was requeued by its annotation: what it was, and that its retry budget is new."""
    await _post(
        runtime.api,
        written,
        NORMAL,
        EVENT_REQUEUED,
        (
            f"requeued by {ANNOTATION_REQUEUE}={request}: was {before.phase.value} "
            f"after {before.retry_count} failed attempt(s); retry budget reset"
        ),
    )


async def announce_channel_missing(api: Any, written: dict[str, Any], channel_name: str) -> None:
    """The event's channel does not exist: it was closed without delivery."""
    await _post(
        api,
        written,
        WARNING,
        EVENT_CHANNEL_NOT_FOUND,
        f"NotificationChannel {channel_name!r} not found; closed without delivery",
    )


async def announce_channel_readiness(
    api: Any,
    written: Mapping[str, Any],
    before: NotificationChannelStatus,
    after: NotificationChannelStatus,
) -> None:
    """ChannelReady or ChannelNotReady when the write of ``after`` flipped the channel's Ready condition."""
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
        await _post(api, written, NORMAL, EVENT_CHANNEL_READY, now_ready.message)
    else:
        await _post(api, written, WARNING, EVENT_CHANNEL_NOT_READY, now_ready.message)


def forget_channel(uid: str) -> None:
    """Drop what was announced about a channel that is gone."""
    _announced_channel_ready.pop(uid, None)
