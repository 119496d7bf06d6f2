"""Taking one Revocation as far as it goes now: from the request to a serial on its issuer's CRL.

1. Resolve: which serial, which issuer (:mod:`.resolve`). A certificate not
   issued yet, a missing issuer or a CA not ready keep it Pending, looked at
   again with backoff and whenever the certificate changes. Self-signed
   certificates fail at once.
2. Persist the resolved serial and issuer in the Revocation's status, so a
   restart never resolves again (the certificate may have been reissued).
3. Record: one guarded write of the issuer's revocation list and CRL number
   (:func:`kube.revocation_store.record_revocation`, which checks the journal
   in the issuer's status and the archive shard of the serial); idempotent.
   An acme issuer's CA revokes instead (:mod:`.acme`).
4. Publish the CRL that lists it (ConfigMap and HTTP).
5. Show it on the ManagedCertificate (revoked, revokedSerialNumbers, Ready
   False), ask for a reissue when ``spec.reissue``, create Revoked
   NotificationEvents for subscribed channels (:func:`.steps.follow_up`).
6. Write phase Revoked, post an Event, log one audit line (:func:`.steps.settle`).

Each step is safe to repeat, and the status is written last, so an operator
killed anywhere in between finishes the job after its restart without listing
anything twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certctl_operator import metrics
from certctl_operator.api import (
    ClusterIssuer,
    Issuer,
    IssuerType,
    Revocation,
    RevocationPhase,
    RevokedCertificate,
)
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.publishing.publisher import publish_state
from certctl_operator.controllers.revocations.acme import revoke_at_acme_ca
from certctl_operator.controllers.revocations.announce import audit_line, post_revoked
from certctl_operator.controllers.revocations.resolve import resolve
from certctl_operator.controllers.revocations.steps import (
    follow_up,
    persist_target,
    set_failed,
    set_pending,
    settle,
)
from certctl_operator.kube.objects import get_object
from certctl_operator.kube.revocation_store import (
    REASON_STORE_UNREADABLE,
    IssuerGone,
    Recorded,
    ShardUnreadable,
    get_issuer,
    issuer_class,
    load_ca,
    record_revocation,
)
from certctl_operator.pki import SigningAuthority
from certctl_operator.policy.clock import utc_now
from certctl_operator.policy.publishing import (
    state_of,
)
from certctl_operator.policy.revocation import (
    IssuerKey,
    Outcome,
    RevocationListFull,
    issuer_notification,
)
from certctl_operator.status.revocations import revoked_on_crl_message, revoked_status
from certctl_operator.web.pki_state import registry_of

Settled = bool
"""What :func:`process_revocation` returns once a step ended it: True when settled, False when waiting."""


@dataclass(frozen=True)
class Target:
    """The serial a Revocation revokes and its issuer, as resolved once and kept in its status."""

    serial: str
    issuer: IssuerKey
    not_after: datetime | None


async def process_revocation(context: OperatorContext, namespace: str, name: str, logger: Any) -> bool:
    """Take one Revocation as far as it goes now; True once it is settled (Revoked or Failed)."""
    api = context.api
    body = await get_object(api, Revocation.PLURAL, namespace=namespace, name=name)
    if body is None:
        return True
    revocation = Revocation.from_body(body)
    if revocation.status.phase in (RevocationPhase.REVOKED, RevocationPhase.FAILED):
        return True
    target = await _resolve_target(context, namespace, body, revocation)
    if not isinstance(target, Target):
        return target
    issuer_body = await get_issuer(api, target.issuer)
    if issuer_body is None:
        message = f"the issuer {target.issuer.label} does not exist"
        await set_pending(api, body, revocation, "IssuerNotFound", message)
        return False
    issuer = issuer_class(target.issuer).from_body(issuer_body)
    if issuer.spec.acme is not None:
        return await revoke_at_acme_ca(
            context, body, revocation, target.issuer, issuer.spec, target.serial, target.not_after, logger
        )
    authority = await _crl_authority(context, body, revocation, target.issuer, issuer)
    if not isinstance(authority, SigningAuthority):
        return authority
    recorded = await _record(context, body, revocation, target)
    if recorded is None:
        return False
    listed = issuer_class(target.issuer).from_body(recorded.issuer_body)
    await _publish(context, target, recorded, listed, authority, logger)
    await _settle_revoked(context, body, revocation, target.issuer, recorded, listed, logger)
    return True


async def _resolve_target(
    context: OperatorContext, namespace: str, body: dict[str, Any], revocation: Revocation
) -> Target | Settled:
    """Steps 1 and 2: the target kept in the status, else resolved now and kept there."""
    api = context.api
    status = revocation.status
    if status.serial_number and status.issuer_ref is not None:
        return Target(status.serial_number, IssuerKey.of(status.issuer_ref, namespace), status.not_after)
    try:
        resolution = await resolve(context, namespace, revocation)
    except ShardUnreadable as error:
        await set_pending(api, body, revocation, REASON_STORE_UNREADABLE, str(error))
        return False
    if resolution.outcome is Outcome.PENDING:
        await set_pending(api, body, revocation, resolution.reason, resolution.message)
        return False
    if resolution.outcome is Outcome.FAILED:
        await set_failed(api, body, revocation, resolution.reason, resolution.message)
        return True
    assert resolution.serial is not None and resolution.issuer is not None
    target = Target(resolution.serial, resolution.issuer, resolution.not_after)
    await persist_target(api, body, revocation, target.serial, target.issuer, target.not_after)
    return target


async def _crl_authority(
    context: OperatorContext,
    body: dict[str, Any],
    revocation: Revocation,
    key: IssuerKey,
    issuer: Issuer | ClusterIssuer,
) -> SigningAuthority | Settled:
    """The CA that signs the issuer's CRL; a selfSigned issuer fails, a CA not ready waits."""
    api = context.api
    if issuer.spec.ca is None:
        message = f"the issuer {key.label} is not a ca issuer (any more)"
        await set_failed(api, body, revocation, "SelfSignedNotRevocable", message)
        return True
    state = registry_of(context).issuer(key)
    ca = await load_ca(
        api, context.settings, key, issuer, utc_now(), cached=(state.authority_version, state.authority)
    )
    if ca.authority is None:
        message = f"the CA of issuer {key.label} cannot sign a CRL: {ca.problem}"
        await set_pending(api, body, revocation, "IssuerNotReady", message)
        return False
    return ca.authority


async def _record(
    context: OperatorContext, body: dict[str, Any], revocation: Revocation, target: Target
) -> Recorded | None:
    """Step 3: the serial on the issuer's revocation list; None when it has to wait (Pending written)."""
    api = context.api
    state = registry_of(context).issuer(target.issuer)
    entry = RevokedCertificate(
        serial_number=target.serial,
        revoked_at=utc_now(),
        reason=revocation.spec.reason,
        not_after=target.not_after,
    )
    # Recorded without the issuer's lock (the guarded write orders concurrent revocations), published
    # under it: a revocation that waited for the lock publishes the newest CRL, which also lists the
    # revocations recorded meanwhile, so a burst of them costs a few signatures, not one each.
    try:
        return await record_revocation(
            api,
            context.settings,
            target.issuer,
            entry,
            utc_now,
            floor=lambda: state.published_number,
            archived=state.add_archived,
        )
    except IssuerGone as error:
        await set_pending(api, body, revocation, "IssuerNotFound", str(error))
    except RevocationListFull as error:
        await set_pending(api, body, revocation, "RevocationListFull", str(error))
    except ShardUnreadable as error:
        await set_pending(api, body, revocation, REASON_STORE_UNREADABLE, str(error))
    return None


async def _publish(
    context: OperatorContext,
    target: Target,
    recorded: Recorded,
    listed: Issuer | ClusterIssuer,
    authority: SigningAuthority,
    logger: Any,
) -> None:
    """Step 4: publish the newest CRL of the issuer; ``listed`` is the issuer as the record left it."""
    api = context.api
    key = target.issuer
    registry = registry_of(context)
    state = registry.issuer(key)
    registry.update_revoked(key, listed.status)
    async with state.lock:
        try:
            newest_body = await get_issuer(api, key) or recorded.issuer_body
            newest = issuer_class(key).from_body(newest_body)
            registry.update_revoked(key, newest.status)
            await publish_state(context, key, newest_body, authority, state_of(newest.status))
        except Exception as error:  # the issuer's daemon publishes it on its next look
            logger.warning(
                "issuer %s: the CRL listing %s is not published yet: %s", key.label, target.serial, error
            )
    if recorded.newly_listed:
        logger.info("serial %s listed on the revocation list of issuer %s", target.serial, key.label)


async def _settle_revoked(
    context: OperatorContext,
    body: dict[str, Any],
    revocation: Revocation,
    key: IssuerKey,
    recorded: Recorded,
    listed: Issuer | ClusterIssuer,
    logger: Any,
) -> None:
    """Steps 5 and 6: the certificate, the notifications, then phase Revoked, its Event and audit line."""
    api = context.api
    if recorded.newly_listed:
        metrics.revocations_total.labels(reason=revocation.spec.reason.value).inc()
    crl_number = (
        recorded.entry.crl_number if recorded.entry.crl_number is not None else listed.status.crl_number
    )
    await follow_up(context, body, revocation, key, recorded.entry, crl_number, logger)

    notified, notified_reason = issuer_notification(IssuerType.CA)
    message = revoked_on_crl_message(recorded.entry, key, crl_number, recorded.newly_listed)
    after = revoked_status(
        revocation,
        body.get("metadata") or {},
        recorded.entry,
        key,
        crl_number=crl_number,
        issuer_notified=notified,
        issuer_notified_reason=notified_reason,
        message=message,
        now=utc_now(),
    )

    async def announce() -> None:
        await post_revoked(api, body, revocation, message)
        audit_line(revocation, after, key, outcome="revoked", listed_now=recorded.newly_listed)

    await settle(api, revocation, after, announce)
