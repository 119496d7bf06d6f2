"""What feeds the ManagedCertificate work queue: the watches of certificates and of the operator's Secrets.

The Kopf event handler of certificates and the label watch of the operator's
Secrets (:class:`~certctl_operator.kube.label_watch.LabelWatch`, not Kopf: no
per-object memory for ten thousand Secrets) keep what they are given and
queue keys, nothing more; the reconcile does the work. This module also does
the bookkeeping of a certificate that is gone, and the watch of one Secret
that is not the operator's while a certificate is in conflict over it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import kopf

from certctl_operator import API_GROUP
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
from certctl_operator.kube.compact import KeptBody
from certctl_operator.kube.label_watch import LabelWatch
from certctl_operator.kube.secret_watch import secret_watcher
from certctl_operator.kube.secrets import snapshot


@kopf.on.event(API_GROUP, PLURAL)
async def certificate_event(
    type: str | None, event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any
) -> None:
    rt = runtime(memo)
    # The namespace interned: it is in every key and index entry of each of its certificates.
    key = Key(CERTIFICATE, sys.intern(body.metadata.namespace or ""), body.metadata.name or "")
    if type == "DELETED":
        certificate_gone(rt, key)
        # A reconcile under way may still export the certificate's series (or keep a body it read
        # just before); the next one reads, finds it gone and removes them again (the queue runs it
        # after the one under way).
        rt.read_afresh.add(key)
        rt.queue.add(key)
        return
    # Kept as delivered (never changed in place): the next reconcile starts from it.
    rt.certificate_seen(key, KeptBody.of(event["object"]))
    rt.remember_uid(key, body)
    secret_name = (body.get("spec") or {}).get("secretName")
    # Certificates waiting for a Secret this one held may take it over now.
    for other in rt.track_secret_claim(key, (key.namespace, secret_name) if secret_name else None):
        rt.queue.add(other)
    reference = (body.get("spec") or {}).get("issuerRef") or {}
    if reference.get("name"):
        kind = IssuerKind.CLUSTER_ISSUER if reference.get("kind") == "ClusterIssuer" else IssuerKind.ISSUER
        rt.track_certificate(
            key, issuer_key(IssuerReference(name=reference["name"], kind=kind), key.namespace)
        )
    if rt.own_writes.get(key) == body.metadata.get("resourceVersion"):
        return
    rt.queue.add(key)


def secret_changed(rt: IssuanceRuntime, type: str, raw: Mapping[str, Any], *, wake: bool = True) -> None:
    """An event of one of the operator's Secrets (its :class:`LabelWatch`).

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
    own = rt.own_secret_writes.get(location) == version
    # DELETED also when the Secret lost the label: then it is not one of the operator's any more.
    rt.secret_seen(location, None if type == "DELETED" else snapshot(raw))
    if type == "DELETED":
        rt.own_secret_writes.pop(location, None)
        own = False
    if not wake:
        return
    owner = ((metadata.get("annotations") or {}).get(ANNOTATION_CERTIFICATE_NAME)) or (
        kept.annotations.get(ANNOTATION_CERTIFICATE_NAME) if kept is not None else None
    )
    if owner and not own:
        rt.queue.add(Key(CERTIFICATE, location[0], owner))
    # A certificate's Secret may be the CA of issuers (a CA made by the operator itself).
    for issuer in rt.issuers_by_secret.get(location, ()):
        rt.queue.add(issuer)


@kopf.on.startup()
async def start_secret_watch(memo: Any, **_: Any) -> None:
    """List the operator's Secrets, then watch them (before Kopf's watches of certificates begin)."""
    rt = runtime(memo)
    starting = True
    watch = rt.secret_watch = LabelWatch(
        rt.api,
        label_selector=LABEL_MANAGED_BY_CERTIFICATE,
        scopes=rt.settings.namespaces or (None,),
        on_event=lambda type, raw: secret_changed(rt, type, raw, wake=not starting),
        known=lambda scope: [location for location in rt.secrets if scope in (None, location[0])],
    )
    await watch.start()
    starting = False


@kopf.on.cleanup()
async def stop_secret_watch(memo: Any, **_: Any) -> None:
    rt = runtime(memo)
    watch, rt.secret_watch = rt.secret_watch, None
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

    The operator's label watch does not see Secrets it did not write; a watch of
    that one Secret does, and only while the conflict lasts.
    """
    watcher = secret_watcher(rt.context)
    if conflict is None:
        watcher.forget(key)
        return

    async def recheck() -> None:
        rt.queue.add(key)

    watcher.watch(key, [(key.namespace, cert.spec.secret_name)], recheck)


__all__ = [
    "certificate_event",
    "certificate_gone",
    "secret_changed",
    "start_secret_watch",
    "stop_secret_watch",
    "watch_secret_while_conflicting",
]
