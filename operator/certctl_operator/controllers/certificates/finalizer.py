"""The ManagedCertificate finalizer: held while ``deleteSecretOnDeletion`` is true, released after the Secret.

A certificate that asks for its Secret to go with it carries the finalizer;
when it is deleted, the Secret it wrote (and only that one) is deleted before
the finalizer is let go.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.api import ManagedCertificate
from certctl_operator.api.metadata_keys import (
    ANNOTATION_CERTIFICATE_NAME,
    FINALIZER_DELETE_SECRET,
)
from certctl_operator.controllers.certificates.writes import PLURAL, Conflict
from certctl_operator.controllers.issuance import IssuanceRuntime, Key
from certctl_operator.kube.objects import patch_metadata
from certctl_operator.kube.secrets import delete_secret, read_secret

logger = logging.getLogger("certctl.issuance")

FINALIZER = FINALIZER_DELETE_SECRET
"""Held only by certificates with ``deleteSecretOnDeletion: true``, until their Secret is deleted."""


async def sync_finalizer(
    rt: IssuanceRuntime, key: Key, body: dict[str, Any], cert: ManagedCertificate
) -> tuple[dict[str, Any], ManagedCertificate]:
    """Hold the finalizer exactly while ``deleteSecretOnDeletion`` is true."""
    finalizers = list(body["metadata"].get("finalizers") or [])
    wanted = cert.spec.delete_secret_on_deletion
    if wanted == (FINALIZER in finalizers):
        return body, cert
    updated = [*finalizers, FINALIZER] if wanted else [f for f in finalizers if f != FINALIZER]
    try:
        result = await patch_metadata(
            rt.api,
            PLURAL,
            namespace=key.namespace,
            name=key.name,
            metadata={"finalizers": updated},
            resource_version=body["metadata"]["resourceVersion"],
        )
    except ApiException as error:
        if error.status == 409:
            raise Conflict from None
        raise
    rt.own_writes[key] = result["metadata"]["resourceVersion"]
    rt.certificate_written(key, body, result)
    return result, ManagedCertificate.from_body(result)


async def finalize(rt: IssuanceRuntime, key: Key, body: dict[str, Any]) -> None:
    """A certificate being deleted: delete its Secret if it asked so, then let it go."""
    finalizers = list(body["metadata"].get("finalizers") or [])
    rt.queue.schedule(key, None)
    if FINALIZER not in finalizers:
        return
    secret_name = (body.get("spec") or {}).get("secretName")
    if secret_name:
        secret = await read_secret(rt.api, namespace=key.namespace, name=secret_name)
        if secret is not None and secret.annotations.get(ANNOTATION_CERTIFICATE_NAME) == key.name:
            await delete_secret(rt.api, key.namespace, secret_name, uid=secret.uid)
            logger.info("deleted Secret %s with its certificate", secret_name, extra=rt.log_extra(key))
    try:
        await patch_metadata(
            rt.api,
            PLURAL,
            namespace=key.namespace,
            name=key.name,
            metadata={"finalizers": [f for f in finalizers if f != FINALIZER]},
            resource_version=body["metadata"]["resourceVersion"],
        )
    except ApiException as error:
        if error.status == 409:
            raise Conflict from None
        if error.status != 404:
            raise


__all__ = ["FINALIZER", "finalize", "sync_finalizer"]
