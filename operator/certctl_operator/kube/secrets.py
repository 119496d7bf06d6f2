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
409 AlreadyExists. The API server records a create as an "Update" by the
field manager, and an apply manager sharing those fields would never remove
a label or annotation dropped from ``secretTemplate``. So before the first
apply to a Secret the operator created, the fields of that create are handed
to the apply manager (a guarded patch of ``managedFields``), and that apply
and all later ones own them as if an apply had created the Secret. The
handover waits for that first apply (a renewal, a repair) rather than
following the create: most Secrets are written once per renewal period,
and issuing one then costs one write, not two.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.kube.client import json_response
from certctl_operator.kube.compact import compact_strings, packed_json, unpacked_json
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


@dataclass(frozen=True)
class StoredSecret(SecretSnapshot):
    """A :class:`SecretSnapshot` that also knows whether the operator's create still owns fields.

    ``created_fields_packed`` is the Secret's whole ``managedFields`` as
    compressed compact JSON while the fields the operator's create set are not
    yet handed to its apply manager, else empty. Packed, not the parsed
    entries: every Secret the operator created keeps it until its first
    renewal, and as nested dicts it was half of each kept Secret's memory (as
    text, a quarter); it is unpacked only for the handover
    (:func:`created_fields`).
    """

    created_fields_packed: bytes = b""


def _ours_by_create(entry: Mapping[str, Any]) -> bool:
    return entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Update"


SHARED_DATA_KEYS = frozenset({"ca.crt"})
"""Data keys whose values repeat across Secrets: every Secret of one CA holds the same CA certificate."""

SHARED_VALUES_KEPT = 64
"""How many distinct values of :data:`SHARED_DATA_KEYS` are shared (CAs in use at once)."""

_shared_values: OrderedDict[bytes, bytes] = OrderedDict()


def _shared(value: bytes) -> bytes:
    """One object for equal values: ten thousand Secrets of one CA keep its certificate once."""
    kept = _shared_values.get(value)
    if kept is None:
        kept = _shared_values[value] = value
        if len(_shared_values) > SHARED_VALUES_KEPT:
            _shared_values.popitem(last=False)
    else:
        _shared_values.move_to_end(value)
    return kept


def _data(encoded: Mapping[str, Any]) -> dict[str, bytes]:
    data = {}
    for key, value in encoded.items():
        decoded = _decode(value)
        data[key] = _shared(decoded) if key in SHARED_DATA_KEYS and decoded else decoded
    return data


def snapshot(body: Mapping[str, Any]) -> StoredSecret:
    """A :class:`SecretSnapshot` of a Secret as the API returns it (camelCase dict)."""
    metadata = body.get("metadata") or {}
    managed = metadata.get("managedFields") or ()
    return StoredSecret(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        type=body.get("type"),
        labels=compact_strings(metadata.get("labels") or {}),
        annotations=compact_strings(metadata.get("annotations") or {}),
        data=_data(body.get("data") or {}),
        resource_version=metadata.get("resourceVersion"),
        uid=metadata.get("uid"),
        created_fields_packed=(
            packed_json(list(managed)) if any(_ours_by_create(entry) for entry in managed) else b""
        ),
    )


def created_fields(secret: SecretSnapshot | None) -> tuple[Mapping[str, Any], ...]:
    """The ``managedFields`` to hand over before applying to ``secret`` (empty: nothing to hand over)."""
    if not isinstance(secret, StoredSecret) or not secret.created_fields_packed:
        return ()
    return tuple(unpacked_json(secret.created_fields_packed))


def _merge_fields(into: dict[str, Any], more: Mapping[str, Any]) -> None:
    """Add the field set ``more`` (managedFields' fieldsV1 form) to ``into``."""
    for name, below in more.items():
        if isinstance(below, Mapping) and isinstance(into.get(name), dict):
            _merge_fields(into[name], below)
        elif isinstance(below, Mapping):
            into[name] = _copy_fields(below)
        else:
            into.setdefault(name, below)


def _copy_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: _copy_fields(below) if isinstance(below, Mapping) else below for name, below in fields.items()
    }


def handed_over(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``managedFields`` with the fields of the operator's create owned by its apply manager instead."""
    result = [dict(entry) for entry in entries if not _ours_by_create(entry)]
    applied = next(
        (e for e in result if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Apply"), None
    )
    for entry in entries:
        if not _ours_by_create(entry):
            continue
        if applied is None:
            applied = {key: value for key, value in entry.items() if key != "time"}
            applied["operation"] = "Apply"
            applied["fieldsV1"] = _copy_fields(entry.get("fieldsV1") or {})
            result.append(applied)
        else:
            fields = applied["fieldsV1"] = _copy_fields(applied.get("fieldsV1") or {})
            _merge_fields(fields, entry.get("fieldsV1") or {})
    return result


async def read_secret(api: Any, *, namespace: str, name: str) -> StoredSecret | None:
    """The Secret ``namespace/name``, or None when it does not exist."""
    try:
        secret = await json_response(client.CoreV1Api(api).read_namespaced_secret, name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return snapshot(secret)


LIST_PAGE = 500
"""Objects per page of a listing: a page's JSON is all that is held at once."""


async def list_json(
    call: Callable[..., Awaitable[Any]], *args: Any, limit: int = LIST_PAGE, **kwargs: Any
) -> AsyncIterator[tuple[dict[str, Any] | None, str]]:
    """Every object a list call returns, a page at a time, each with the list's resourceVersion.

    A list without objects yields ``(None, version)`` once, so that the
    caller learns where a watch may start.
    """
    token: str | None = None
    while True:
        options = {**kwargs, "limit": limit}
        if token:
            options["_continue"] = token
        page = await json_response(call, *args, **options)
        metadata = page.get("metadata") or {}
        version = str(metadata.get("resourceVersion") or "")
        items = page.get("items") or []
        if not items and not token:
            yield None, version
        for item in items:
            yield item, version
        token = metadata.get("continue")
        if not token:
            return


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
) -> StoredSecret:
    """Create the Secret, which must not exist; fails with 409 when any Secret of that name does.

    One write; returns what the API server stored. The fields it set stay the
    create's until the first :func:`apply_secret` hands them over.
    """
    body = _secret_body(
        namespace, name, secret_type=secret_type, labels=labels, annotations=annotations, data=data
    )
    core: Any = client.CoreV1Api(api)
    return snapshot(
        await json_response(core.create_namespaced_secret, namespace, body, field_manager=FIELD_MANAGER)
    )


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
    hand_over: Sequence[Mapping[str, Any]] = (),
) -> StoredSecret:
    """Create or update the Secret by server-side apply; returns what the API server stored.

    With ``resource_version`` the apply fails with 409 Conflict when the Secret
    changed since it was read; without it the Secret is created or replaced, so
    a Secret not read first is written with :func:`create_secret` instead.
    ``hand_over`` is the Secret's ``managedFields`` as read when the fields of
    the operator's create are still to be handed to the apply manager
    (:func:`created_fields`): that is done first, guarded the same way.
    """
    body = _secret_body(
        namespace, name, secret_type=secret_type, labels=labels, annotations=annotations, data=data
    )
    core: Any = client.CoreV1Api(api)
    if hand_over and resource_version is not None:
        handover = {
            "metadata": {"resourceVersion": resource_version, "managedFields": handed_over(hand_over)}
        }
        handed = await json_response(
            core.patch_namespaced_secret,
            name,
            namespace,
            handover,
            field_manager=FIELD_MANAGER,
            _content_type=MERGE_PATCH,
        )
        resource_version = handed["metadata"]["resourceVersion"]
    if resource_version is not None:
        body["metadata"]["resourceVersion"] = resource_version
    result = await json_response(
        core.patch_namespaced_secret,
        name,
        namespace,
        body,
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type=APPLY_PATCH,
    )
    return snapshot(result)


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


__all__ = [
    "FIELD_MANAGER",
    "StoredSecret",
    "apply_secret",
    "create_secret",
    "created_fields",
    "delete_secret",
    "handed_over",
    "list_json",
    "read_secret",
    "snapshot",
]
