"""Reading and writing certctl objects: the one object-access API of the operator.

Every function takes the object's place as keyword-only ``namespace=`` and
``name=`` (``namespace=None`` for the cluster-scoped ClusterIssuer), so a
call site cannot swap them. Writes are JSON merge patches (a field set to
None is removed); a write given the ``resource_version`` it was computed
from fails with 409 Conflict instead of undoing someone else's change, and
the caller reads again. Status goes through the status subresource,
metadata through the object itself: the API server ignores metadata sent to
``/status`` and status sent to the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator import API_GROUP, API_VERSION

MERGE_PATCH = "application/merge-patch+json"


def _custom(api: Any) -> Any:
    # Typed loosely: the client's stubs omit ``_content_type``, which merge patches need.
    return client.CustomObjectsApi(api)


async def get_object(api: Any, plural: str, *, namespace: str | None, name: str) -> dict[str, Any] | None:
    """The object as stored now (a quorum read), or None when it does not exist."""
    objects = _custom(api)
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


async def _patch(
    api: Any, plural: str, namespace: str | None, name: str, body: Mapping[str, Any], *, status: bool
) -> dict[str, Any]:
    objects = _custom(api)
    if namespace:
        call = (
            objects.patch_namespaced_custom_object_status
            if status
            else objects.patch_namespaced_custom_object
        )
        result = await call(
            API_GROUP, API_VERSION, namespace, plural, name, dict(body), _content_type=MERGE_PATCH
        )
    else:
        call = objects.patch_cluster_custom_object_status if status else objects.patch_cluster_custom_object
        result = await call(API_GROUP, API_VERSION, plural, name, dict(body), _content_type=MERGE_PATCH)
    return dict(result)


async def patch_status(
    api: Any,
    plural: str,
    *,
    namespace: str | None,
    name: str,
    status: Mapping[str, Any],
    resource_version: str | None = None,
) -> dict[str, Any]:
    """Merge-patch ``.status``; with ``resource_version``, 409 when the object changed since."""
    body: dict[str, Any] = {"status": dict(status)}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    return await _patch(api, plural, namespace, name, body, status=True)


async def patch_metadata(
    api: Any,
    plural: str,
    *,
    namespace: str | None,
    name: str,
    metadata: Mapping[str, Any],
    resource_version: str | None = None,
) -> dict[str, Any]:
    """Merge-patch ``.metadata`` (finalizers, annotations) with the same optimistic concurrency."""
    patch: dict[str, Any] = dict(metadata)
    if resource_version:
        patch["resourceVersion"] = resource_version
    return await _patch(api, plural, namespace, name, {"metadata": patch}, status=False)


async def patch_labels(
    api: Any, plural: str, *, namespace: str | None, name: str, labels: Mapping[str, str | None]
) -> dict[str, Any] | None:
    """Merge-patch ``metadata.labels`` (None removes a label); None when the object is gone."""
    try:
        return await _patch(
            api, plural, namespace, name, {"metadata": {"labels": dict(labels)}}, status=False
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise


async def delete_if_unchanged(
    api: Any, plural: str, *, namespace: str, name: str, uid: str, resource_version: str
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


__all__ = ["delete_if_unchanged", "get_object", "patch_labels", "patch_metadata", "patch_status"]
