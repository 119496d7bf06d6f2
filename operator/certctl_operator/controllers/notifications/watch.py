"""The Kopf watch-event handlers that feed the notification work queue.

``notification-bookkeeping`` sees every NotificationEvent watch event: it
keeps the small per-event book and its gauges, schedules the event's next
visit from its status, and keeps the dead-letter label in step with the
phase. ``channel-secret-watch`` sees every NotificationChannel watch event:
it keeps the channel's body for deliveries, schedules the channel's check
while it is not Ready, and watches the Secrets it references so that a
change to one checks it again at once.

These are ``@kopf.on.event`` handlers only, so Kopf keeps no progress or
diff-base annotation of its own on these objects, and an unchanged object
costs no write.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.api.notification import NotificationChannel, NotificationEvent
from certctl_operator.controllers.notifications.announce import forget_channel
from certctl_operator.controllers.notifications.record import sync_phase_label
from certctl_operator.controllers.notifications.runtime import ChannelKey, context_of, runtime_of
from certctl_operator.controllers.notifications.schedule import schedule_channel, schedule_event
from certctl_operator.kube.secret_watch import secret_watcher
from certctl_operator.notify.channel_config import secret_names
from certctl_operator.policy.clock import utc_now

_ROUTINE_HANDLERS = ("notification-bookkeeping", "channel-secret-watch")
"""The ids of the handlers below, which run on every watch event."""


class QuietRoutineSuccess(logging.Filter):
    """Drop Kopf's "... succeeded." line for handlers that run on every watch event.

    What they did is logged by the handlers themselves; failures still pass.
    """

    _lines = frozenset(f"Handler {handler_id!r} succeeded." for handler_id in _ROUTINE_HANDLERS)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or record.getMessage() not in self._lines


@kopf.on.event(API_GROUP, API_VERSION, NotificationEvent.PLURAL, id="notification-bookkeeping")
async def notification_bookkeeping(
    type: str | None, body: kopf.Body, memo: Any, logger: Any, **_: Any
) -> None:
    """The book and its gauges, the schedule of the event, and the dead-letter label."""
    runtime = runtime_of(memo)
    uid = str(body.metadata.get("uid") or "")
    first_seen = uid not in runtime.events
    tracked = runtime.observe(type, body)
    if tracked is None:
        if uid:
            runtime.queue.forget(uid)
        return
    own = runtime.is_own_write(uid, tracked.resource_version)
    schedule_event(runtime, body, own_write=own, now=utc_now(), first_seen=first_seen)
    if runtime.api is not None:
        await sync_phase_label(runtime.api, body, logger)


@kopf.on.event(API_GROUP, API_VERSION, NotificationChannel.PLURAL, id="channel-secret-watch")
async def channel_secret_watch(type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
    """Check a channel that is not Ready, and again at once when a Secret it references changes."""
    context = context_of(memo)
    runtime = runtime_of(memo)
    key = ChannelKey(body.metadata.namespace or "", body.metadata.name or "")
    gone = type == "DELETED" or bool(body.metadata.get("deletionTimestamp"))
    try:
        names = [] if gone else secret_names(NotificationChannel.from_body(dict(body)).spec)
    except ValueError:
        names = []
    if gone:
        runtime.channel_seen(key, None)
        runtime.queue.forget(key)
        forget_channel(str(body.metadata.get("uid")))
    else:
        runtime.channel_seen(key, dict(body))
        schedule_channel(runtime, key, body, utc_now())

    async def recheck() -> None:
        runtime.queue.add(key)

    secret_watcher(context).watch(
        (NotificationChannel.PLURAL, key.namespace, key.name), [(key.namespace, n) for n in names], recheck
    )
