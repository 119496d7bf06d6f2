"""NotificationChannel checks: read the channel and its Secrets, write its type and Ready condition.

A channel is checked when it is first seen or changed, when a Secret it
references changes, after each delivery through it (a destination refused on
connect makes it not Ready), and again every ``notificationRetryInterval``
while it is not Ready. What is wrong with a channel is found by
:mod:`certctl_operator.notify.channel_config` (read through
:mod:`certctl_operator.kube.channels`); the status it leads to is built by
:mod:`certctl_operator.status.channels`. A write that flips Ready is
announced by :mod:`.announce`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from certctl_operator.api.common import status_patch
from certctl_operator.api.notification import NotificationChannel, NotificationChannelStatus
from certctl_operator.controllers.notifications.announce import announce_channel_readiness
from certctl_operator.controllers.notifications.logs import describe_error, logger
from certctl_operator.controllers.notifications.runtime import ChannelKey, NotificationRuntime
from certctl_operator.kube import channels as channel_kube
from certctl_operator.kube.objects import patch_status
from certctl_operator.policy.clock import utc_now
from certctl_operator.status.channels import channel_status, unparsable_channel_status


async def refresh_channel(api: Any, model: NotificationChannel, problems: tuple[str, ...], log: Any) -> None:
    """Write the channel's type and Ready condition when they changed; post an Event on a Ready flip."""
    now = utc_now()
    after = channel_status(model.status, model.spec, problems, now=now, generation=model.metadata.generation)
    meta = model.metadata
    await _write_channel_status(api, meta.namespace or "", meta.name or "", model.status, after, log)


async def refresh_unparsable_channel(
    api: Any, body: Mapping[str, Any], problems: tuple[str, ...], log: Any
) -> None:
    """Ready=False (InvalidConfiguration) for a stored channel the schema's rules now refuse."""
    before, after = unparsable_channel_status(body, problems, now=utc_now())
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
    """Merge-patch what changed from ``before`` to ``after``; a failed write is logged, not raised."""
    patch = status_patch(before, after)
    if not patch:
        return
    try:
        written = await patch_status(
            api, NotificationChannel.PLURAL, namespace=namespace, name=name, status=patch
        )
    except asyncio.CancelledError:
        raise
    except Exception as error:
        log.warning("could not update NotificationChannel %s status: %s", name, describe_error(error))
        return
    await announce_channel_readiness(api, written, before, after)


async def check_channel(runtime: NotificationRuntime, key: ChannelKey) -> None:
    """Check the channel's Secrets and settings; again an interval later while it is not Ready."""
    channel_log = logging.LoggerAdapter(logger, runtime.log_extra_of(key))
    try:
        resolution = await channel_kube.resolve_channel(
            runtime.api, key.namespace, key.name, egress=runtime.egress, resolve_names=True
        )
        if resolution.model is not None:
            await refresh_channel(runtime.api, resolution.model, resolution.problems, channel_log)
        elif resolution.body is not None:
            await refresh_unparsable_channel(runtime.api, resolution.body, resolution.problems, channel_log)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        channel_log.error("NotificationChannel check failed, will retry: %s", describe_error(error))
        runtime.queue.schedule(key, utc_now() + runtime.interval)
        return
    if resolution.body is not None and (resolution.channel is None or resolution.problems):
        runtime.queue.schedule(key, utc_now() + runtime.interval)
