"""Writing a ManagedCertificate's status back, and ending every reconcile the same way.

A status write carries the resourceVersion of the body it was computed from;
a write that lost a race raises :class:`Conflict`, and the next reconcile
starts over from fresh reads. :func:`finish` is the common end of every path:
write the status, refresh the metrics, schedule the next action.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.api import ManagedCertificate, ManagedCertificateStatus, status_patch
from certctl_operator.controllers.certificates.metrics import update_metrics
from certctl_operator.controllers.issuance import IssuanceRuntime, Key
from certctl_operator.kube.objects import patch_status
from certctl_operator.policy.issuance import next_action_time
from certctl_operator.workqueue import Requeue

PLURAL = "managedcertificates"


class Conflict(Requeue):
    """An object changed under a write; the reconcile starts over from fresh reads."""


async def finish(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    status: ManagedCertificateStatus,
) -> None:
    """Write ``status`` when it changed, refresh the metrics, schedule the next action."""
    await write_status(rt, key, body, cert, status)
    after = cert.model_copy(update={"status": status})
    update_metrics(rt, key, after)
    rt.queue.schedule(key, next_action_time(after, rt.now()))


async def write_status(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    status: ManagedCertificateStatus,
) -> None:
    patch = status_patch(cert.status, status)
    if not patch:
        return
    try:
        result = await patch_status(
            rt.api,
            PLURAL,
            namespace=key.namespace,
            name=key.name,
            status=patch,
            resource_version=body["metadata"].get("resourceVersion"),
        )
    except ApiException as error:
        if error.status == 409:
            raise Conflict from None
        raise
    rt.own_writes[key] = result["metadata"]["resourceVersion"]
    rt.certificate_written(key, body, result)


__all__ = ["PLURAL", "Conflict", "finish", "write_status"]
