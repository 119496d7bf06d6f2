"""What feeds the ManagedCertificate work queue: the watches of certificates and of the operator's Secrets.

Both are plain list-then-watches (:class:`~certctl_operator.kube.list_watch.ListWatch`),
not Kopf: no per-object memory and no handler machinery for each of ten
thousand certificates and their Secrets. Started by a start-up handler (so
only on the leader) in this order: the operator's Secrets are listed first
(label ``certctl.io/managed-by-certificate``), then the ManagedCertificates,
each listed certificate queued, so that its first reconcile finds its Secret
among those listed. The event handlers keep what they are given and queue
keys, nothing more; the reconcile does the work. A certificate's events also
keep the PKI registry's index of issued serials current
(:func:`~certctl_operator.controllers.publishing.index.index_certificate`).
This module also does the bookkeeping of a certificate that is gone, and the
watch of one Secret that is not the operator's while a certificate is in
conflict over it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import kopf

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.api import IssuerKind, IssuerReference, ManagedCertificate
from certctl_operator.api.metadata_keys import (
    ANNOTATION_CERTIFICATE_NAME,
    LABEL_MANAGED_BY_CERTIFICATE,
)
from certctl_operator.controllers.certificates.metrics import forget_metrics
from certctl_operator.controllers.certificates.writes import PLURAL
from certctl_operator.controllers.issuance import (
    CERTIFICATE,
    IssuanceRuntime,
    Key,
    issuer_key,
    runtime,
)
from certctl_operator.controllers.publishing.index import index_certificate
from certctl_operator.kube.compact import KeptBody
from certctl_operator.kube.list_watch import ListWatch, custom_objects_list_call, secrets_list_call
from certctl_operator.kube.secret_watch import secret_watcher
from certctl_operator.kube.secrets import snapshot
from certctl_operator.web.pki_state import registry_of


def certificate_changed(rt: IssuanceRuntime, type: str, raw: Mapping[str, Any]) -> None:
    """An event of a ManagedCertificate (its :class:`ListWatch`): the index of issued serials, the queue."""
    try:
        index_certificate(registry_of(rt.context), type, raw)
    finally:
        certificate_event(rt, type, raw)


def certificate_event(rt: IssuanceRuntime, type: str, raw: Mapping[str, Any]) -> None:
    """Keep the certificate's body and what it names; queue it unless the event is of the operator's write."""
    metadata = raw.get("metadata") or {}
    # The namespace interned: it is in every key and index entry of each of its certificates.
    key = Key(CERTIFICATE, sys.intern(str(metadata.get("namespace") or "")), str(metadata.get("name") or ""))
    if type == "DELETED":
        certificate_gone(rt, key)
        # A reconcile under way may still export the certificate's series (or keep a body it read
        # just before); the next one reads, finds it gone and removes them again (the queue runs it
        # after the one under way).
        rt.read_afresh.add(key)
        rt.queue.add(key)
        return
    # Kept as delivered (never changed in place): the next reconcile starts from it.
    rt.certificate_seen(key, KeptBody.of(raw))
    rt.remember_uid(key, raw)
    secret_name = (raw.get("spec") or {}).get("secretName")
    # Certificates waiting for a Secret this one held may take it over now.
    for other in rt.track_secret_claim(key, (key.namespace, secret_name) if secret_name else None):
        rt.queue.add(other)
    reference = (raw.get("spec") or {}).get("issuerRef") or {}
    if reference.get("name"):
        kind = IssuerKind.CLUSTER_ISSUER if reference.get("kind") == "ClusterIssuer" else IssuerKind.ISSUER
        rt.track_certificate(
            key, issuer_key(IssuerReference(name=reference["name"], kind=kind), key.namespace)
        )
    version = metadata.get("resourceVersion")
    rt.wake(key, lambda: rt.own_writes.get(key) == version)


def secret_changed(rt: IssuanceRuntime, type: str, raw: Mapping[str, Any], *, wake: bool = True) -> None:
    """An event of one of the operator's Secrets (their :class:`ListWatch`).

    ``wake``: queue the certificate (and issuers) the Secret belongs to unless the change is the
    operator's own write; the start-up listing does not, as every certificate and issuer is
    queued by its own watch's listing right after (with its body, which a reconcile queued now
    would have to read).
    """
    metadata = raw.get("metadata") or {}
    location = (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
    version = metadata.get("resourceVersion")
    kept = rt.secrets.get(location)
    if type != "DELETED" and kept is not None and version and kept.resource_version == version:
        return  # already known as it is (a list after a watch could not resume)
    # DELETED also when the Secret lost the label: then it is not one of the operator's any more.
    rt.secret_seen(location, None if type == "DELETED" else snapshot(raw))
    if type == "DELETED":
        rt.own_secret_writes.pop(location, None)
    if not wake:
        return
    owner = ((metadata.get("annotations") or {}).get(ANNOTATION_CERTIFICATE_NAME)) or (
        kept.annotations.get(ANNOTATION_CERTIFICATE_NAME) if kept is not None else None
    )
    if owner:
        deleted = type == "DELETED"
        rt.wake(
            Key(CERTIFICATE, location[0], owner),
            lambda: not deleted and rt.own_secret_writes.get(location) == version,
        )
    # A certificate's Secret may be the CA of issuers (a CA made by the operator itself).
    for issuer in rt.issuers_by_secret.get(location, ()):
        rt.queue.add(issuer)


@kopf.on.startup()
async def start_watches(memo: Any, **_: Any) -> None:
    """List the operator's Secrets and watch them, then list the ManagedCertificates and watch them.

    In this order: every listed certificate is queued, and its first reconcile finds its Secret
    among those listed rather than reading it.
    """
    rt = runtime(memo)
    scopes = rt.settings.namespaces or (None,)
    starting = True
    secrets = rt.secret_watch = ListWatch(
        rt.api,
        secrets_list_call,
        scopes,
        on_event=lambda type, raw: secret_changed(rt, type, raw, wake=not starting),
        known=lambda scope: [location for location in rt.secrets if scope in (None, location[0])],
        label_selector=LABEL_MANAGED_BY_CERTIFICATE,
        kind="Secret",
        what="the operator's Secrets",
    )
    await secrets.start()
    starting = False
    certificates = rt.certificate_watch = ListWatch(
        rt.api,
        custom_objects_list_call(API_GROUP, API_VERSION, PLURAL),
        scopes,
        on_event=lambda type, raw: certificate_changed(rt, type, raw),
        known=lambda scope: [
            (key.namespace, key.name) for key in rt.certificate_bodies if scope in (None, key.namespace)
        ],
        kind="ManagedCertificate",
        what="ManagedCertificates",
    )
    await certificates.start()


@kopf.on.cleanup()
async def stop_watches(memo: Any, **_: Any) -> None:
    rt = runtime(memo)
    certificates, rt.certificate_watch = rt.certificate_watch, None
    secrets, rt.secret_watch = rt.secret_watch, None
    for watch in (certificates, secrets):
        if watch is not None:
            await watch.stop()


def certificate_gone(rt: IssuanceRuntime, key: Key) -> None:
    rt.forget(key)
    rt.track_certificate(key, None)
    for other in rt.track_secret_claim(key, None):
        rt.queue.add(other)
    secret_watcher(rt.context).forget(key)
    forget_metrics(rt, key)


def watch_secret_while_conflicting(
    rt: IssuanceRuntime, key: Key, cert: ManagedCertificate, conflict: str | None
) -> None:
    """Reconcile a certificate in conflict as soon as its Secret changes (an opt-in annotation, a deletion).

    The watch of the operator's Secrets (by their label) does not see Secrets it did not write; a
    watch of that one Secret does, and only while the conflict lasts.
    """
    watcher = secret_watcher(rt.context)
    if conflict is None:
        watcher.forget(key)
        return

    async def recheck() -> None:
        rt.queue.add(key)

    watcher.watch(key, [(key.namespace, cert.spec.secret_name)], recheck)


__all__ = [
    "certificate_changed",
    "certificate_event",
    "certificate_gone",
    "secret_changed",
    "start_watches",
    "stop_watches",
    "watch_secret_while_conflicting",
]
