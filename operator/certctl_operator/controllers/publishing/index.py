"""The in-memory PKI registry kept current from watch events, and the durable record of issued serials.

Watch events of issuers keep each CA issuer's revocation list current in the
registry (and drop an issuer that is gone or no CA issuer any more); watch
events of ManagedCertificates (handed over by their list-then-watch in
:mod:`certctl_operator.controllers.certificates.watch`, not by Kopf) keep the
index of issued serials (what OCSP answers "good" for) and wake Revocations
that wait for a certificate.
:func:`record_issued_serial` is what issuance calls for every certificate it
signs, before its Secret is written: the serial joins the issuer's
issued-serials ConfigMaps, so OCSP still knows it after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import kopf

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.api import ClusterIssuer, IssuerKind, IssuerReference, IssuerStatus
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.publishing.publisher import forget_issuer
from certctl_operator.kube.revocation_store import ArchiveFull, record_issued
from certctl_operator.policy.clock import utc_now
from certctl_operator.policy.revocation import IssuerKey, normalize_serial
from certctl_operator.web.pki_state import PKIRegistry, registry_of

store_logger = logging.getLogger("certctl.revocation")


async def record_issued_serial(
    context: OperatorContext,
    ref: IssuerReference,
    namespace: str,
    serial: str,
    not_after: datetime,
    *,
    linger: float = 0.0,
    issuer_body: Mapping[str, Any] | None = None,
) -> None:
    """Record that the issuer ``ref`` (seen from ``namespace``) issued ``serial``, durably, for OCSP.

    ``linger``, ``issuer_body``: see :func:`certctl_operator.kube.revocation_store.record_issued`.
    """
    key = IssuerKey.of(ref, namespace)
    try:
        await record_issued(
            context.api,
            context.settings,
            key,
            serial,
            not_after,
            utc_now,
            linger=linger,
            issuer_body=issuer_body,
        )
    except ArchiveFull as error:
        # Issuing goes on: the serial is still known while it is current, and until a restart.
        store_logger.warning("serial %s not recorded for OCSP: %s", serial, error)
    registry_of(context).index.add(key, normalize_serial(serial), not_after)


def take_issuer_status(registry: PKIRegistry, key: IssuerKey, event: kopf.RawEvent, body: kopf.Body) -> None:
    """Keep the registry's view of issuer ``key`` in step with one watch event about it."""
    if event.get("type") == "DELETED" or not (body.get("spec") or {}).get("ca"):
        # Gone, or not (any more) a CA issuer: nothing to publish or answer for it.
        forget_issuer(registry, key)
        return
    try:
        status = IssuerStatus.model_validate(dict(body.get("status") or {}))
    except ValueError:
        return
    registry.update_revoked(key, status)
    registry.wake_all()


@kopf.on.event(API_GROUP, API_VERSION, "issuers", id="pki-issuer-index")
async def index_issuer(
    event: kopf.RawEvent, body: kopf.Body, name: str, namespace: str | None, memo: Any, **_: Any
) -> None:
    """An Issuer changed: its revocation list in the registry follows."""
    take_issuer_status(registry_of(memo.context), IssuerKey(IssuerKind.ISSUER, name, namespace), event, body)


@kopf.on.event(API_GROUP, API_VERSION, ClusterIssuer.PLURAL, id="pki-issuer-index")
async def index_cluster_issuer(event: kopf.RawEvent, body: kopf.Body, name: str, memo: Any, **_: Any) -> None:
    """A ClusterIssuer changed: its revocation list in the registry follows."""
    take_issuer_status(registry_of(memo.context), IssuerKey(IssuerKind.CLUSTER_ISSUER, name), event, body)


def index_certificate(registry: PKIRegistry, type: str, raw: Mapping[str, Any]) -> None:
    """A ManagedCertificate's watch event: the index of issued serials follows, its Revocations wake."""
    metadata = raw.get("metadata") or {}
    namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
    if type == "DELETED":
        registry.index.forget(namespace, name)
    else:
        registry.index.update(raw)
    registry.wake(namespace, name)
