"""The ManagedCertificate reconcile: read what is there, let the policy decide one action, carry it out.

:func:`reconcile` takes the certificate, its Secret and its issuer as last
seen (read afresh after a conflict or failure), lets
``policy.issuance.decide`` pick one action and hands it to
:mod:`.issuing` (issue, adopt, conflict) or writes the status that says so
(none, wait, invalid, revoked). Every path ends in
:func:`~certctl_operator.controllers.certificates.writes.finish`, which
schedules the certificate's next action from its status.
"""

from __future__ import annotations

import functools
import logging

from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from certctl_operator.api import ManagedCertificate, status_patch
from certctl_operator.controllers.certificates.announce import announce_expiry, announce_invalid_spec
from certctl_operator.controllers.certificates.finalizer import finalize, sync_finalizer
from certctl_operator.controllers.certificates.issuing import (
    adopt,
    claimed_by_other,
    fail,
    issue,
    repair_metadata,
)
from certctl_operator.controllers.certificates.watch import certificate_gone, watch_secret_while_conflicting
from certctl_operator.controllers.certificates.writes import PLURAL, Conflict, finish
from certctl_operator.controllers.issuance import CERTIFICATE, IssuanceRuntime, Key, reconciler
from certctl_operator.kube.objects import patch_status
from certctl_operator.policy.issuance import (
    Action,
    Reason,
    build_request,
    decide,
    examine_secret,
    secret_conflict,
    spec_error_message,
    spec_problems,
)
from certctl_operator.status.certificates import (
    ready_or_message_changed,
    status_conflict_waiting,
    status_in_sync,
    status_invalid,
    status_revoked,
    status_unreadable,
)
from certctl_operator.workqueue import Requeue

logger = logging.getLogger("certctl.issuance")


@reconciler(CERTIFICATE)
async def reconcile(rt: IssuanceRuntime, key: Key) -> None:
    fresh = key in rt.read_afresh
    try:
        await reconcile_once(rt, key, fresh=fresh)
    except BaseException as error:
        # A write that conflicted may have been computed from a body that was behind: the next
        # attempt reads the certificate and its Secret from the API server.
        rt.read_afresh.add(key)
        if isinstance(error, ApiException) and error.status == 409:
            raise Conflict(f"conflict: {error.reason}") from None
        if isinstance(error, ApiException) and error.status == 404:
            # Usually the certificate went away meanwhile: the next attempt finds out and cleans up.
            raise Requeue(f"not found: {error.reason}") from None
        raise
    if fresh:
        rt.read_afresh.discard(key)


async def reconcile_once(rt: IssuanceRuntime, key: Key, *, fresh: bool) -> None:
    """One pass over the certificate; ``fresh``: read it and its Secret from the API server."""
    body = await rt.certificate_body(key, fresh=fresh)
    if body is None:
        certificate_gone(rt, key)
        return
    rt.remember_uid(key, body)
    if body["metadata"].get("deletionTimestamp"):
        await finalize(rt, key, body)
        return
    try:
        cert = ManagedCertificate.from_body(body)
    except ValidationError as error:
        # Stored before the CRD refused it (an older, looser schema): say so in the status.
        message = spec_error_message(error)
        logger.error("cannot read the ManagedCertificate: %s", message, extra=rt.log_extra(key))
        current, wanted = status_unreadable(body, message, now=rt.now())
        patch = status_patch(current, wanted)
        if patch:
            version = body["metadata"].get("resourceVersion")
            await patch_status(
                rt.api, PLURAL, namespace=key.namespace, name=key.name, status=patch, resource_version=version
            )
        return
    body, cert = await sync_finalizer(rt, key, body, cert)

    settings = rt.settings
    now = rt.now()
    namespace = key.namespace
    problems = spec_problems(cert.spec, namespace, settings.minimum_certificate_duration)
    issuer = None if problems else await rt.issuer_view(cert.spec.issuer_ref, namespace, fresh=False)
    secret = await rt.secret(namespace, cert.spec.secret_name, fresh=fresh)
    conflict = secret_conflict(
        secret,
        certificate_name=key.name,
        owner_claims_it=await claimed_by_other(rt, key, cert, secret),
    )
    request = build_request(cert.spec, namespace, issuer, settings.public_base_url)
    examine = functools.partial(
        examine_secret, secret, certificate_name=key.name, spec=cert.spec, request=request, issuer=issuer
    )
    # Without a Secret there is nothing to parse: cheaper here than a hop to the crypto pool.
    exam = examine() if secret is None else await rt.off_loop(examine)
    decision = decide(
        cert,
        exam,
        problems=problems,
        issuer_ready=bool(issuer and issuer.check.ready),
        now=now,
        conflict=conflict,
    )
    logger.debug("decision %s (%s)", decision.action, decision.reason, extra=rt.log_extra(key))
    watch_secret_while_conflicting(rt, key, cert, decision.conflict)

    if decision.action is Action.ISSUE:
        await issue(rt, key, body, cert, exam, secret, decision)
        return
    if decision.action is Action.ADOPT:
        await adopt(rt, key, body, cert, exam, decision)
        return
    if decision.action is Action.CONFLICT:
        assert decision.conflict is not None
        await fail(rt, key, body, cert, decision, Reason.SECRET_CONFLICT, decision.conflict)
        return
    if decision.action is Action.NONE:
        status = status_in_sync(cert, exam, now=now)
        assert secret is not None
        await repair_metadata(rt, key, cert, secret, exam, request)
    elif decision.action is Action.INVALID:
        status = status_invalid(cert, decision.message, now=now)
        if ready_or_message_changed(cert.status, status):
            await announce_invalid_spec(rt, key, body, decision.message)
    elif decision.action is Action.REVOKED:
        status = status_revoked(cert, now=now)
    elif decision.conflict is not None:  # Action.WAIT with the Secret still in the way.
        status = status_conflict_waiting(cert, decision.conflict, now=now)
    else:  # Action.WAIT: the failure status already says what is pending and when.
        status = cert.status
    status = await announce_expiry(rt, key, body, cert, status, now)
    await finish(rt, key, body, cert, status)


__all__ = ["reconcile", "reconcile_once"]
