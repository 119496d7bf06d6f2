"""When the work queue comes back to an event or a channel, from the body of a watch event.

An event is due at once when it is new, Pending or requeued, at
``status.nextRetryAt`` when it Failed, when its retention has passed once it
is Sent (it is deleted then), and never when it is Dead. A channel is due at
once when it was never checked for its generation, and within one interval
while it is not Ready. Retries found overdue after a restart, and re-checks
of channels, are spread over one interval so a restart does not make them
all at once.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from certctl_operator.api.common import ConditionStatus
from certctl_operator.api.notification import DeliveryPhase
from certctl_operator.controllers.notifications.runtime import ChannelKey, NotificationRuntime
from certctl_operator.status import notifications as event_status


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
