"""Issuer and ClusterIssuer: Ready when they can sign, with the reason when they cannot.

A selfSigned issuer is always ready. A CA issuer is ready when its Secret
(its own namespace for an Issuer, the operator's namespace for a
ClusterIssuer) holds a valid CA certificate and the key that belongs to it.
The Secret is checked again at every change of it: Secrets the operator wrote
itself are watched through their label, any other CA Secret through a watch
of its own (:mod:`certctl_operator.kube.secret_watch`, filtered by name on
the API server); otherwise every ``issuer_check_interval``, a safety net. When
an issuer becomes able to sign, or its CA changes, every certificate that
names it is reconciled at once, so certificates waiting for it proceed
without a restart.

Only the status fields that describe signing are written here (type, Ready,
caSerialNumber, caNotAfter, observedGeneration); the CRL fields belong to the
revocation side.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from certctl_operator import API_GROUP
from certctl_operator.api import (
    ClusterIssuer,
    ConditionStatus,
    ConditionType,
    Issuer,
    IssuerStatus,
    find_condition,
    set_condition,
    status_patch,
)
from certctl_operator.handlers.issuance_runtime import (
    CLUSTER_ISSUER,
    ISSUER,
    IssuanceRuntime,
    Key,
    next_check,
    reconciler,
    runtime,
)
from certctl_operator.kube.events import NORMAL, WARNING, post_event
from certctl_operator.kube.objects import get_object, patch_status
from certctl_operator.kube.secret_watch import close_secret_watcher, secret_watcher
from certctl_operator.metrics import issuer_ready_status
from certctl_operator.policy.issuers import REASON_INVALID_SPEC, IssuerCheck, issuer_status_unreadable
from certctl_operator.workqueue import Requeue

logger = logging.getLogger("certctl.issuers")


@kopf.on.event(API_GROUP, "issuers")
async def issuer_event(type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
    _queue(runtime(memo), Key(ISSUER, body.metadata.namespace or "", body.metadata.name or ""), type, body)


@kopf.on.event(API_GROUP, "clusterissuers")
async def cluster_issuer_event(type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
    _queue(runtime(memo), Key(CLUSTER_ISSUER, "", body.metadata.name or ""), type, body)


def _queue(rt: IssuanceRuntime, key: Key, event_type: str | None, body: kopf.Body) -> None:
    if event_type == "DELETED":
        issuer_gone(rt, key)
        # A reconcile under way may still export the issuer's series; the next one removes them.
        rt.queue.add(key)
        return
    rt.remember_uid(key, body)
    rt.issuer_bodies[key] = dict(body)
    secret_name = ((body.get("spec") or {}).get("ca") or {}).get("secretName")
    if secret_name:
        namespace = key.namespace if key.kind == ISSUER else rt.settings.operator_namespace
        rt.track_issuer(key, (namespace, secret_name))
    else:
        rt.track_issuer(key, None)
    _watch_ca_secret(rt, key)
    if rt.own_writes.get(key) == body.metadata.get("resourceVersion"):
        return
    rt.queue.add(key)


def _watch_ca_secret(rt: IssuanceRuntime, key: Key) -> None:
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
    _watch_ca_secret(rt, key)
    rt.issuer_bodies.pop(key, None)
    rt.issuer_checks.pop(key, None)
    if rt.issuer_states.pop(key, None) is not None:
        rt.wake_certificates(key)
    for condition in ConditionStatus:
        try:
            issuer_ready_status.remove(key.namespace, key.name, key.kind, condition.value)
        except KeyError:
            continue


@reconciler(ISSUER, CLUSTER_ISSUER)
async def reconcile(rt: IssuanceRuntime, key: Key) -> None:
    known = rt.issuer_bodies.get(key)
    body = await get_object(rt.api, key.plural, key.name, key.namespace or None)
    if body is None:
        issuer_gone(rt, key)
        return
    # Certificates sign with the body their watch delivered last: a read answered after a newer
    # event does not replace it.
    if rt.issuer_bodies.get(key) is known:
        rt.issuer_bodies[key] = body
    rt.remember_uid(key, body)
    model_class = ClusterIssuer if key.kind == CLUSTER_ISSUER else Issuer
    try:
        issuer = model_class.from_body(body)
    except ValidationError as error:
        # Stored before the CRD refused it (an older, looser schema): say so in the status, once.
        stored, wanted, message = issuer_status_unreadable(body, error, now=rt.now())
        patch = status_patch(stored, wanted)
        if patch:
            version = body["metadata"].get("resourceVersion")
            try:
                await patch_status(rt.api, key.plural, key.name, key.namespace or None, patch, version)
            except ApiException as error:
                if error.status in (404, 409):
                    raise Requeue(f"writing the status: {error.reason}") from None
                raise
            before = find_condition(stored.conditions, ConditionType.READY)
            if before is None or before.reason != REASON_INVALID_SPEC:
                await post_event(
                    rt.api, body, event_type=WARNING, reason=REASON_INVALID_SPEC, message=message
                )
                logger.error("cannot read the %s: %s", key.kind, message, extra=rt.log_extra(key))
        return
    spec = issuer.spec
    # The issuer's own look reads its CA Secret: it runs on the watch's reports and as the periodic
    # safety net for a CA Secret that is not watched or whose watch is down.
    check = await rt.issuer_check(key, spec, fresh=True, trust_watch=False)
    now = rt.now()
    status = _status(
        issuer.status, check, generation=issuer.metadata.generation, spec_type=spec.type, now=now
    )

    patch = status_patch(issuer.status, status)
    if patch:
        try:
            result = await patch_status(
                rt.api,
                key.plural,
                key.name,
                key.namespace or None,
                patch,
                body["metadata"]["resourceVersion"],
            )
        except ApiException as error:
            if error.status in (404, 409):
                raise Requeue(f"writing the status: {error.reason}") from None
            raise
        rt.own_writes[key] = result["metadata"]["resourceVersion"]
        before = find_condition(issuer.status.conditions, ConditionType.READY)
        if before is None or (before.status, before.reason) != (
            ConditionStatus.TRUE if check.ready else ConditionStatus.FALSE,
            check.reason,
        ):
            await _announce(rt, key, body, check)

    for condition in ConditionStatus:
        current = ConditionStatus.TRUE if check.ready else ConditionStatus.FALSE
        issuer_ready_status.labels(
            namespace=key.namespace, name=key.name, kind=key.kind, condition=condition.value
        ).set(1.0 if condition == current else 0.0)

    # Certificates that name this issuer are looked at again when what it signs with changes.
    state = (issuer.metadata.generation, check.ready, check.ca_serial_number)
    if rt.issuer_states.get(key) != state:
        previous = rt.issuer_states.get(key)
        rt.issuer_states[key] = state
        woken = rt.wake_certificates(key)
        if previous is not None and woken:
            logger.info("%d certificate(s) to look at again", woken, extra=rt.log_extra(key))

    if spec.ca is None:
        rt.queue.schedule(key, None)
    else:
        authority = check.authority
        limit = authority.not_after if authority is not None else None
        rt.queue.schedule(key, next_check(now, rt.settings.issuer_check_interval, limit))


def _status(
    before: IssuerStatus, check: IssuerCheck, *, generation: int | None, spec_type: Any, now: Any
) -> IssuerStatus:
    status = before.model_copy(deep=True)
    status.type = spec_type
    status.observed_generation = generation
    authority = check.authority
    status.ca_serial_number = check.ca_serial_number
    status.ca_not_after = authority.not_after if authority is not None else None
    status.conditions = set_condition(
        status.conditions,
        ConditionType.READY,
        ConditionStatus.TRUE if check.ready else ConditionStatus.FALSE,
        check.reason,
        check.message,
        now=now,
        observed_generation=generation,
    )
    return status


async def _announce(rt: IssuanceRuntime, key: Key, body: dict[str, Any], check: IssuerCheck) -> None:
    if check.ready:
        await post_event(rt.api, body, event_type=NORMAL, reason="Ready", message=check.message)
        logger.info("ready: %s", check.message, extra=rt.log_extra(key))
    else:
        await post_event(rt.api, body, event_type=WARNING, reason=check.reason, message=check.message)
        logger.warning("cannot sign (%s): %s", check.reason, check.message, extra=rt.log_extra(key))


__all__ = ["issuer_gone", "reconcile"]
