"""Start and stop of the notification controller: its runtime, its own API client and the HTTP pools.

The runtime starts with the operator, which with leader election is only
while it holds the Lease. On stop, no new attempt starts; attempts under way
get their grace (:data:`~.deliver.DELIVERY_STOP_GRACE`) and their outcomes
:data:`STOP_RECORD_GRACE` more to be written, and the runtime's own API
client closes only after that, since Kopf's clean-up handlers run one after
the other and the operator's client may already be closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from certctl_operator.controllers.notifications import deliver
from certctl_operator.controllers.notifications.channels import check_channel
from certctl_operator.controllers.notifications.runtime import (
    ChannelKey,
    NotificationRuntime,
    WorkKey,
    context_of,
)
from certctl_operator.controllers.notifications.watch import QuietRoutineSuccess
from certctl_operator.controllers.pausing import STOP_POLL_SECONDS
from certctl_operator.kube.client import create_api_client
from certctl_operator.notify.senders import HttpClientPool, Notifier
from certctl_operator.policy import notification as policy

STOP_RECORD_GRACE = 5.0
"""Seconds, beyond the delivery grace, that a stopping operator waits for outcomes to be written."""

_QUIET = QuietRoutineSuccess()


async def _process_key(runtime: NotificationRuntime, key: WorkKey) -> None:
    """What a worker does with a due key: check a channel, or visit an event."""
    if isinstance(key, ChannelKey):
        await check_channel(runtime, key)
    else:
        await deliver.visit_event(runtime, key)


async def _stop_runtime(runtime: NotificationRuntime) -> None:
    """Start nothing new, let the attempts under way finish (within the grace), then stop."""
    runtime.stopping.set()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(deliver.DELIVERY_STOP_GRACE + STOP_POLL_SECONDS + STOP_RECORD_GRACE):
            await runtime.queue.wait_idle()
    await runtime.queue.stop()


@kopf.on.startup(id="notifications-startup")
async def start_notifications(memo: Any, **_: Any) -> None:
    context = context_of(memo)
    logging.getLogger("kopf.objects").addFilter(_QUIET)
    egress = context.settings.egress_policy()
    pool = HttpClientPool(egress=egress)
    context.http_pool = pool
    runtime = NotificationRuntime(
        settings=context.settings,
        pool=pool,
        notifier=Notifier(pool, egress=egress),
        policy=policy.RetryPolicy.from_settings(context.settings),
        process=_process_key,
        egress=egress,
        # Cleanup handlers run one after the other and the operator's client may close before
        # this runtime's: deliveries answered during the shutdown must still be recorded.
        api=await create_api_client(),
    )
    runtime.update_gauges()
    context.notification_runtime = runtime
    runtime.queue.start()


@kopf.on.cleanup(id="notifications-cleanup")
async def stop_notifications(memo: Any, **_: Any) -> None:
    context = context_of(memo)
    runtime, context.notification_runtime = context.notification_runtime, None
    if runtime is not None:
        await _stop_runtime(runtime)
        if runtime.api is not None:
            await runtime.api.close()
    if context.http_pool is not None:
        await context.http_pool.aclose()
        context.http_pool = None
    logging.getLogger("kopf.objects").removeFilter(_QUIET)
