"""Reading and writing the Secrets that hold certificates and CA key pairs.

Certificate Secrets are written with server-side apply under the field
manager ``certctl-operator``: the operator owns ``type``, the three data keys
and its labels and annotations, a label or annotation dropped from
``secretTemplate`` disappears from the Secret, and whatever other tools add
to the Secret is left alone. An apply carries the resourceVersion the
operator read, so a Secret changed in between is never overwritten blindly.

A Secret that does not exist yet is created with a plain create, never by an
apply (which would replace a Secret created meanwhile by someone else): of
several writers racing for one name exactly one succeeds, the others get
409 AlreadyExists. The fields the create set are then handed to the apply
manager, so later applies own them as if an apply had created the Secret.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.policy.issuers import SecretSnapshot

FIELD_MANAGER = "certctl-operator"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


def _decode(value: object) -> bytes:
    if not isinstance(value, str):
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def snapshot(body: Mapping[str, Any]) -> SecretSnapshot:
    """A :class:`SecretSnapshot` of a Secret as the API returns it (camelCase dict)."""
    metadata = body.get("metadata") or {}
    return SecretSnapshot(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        type=body.get("type"),
        labels=dict(metadata.get("labels") or {}),
        annotations=dict(metadata.get("annotations") or {}),
        data={key: _decode(value) for key, value in (body.get("data") or {}).items()},
        resource_version=metadata.get("resourceVersion"),
        uid=metadata.get("uid"),
    )


async def read_secret(api: Any, namespace: str, name: str) -> SecretSnapshot | None:
    """The Secret ``namespace/name``, or None when it does not exist."""
    try:
        secret = await client.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return snapshot(api.sanitize_for_serialization(secret))


def _secret_body(
    namespace: str,
    name: str,
    *,
    secret_type: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    data: Mapping[str, bytes],
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": dict(annotations),
        },
        "type": secret_type,
        "data": {key: base64.b64encode(value).decode("ascii") for key, value in data.items()},
    }


async def create_secret(
    api: Any,
    namespace: str,
    name: str,
    *,
    secret_type: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    data: Mapping[str, bytes],
) -> SecretSnapshot:
    """Create the Secret, which must not exist; fails with 409 when any Secret of that name does.

    Returns what the API server stored.
    """
    body = _secret_body(
        namespace, name, secret_type=secret_type, labels=labels, annotations=annotations, data=data
    )
    core: Any = client.CoreV1Api(api)
    created = api.sanitize_for_serialization(
        await core.create_namespaced_secret(namespace, body, field_manager=FIELD_MANAGER)
    )
    metadata = created.get("metadata") or {}
    entries = [dict(entry) for entry in metadata.get("managedFields") or []]
    ours = [e for e in entries if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Update"]
    if not ours:
        return snapshot(created)
    # A create is recorded as an "Update" of the field manager; applies are a manager of their own, which
    # would then share the fields and never remove a label or annotation dropped from secretTemplate.
    for entry in ours:
        entry["operation"] = "Apply"
        entry.pop("time", None)
    handover = {"metadata": {"resourceVersion": metadata.get("resourceVersion"), "managedFields": entries}}
    try:
        result = await core.patch_namespaced_secret(
            name, namespace, handover, field_manager=FIELD_MANAGER, _content_type=MERGE_PATCH
        )
    except ApiException as error:
        if error.status in (404, 409):
            # Changed or deleted meanwhile: the Secret as created is what this call did.
            return snapshot(created)
        raise
    return snapshot(api.sanitize_for_serialization(result))


async def apply_secret(
    api: Any,
    namespace: str,
    name: str,
    *,
    secret_type: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    data: Mapping[str, bytes],
    resource_version: str | None,
) -> SecretSnapshot:
    """Create or update the Secret by server-side apply; returns what the API server stored.

    With ``resource_version`` the apply fails with 409 Conflict when the Secret
    changed since it was read; without it the Secret is created or replaced, so
    a Secret not read first is written with :func:`create_secret` instead.
    """
    body = _secret_body(
        namespace, name, secret_type=secret_type, labels=labels, annotations=annotations, data=data
    )
    if resource_version is not None:
        body["metadata"]["resourceVersion"] = resource_version
    core: Any = client.CoreV1Api(api)
    result = await core.patch_namespaced_secret(
        name, namespace, body, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY_PATCH
    )
    return snapshot(api.sanitize_for_serialization(result))


async def delete_secret(api: Any, namespace: str, name: str, *, uid: str | None = None) -> bool:
    """Delete the Secret (only the one with ``uid`` when given); False when it was already gone."""
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid) if uid else None)
    try:
        await client.CoreV1Api(api).delete_namespaced_secret(name, namespace, body=options)
    except ApiException as error:
        if error.status in (404, 409):
            return False
        raise
    return True


__all__ = ["FIELD_MANAGER", "apply_secret", "create_secret", "delete_secret", "read_secret", "snapshot"]
