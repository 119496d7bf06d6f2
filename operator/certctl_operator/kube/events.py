"""Kubernetes Events about certctl objects, posted explicitly and on transitions only.

An Event given a ``name`` is created at most once: posting it again (a retry,
or the same step repeated after a restart) finds it there and does nothing.
That makes announcements such as "revision 3 issued" exactly-once even when
the operator is killed half-way through.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.kube.client import json_response
from certctl_operator.policy.clock import format_rfc3339, utc_now
from certctl_operator.policy.renewal import object_name

logger = logging.getLogger("certctl.events")

COMPONENT = "certctl-operator"
MESSAGE_LIMIT = 1024
CLUSTER_SCOPED_EVENT_NAMESPACE = "default"
"""Events about cluster-scoped objects live here.

For an object without a namespace the API server accepts a core/v1 Event only
in ``default``. ``kubectl describe clusterissuer`` lists Events of every
namespace by the object's kind, name, uid and empty namespace, so it shows them.
"""

NORMAL = "Normal"
WARNING = "Warning"

_INSTANCE = f"{socket.gethostname()}-{os.getpid()}"


def event_name(object_name_: str, suffix: str | None = None) -> str:
    """A deterministic name (with ``suffix``) or a unique one, like client-go's ``<name>.<hex time>``."""
    tail = suffix if suffix is not None else f"{time.time_ns():x}"
    return object_name(f"{object_name_}.{tail}")


async def post_event(
    api: Any,
    obj: Mapping[str, Any],
    *,
    event_type: str,
    reason: str,
    message: str,
    name: str | None = None,
) -> bool:
    """Post an Event about ``obj`` (a Kubernetes object body); False when ``name`` already exists."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace") or CLUSTER_SCOPED_EVENT_NAMESPACE
    now = format_rfc3339(utc_now())
    involved = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
    }
    if metadata.get("namespace"):
        involved["namespace"] = metadata["namespace"]
    body: Any = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name or event_name(str(metadata.get("name"))), "namespace": namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": message[:MESSAGE_LIMIT],
        "type": event_type,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": _INSTANCE,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await json_response(client.CoreV1Api(api).create_namespaced_event, namespace, body)
    except ApiException as error:
        if error.status == 409 and name is not None:
            return False
        raise
    return True


__all__ = ["NORMAL", "WARNING", "event_name", "post_event"]
