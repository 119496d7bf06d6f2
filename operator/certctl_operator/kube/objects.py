"""Reading certctl objects and writing their status and metadata with optimistic concurrency.

Every write carries the resourceVersion the operator read: a write based on a
stale read fails with 409 Conflict instead of undoing someone else's change,
and the caller reads again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator import API_GROUP, API_VERSION

MERGE_PATCH = "application/merge-patch+json"


async def get_object(api: Any, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    """The object, or None when it does not exist. ``namespace=None`` for cluster-scoped kinds."""
    # Typed loosely: the client's stubs do not know the _content_type option.
    objects: Any = client.CustomObjectsApi(api)
    try:
        if namespace:
            result = await objects.get_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, plural, name
            )
        else:
            result = await objects.get_cluster_custom_object(API_GROUP, API_VERSION, plural, name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return dict(result)


async def patch_status(
    api: Any,
    plural: str,
    name: str,
    namespace: str | None,
    status: Mapping[str, Any],
    resource_version: str | None,
) -> dict[str, Any]:
    """Merge-patch ``.status``; fails with 409 when the object changed since ``resource_version``."""
    body: dict[str, Any] = {"status": dict(status)}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    # Typed loosely: the client's stubs do not know the _content_type option.
    objects: Any = client.CustomObjectsApi(api)
    if namespace:
        result = await objects.patch_namespaced_custom_object_status(
            API_GROUP, API_VERSION, namespace, plural, name, body, _content_type=MERGE_PATCH
        )
    else:
        result = await objects.patch_cluster_custom_object_status(
            API_GROUP, API_VERSION, plural, name, body, _content_type=MERGE_PATCH
        )
    return dict(result)


async def patch_metadata(
    api: Any,
    plural: str,
    name: str,
    namespace: str | None,
    metadata: Mapping[str, Any],
    resource_version: str | None,
) -> dict[str, Any]:
    """Merge-patch ``.metadata`` (finalizers, for instance) with the same optimistic concurrency."""
    patch: dict[str, Any] = dict(metadata)
    if resource_version:
        patch["resourceVersion"] = resource_version
    # Typed loosely: the client's stubs do not know the _content_type option.
    objects: Any = client.CustomObjectsApi(api)
    if namespace:
        result = await objects.patch_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, plural, name, {"metadata": patch}, _content_type=MERGE_PATCH
        )
    else:
        result = await objects.patch_cluster_custom_object(
            API_GROUP, API_VERSION, plural, name, {"metadata": patch}, _content_type=MERGE_PATCH
        )
    return dict(result)


__all__ = ["get_object", "patch_metadata", "patch_status"]
