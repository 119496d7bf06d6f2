"""The Issuer and ClusterIssuer reconcile: Ready when they can sign, with the reason when they cannot.

A selfSigned issuer is always ready. A CA issuer is ready when its Secret
(its own namespace for an Issuer, the operator's namespace for a
ClusterIssuer) holds a valid CA certificate and the key that belongs to it;
it is checked again at every change of that Secret (see :mod:`.watch`) and
otherwise every ``issuer_check_interval``, a safety net. When an issuer
becomes able to sign, or its CA changes, every certificate that names it is
reconciled at once, so certificates waiting for it proceed without a restart.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from certctl_operator.api import ClusterIssuer, ConditionType, Issuer, find_condition, status_patch
from certctl_operator.controllers.issuance import CLUSTER_ISSUER, ISSUER, IssuanceRuntime, Key, reconciler
from certctl_operator.controllers.issuers.announce import announce_invalid_spec, announce_readiness
from certctl_operator.controllers.issuers.metrics import export_ready
from certctl_operator.controllers.issuers.watch import issuer_gone
from certctl_operator.kube.objects import get_object, patch_status
from certctl_operator.policy.issuers import REASON_INVALID_SPEC, issuer_status_unreadable
from certctl_operator.status.issuers import issuer_status, ready_changed, ready_status
from certctl_operator.workqueue import Requeue

logger = logging.getLogger("certctl.issuers")


@reconciler(ISSUER, CLUSTER_ISSUER)
async def reconcile(rt: IssuanceRuntime, key: Key) -> None:
    known = rt.issuer_bodies.get(key)
    body = await get_object(rt.api, key.plural, namespace=key.namespace or None, name=key.name)
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
                await patch_status(
                    rt.api,
                    key.plural,
                    namespace=key.namespace or None,
                    name=key.name,
                    status=patch,
                    resource_version=version,
                )
            except ApiException as error:
                if error.status in (404, 409):
                    raise Requeue(f"writing the status: {error.reason}") from None
                raise
            before = find_condition(stored.conditions, ConditionType.READY)
            if before is None or before.reason != REASON_INVALID_SPEC:
                await announce_invalid_spec(rt, key, body, message)
        return
    spec = issuer.spec
    # The issuer's own look reads its CA Secret: it runs on the watch's reports and as the periodic
    # safety net for a CA Secret that is not watched or whose watch is down.
    check = await rt.issuer_check(key, spec, fresh=True, trust_watch=False)
    now = rt.now()
    status = issuer_status(
        issuer.status, check, generation=issuer.metadata.generation, issuer_type=spec.type, now=now
    )

    patch = status_patch(issuer.status, status)
    if patch:
        try:
            result = await patch_status(
                rt.api,
                key.plural,
                namespace=key.namespace or None,
                name=key.name,
                status=patch,
                resource_version=body["metadata"]["resourceVersion"],
            )
        except ApiException as error:
            if error.status in (404, 409):
                raise Requeue(f"writing the status: {error.reason}") from None
            raise
        rt.own_writes[key] = result["metadata"]["resourceVersion"]
        if ready_changed(issuer.status, check):
            await announce_readiness(rt, key, body, check)

    export_ready(key, ready_status(check))

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


def next_check(now: datetime, interval: timedelta, limit: datetime | None) -> datetime:
    """When to look at a CA issuer again: after ``interval``, or just after its CA expires if sooner."""
    when = now + interval
    if limit is not None and limit > now:
        when = min(when, limit + timedelta(seconds=1))
    return when


__all__ = ["next_check", "reconcile"]
