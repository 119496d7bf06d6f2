"""Create NotificationEvents for certificate happenings, exactly once each.

Names are deterministic (see ``policy.renewal.notification_event_name`` and
``expiry_event_name``): creating an event that already exists is a no-op, so
a handler that runs twice (a retry, a restart) never announces anything twice,
and a delivery that is still retrying is never suppressed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.api.notification import NotificationEvent, NotificationEventSpec
from certctl_operator.logs import object_extra

logger = logging.getLogger("certctl.notifications")


async def ensure_notification_event(
    api: Any,
    *,
    namespace: str,
    name: str,
    spec: NotificationEventSpec,
    labels: Mapping[str, str] | None = None,
    owner: Mapping[str, Any] | None = None,
) -> bool:
    """Create the NotificationEvent ``namespace/name`` unless it exists; True when created.

    ``labels`` tie the event to what caused it, so events can be listed and
    cleaned up by certificate, type and channel. ``owner`` (a Kubernetes object body)
    becomes a non-controlling owner reference, so a cluster with garbage
    collection removes the events together with their certificate.
    """
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
    if owner is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
            }
        ]
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "NotificationEvent",
        "metadata": metadata,
        "spec": spec.dump(),
    }
    try:
        created = await client.CustomObjectsApi(api).create_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, NotificationEvent.PLURAL, body
        )
    except ApiException as error:
        if error.status == 409:
            return False
        raise
    logger.info(
        "NotificationEvent %s/%s created (%s)",
        namespace,
        name,
        spec.type.value,
        extra=object_extra(created if isinstance(created, Mapping) else body),
    )
    return True
