"""What feeds the Issuer and ClusterIssuer work: their watches, and the watch of each CA Secret.

The Kopf event handlers keep the issuer bodies and queue keys; a CA Secret
the operator did not write is watched on its own
(:mod:`certctl_operator.kube.secret_watch`, filtered by name on the API
server), so a change of it re-checks the issuer at once. This module also does
the bookkeeping of an issuer that is gone, and closes the Secret watches at
shutdown.
"""

from __future__ import annotations

from typing import Any

import kopf

from certctl_operator import API_GROUP
from certctl_operator.controllers.issuance import (
    CLUSTER_ISSUER,
    ISSUER,
    IssuanceRuntime,
    Key,
    older_than,
    runtime,
)
from certctl_operator.controllers.issuers.metrics import remove_series
from certctl_operator.kube.secret_watch import close_secret_watcher, secret_watcher


@kopf.on.event(API_GROUP, "issuers")
async def issuer_event(type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
    queue_issuer(
        runtime(memo), Key(ISSUER, body.metadata.namespace or "", body.metadata.name or ""), type, body
    )


@kopf.on.event(API_GROUP, "clusterissuers")
async def cluster_issuer_event(type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
    queue_issuer(runtime(memo), Key(CLUSTER_ISSUER, "", body.metadata.name or ""), type, body)


def queue_issuer(rt: IssuanceRuntime, key: Key, event_type: str | None, body: kopf.Body) -> None:
    """Keep the issuer's body and CA Secret location from a watch event, and queue it unless we wrote it."""
    if event_type == "DELETED":
        issuer_gone(rt, key)
        # A reconcile under way may still export the issuer's series; the next one removes them.
        rt.queue.add(key)
        return
    rt.remember_uid(key, body)
    if not older_than(body.get("metadata"), (rt.issuer_bodies.get(key) or {}).get("metadata")):
        rt.issuer_bodies[key] = dict(body)
    secret_name = ((body.get("spec") or {}).get("ca") or {}).get("secretName")
    if secret_name:
        namespace = key.namespace if key.kind == ISSUER else rt.settings.operator_namespace
        rt.track_issuer(key, (namespace, secret_name))
    else:
        rt.track_issuer(key, None)
    watch_ca_secret(rt, key)
    if rt.own_writes.get(key) == body.metadata.get("resourceVersion"):
        return
    rt.queue.add(key)


def watch_ca_secret(rt: IssuanceRuntime, key: Key) -> None:
    """Reconcile the issuer as soon as its CA Secret is created, changed or deleted."""
    location = rt.secret_of_issuer.get(key)

    async def recheck() -> None:
        # Certificates stop trusting the issuer's cached verdict at once, before its reconcile runs.
        rt.ca_secret_changed(key)
        rt.queue.add(key)

    secret_watcher(rt.context).watch(key, [location] if location else [], recheck)


@kopf.on.cleanup(id="secret-watch-cleanup")
async def stop_secret_watches(memo: Any, **_: Any) -> None:
    await close_secret_watcher(memo.context)


def issuer_gone(rt: IssuanceRuntime, key: Key) -> None:
    rt.forget(key)
    rt.track_issuer(key, None)
    watch_ca_secret(rt, key)
    rt.issuer_bodies.pop(key, None)
    rt.issuer_checks.pop(key, None)
    if rt.issuer_states.pop(key, None) is not None:
        rt.wake_certificates(key)
    remove_series(key)


__all__ = ["cluster_issuer_event", "issuer_event", "issuer_gone", "queue_issuer", "watch_ca_secret"]
