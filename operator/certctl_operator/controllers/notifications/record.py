"""What the controller writes onto a NotificationEvent: its status, and the dead-letter label.

The status (outcome, next schedule, conditions, attempt history) is built
by :mod:`certctl_operator.status.notifications` and written in one merge
patch through the status subresource. The ``certctl.io/phase=dead`` label is
put in step with the phase by the watch-event handler only, after it has
counted the new phase, so a visible label implies up-to-date gauges.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from certctl_operator.api.common import status_patch
from certctl_operator.api.metadata_keys import LABEL_PHASE
from certctl_operator.api.notification import DeliveryPhase, NotificationEvent, NotificationEventStatus
from certctl_operator.controllers.notifications.logs import describe_error
from certctl_operator.controllers.notifications.runtime import NotificationRuntime
from certctl_operator.kube.objects import patch_labels, patch_status
from certctl_operator.policy import notification as policy
from certctl_operator.status import notifications as event_status


async def write_event_status(
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
    written = await patch_status(
        runtime.api, NotificationEvent.PLURAL, namespace=namespace, name=name, status=patch
    )
    if visit_goes_on:
        runtime.remember_write(written)
    return written, NotificationEvent.from_body(written)


def new_status(
    runtime: NotificationRuntime,
    model: NotificationEvent,
    state: policy.DeliveryState,
    now: datetime,
    handled_requeue: str | None = None,
) -> NotificationEventStatus:
    """The status recording ``state`` on ``model``, under the runtime's retry policy."""
    return event_status.status_from_state(
        model.status,
        state,
        now=now,
        policy_=runtime.policy,
        generation=model.metadata.generation,
        handled_requeue=handled_requeue,
    )


LABEL_WRITE_DELAYS = (0.5, 1.0, 2.0)
"""Pauses between the tries of a dead-letter label write (the watch event is not redelivered)."""


async def sync_phase_label(api: Any, body: Mapping[str, Any], log: Any) -> None:
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
            await patch_labels(
                api,
                NotificationEvent.PLURAL,
                namespace=str(meta.get("namespace")),
                name=str(meta.get("name")),
                labels=patch,
            )
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if delay is None:
                log.error("could not update the %s label: %s", LABEL_PHASE, describe_error(error))
                return
            log.warning("retrying the %s label: %s", LABEL_PHASE, describe_error(error))
            await asyncio.sleep(delay)
