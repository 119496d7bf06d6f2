"""The steps every Revocation shares, whichever CA revokes it (the issuer's CRL or an ACME CA).

Writing the Revocation's status on the way (the resolved target, Pending,
Failed) and at the end (:func:`settle`, shielded so that its Event and audit
line survive the daemon being stopped by that very write), and the follow-up
on the ManagedCertificate: marked revoked, reissued when asked, subscribers
told. The status itself is built by :mod:`certctl_operator.status.revocations`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from certctl_operator.api import (
    ManagedCertificate,
    Revocation,
    RevocationPhase,
    RevocationStatus,
    RevokedCertificate,
    status_patch,
)
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.revocations.announce import (
    audit_line,
    notify_revoked,
    post_certificate_revoked,
    post_failed,
    post_pending,
)
from certctl_operator.kube.objects import get_object, patch_status
from certctl_operator.kube.revocation_store import (
    mark_certificate_revoked,
    request_reissue,
)
from certctl_operator.policy.clock import utc_now
from certctl_operator.policy.revocation import IssuerKey
from certctl_operator.status.revocations import (
    is_pending_for,
    not_ready_status,
    ready_condition,
    resolved_status,
)

_settling: set[asyncio.Task[None]] = set()


async def settle(
    api: Any, revocation: Revocation, after: RevocationStatus, announce: Callable[[], Awaitable[None]]
) -> None:
    """Write the final status (Revoked or Failed), then post its Event and audit line.

    Shielded: that write ends the daemon (Kopf stops it once it sees the phase,
    possibly before the write's own response has arrived here), and the
    Event and audit line must not be cut off by that.
    """

    async def run() -> None:
        await patch_status(
            api,
            Revocation.PLURAL,
            namespace=revocation.metadata.namespace or "",
            name=revocation.metadata.name or "",
            status=status_patch(revocation.status, after),
        )
        await announce()

    task = asyncio.ensure_future(run())
    _settling.add(task)
    task.add_done_callback(_settling.discard)
    await asyncio.shield(task)


async def persist_target(
    api: Any, body: Any, revocation: Revocation, serial: str, key: IssuerKey, not_after: datetime | None
) -> None:
    """Write the resolved serial and issuer before touching the issuer: a restart then keeps them."""
    after = resolved_status(revocation, body.get("metadata") or {}, serial, key, not_after, utc_now())
    written = await patch_status(
        api,
        Revocation.PLURAL,
        namespace=revocation.metadata.namespace or "",
        name=revocation.metadata.name or "",
        status=status_patch(revocation.status, after),
    )
    revocation.status = Revocation.from_body(written).status


async def set_pending(api: Any, body: Any, revocation: Revocation, reason: str, message: str) -> None:
    """Phase Pending with ``reason``: written when reason or message changed, an Event on a new reason."""
    status = revocation.status
    if is_pending_for(status, reason, message):
        return
    ready = ready_condition(status)
    after = not_ready_status(
        revocation, body.get("metadata") or {}, RevocationPhase.PENDING, reason, message, utc_now()
    )
    await patch_status(
        api,
        Revocation.PLURAL,
        namespace=revocation.metadata.namespace or "",
        name=revocation.metadata.name or "",
        status=status_patch(status, after),
    )
    if ready is None or ready.reason != reason:
        await post_pending(api, body, message)


async def set_failed(api: Any, body: Any, revocation: Revocation, reason: str, message: str) -> None:
    """Phase Failed for good: the Revocation is not looked at again."""
    after = not_ready_status(
        revocation, body.get("metadata") or {}, RevocationPhase.FAILED, reason, message, utc_now()
    )

    async def announce() -> None:
        await post_failed(api, body, revocation, message)
        audit_line(
            revocation, after, None, outcome="failed", listed_now=False, failure=f"{reason}: {message}"
        )

    await settle(api, revocation, after, announce)


async def follow_up(
    context: OperatorContext,
    body: Any,
    revocation: Revocation,
    key: IssuerKey,
    entry: RevokedCertificate,
    crl_number: int | None,
    logger: Any,
) -> None:
    """The ManagedCertificate shows the revocation, is reissued if asked, and subscribers hear of it."""
    api = context.api
    namespace = revocation.metadata.namespace or ""
    certificate_name = revocation.spec.certificate_ref.name
    serial = entry.serial_number
    then = (
        "a new certificate with a new key is requested"
        if revocation.spec.reissue
        else "it stays revoked (reissue: false) until someone renews it"
    )
    message = (
        f"certificate serial {serial} was revoked ({entry.reason.value}) "
        f"by Revocation {revocation.metadata.name}; {then}"
    )
    marked = await mark_certificate_revoked(api, namespace, certificate_name, serial, message, utc_now)
    if marked is not None:
        await post_certificate_revoked(api, marked, serial, message)
    if revocation.spec.reissue and await request_reissue(api, namespace, certificate_name, serial):
        logger.info("asked for a new certificate for ManagedCertificate %s/%s", namespace, certificate_name)
    certificate_body = marked or await get_object(
        api, ManagedCertificate.PLURAL, namespace=namespace, name=certificate_name
    )
    if certificate_body is not None:
        await notify_revoked(api, certificate_body, revocation, key, entry, crl_number)
