"""Reads and writes of NotificationEvents and NotificationChannels besides Kopf's own.

Status is written through the status subresource with JSON merge patches
(fields set to None are removed), labels through the object itself: the API
server ignores metadata sent to ``/status`` and status sent to the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.api.notification import NotificationChannel, NotificationEvent

MERGE_PATCH = "application/merge-patch+json"

EVENTS = NotificationEvent.PLURAL
CHANNELS = NotificationChannel.PLURAL


def _custom(api: Any) -> Any:
    # Typed loosely: the client's stubs omit ``_content_type``, which merge patches need.
    return client.CustomObjectsApi(api)


async def get_object(api: Any, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The object as stored now (a quorum read), or None when it does not exist."""
    try:
        body: dict[str, Any] = await _custom(api).get_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, plural, name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return body


async def patch_status(
    api: Any, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge-patch ``.status`` and return the object as written."""
    body: dict[str, Any] = await _custom(api).patch_namespaced_custom_object_status(
        API_GROUP,
        API_VERSION,
        namespace,
        plural,
        name,
        {"status": dict(patch)},
        _content_type=MERGE_PATCH,
    )
    return body


async def patch_labels(
    api: Any, plural: str, namespace: str, name: str, labels: Mapping[str, str | None]
) -> dict[str, Any] | None:
    """Merge-patch ``metadata.labels`` (None removes a label); None when the object is gone."""
    try:
        body: dict[str, Any] = await _custom(api).patch_namespaced_custom_object(
            API_GROUP,
            API_VERSION,
            namespace,
            plural,
            name,
            {"metadata": {"labels": dict(labels)}},
            _content_type=MERGE_PATCH,
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return body


async def delete_if_unchanged(
    api: Any, plural: str, namespace: str, name: str, uid: str, resource_version: str
) -> bool:
    """Delete the object only if it is still exactly the version seen; True when deleted."""
    options = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid=uid, resource_version=resource_version)
    )
    try:
        await _custom(api).delete_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, plural, name, body=options
        )
    except ApiException as error:
        if error.status in (404, 409):
            return False
        raise
    return True
