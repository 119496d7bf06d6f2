"""Kopf glue for Revocations: from the request to a serial on its issuer's CRL.

Every Revocation that is neither Revoked nor Failed has a daemon (a task of
this process, started again after a restart: the status decides, not memory).
The daemon looks at the Revocation until it settles:

1. Resolve: which serial, which issuer (:func:`policy.revocation.resolve_target`).
   A certificate not issued yet, a missing issuer or a CA not ready keep it
   Pending, looked at again with backoff and whenever the certificate
   changes. Self-signed certificates fail at once.
2. Persist the resolved serial and issuer in the Revocation's status, so a
   restart never resolves again (the certificate may have been reissued).
3. Record: one guarded write of the issuer's revocation list and CRL number
   (:func:`kube.revocation_store.record_revocation`, which checks the journal
   in the issuer's status and the archive shard of the serial); idempotent.
4. Publish the CRL that lists it (ConfigMap and HTTP).
5. Show it on the ManagedCertificate (revoked, revokedSerialNumbers, Ready
   False), ask for a reissue when ``spec.reissue``, create Revoked
   NotificationEvents for subscribed channels.
6. Write phase Revoked, post an Event, log one audit line.

Each step is safe to repeat, and the status is written last, so an operator
killed anywhere in between finishes the job after its restart without listing
anything twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import kopf
from cryptography.exceptions import InvalidSignature

from certctl_operator import API_GROUP, API_VERSION, metrics
from certctl_operator.api import (
    CertificateEventType,
    ConditionStatus,
    ConditionType,
    IssuerReference,
    IssuerType,
    ManagedCertificate,
    Revocation,
    RevocationPhase,
    RevocationStatus,
    RevokedCertificate,
    set_condition,
    status_patch,
)
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.pausing import pause
from certctl_operator.handlers.pki_publishing import publish_state, utcnow
from certctl_operator.kube.crl_publisher import state_of
from certctl_operator.kube.notification_events import (
    LABEL_CERTIFICATE,
    LABEL_CHANNEL,
    LABEL_EVENT_TYPE,
    ensure_notification_event,
)
from certctl_operator.kube.revocation_store import (
    ISSUER_KIND_ANNOTATION,
    ISSUER_NAME_ANNOTATION,
    IssuerGone,
    get_certificate,
    get_issuer,
    get_revocation,
    issuer_class,
    issuer_kind_of,
    load_ca,
    lookup_revoked,
    mark_certificate_revoked,
    patch_revocation_status,
    read_secret,
    record_revocation,
    request_reissue,
    secret_text,
)
from certctl_operator.logs import AUDIT_LOGGER, REF_ATTRIBUTE, object_ref
from certctl_operator.pki import PKIError, load_certificates
from certctl_operator.pki.inspect import summarize_certificate
from certctl_operator.policy.renewal import object_name
from certctl_operator.policy.revocation import (
    CurrentCertificate,
    IssuerKey,
    IssuerView,
    Outcome,
    Resolution,
    RevocationListFull,
    issuer_notification,
    normalize_serial,
    pending_retry_delay,
    requested_by,
    resolve_target,
    severity_of,
)
from certctl_operator.web.pki_state import registry_of

audit = logging.getLogger(AUDIT_LOGGER)

SETTLED = (RevocationPhase.REVOKED.value, RevocationPhase.FAILED.value)


def as_body(body: Any) -> kopf.Body:
    """An object as Kopf's event posting takes it (a plain dict from the API client works alike)."""
    return cast(kopf.Body, body)


def _unsettled(status: Any, **_: Any) -> bool:
    return (status or {}).get("phase") not in SETTLED


# Stopping is graceful (the loop checks ``stopped``); a cancel only comes after the backoff.
@kopf.daemon(
    API_GROUP,
    API_VERSION,
    Revocation.PLURAL,
    id="revoke",
    when=_unsettled,
    cancellation_backoff=30.0,
    cancellation_timeout=10.0,
)
async def revoke(
    body: kopf.Body,
    name: str,
    namespace: str | None,
    memo: Any,
    logger: Any,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    context: OperatorContext = memo.context
    namespace = namespace or ""
    certificate = str(((body.get("spec") or {}).get("certificateRef") or {}).get("name", ""))
    looks = 0
    with registry_of(context).waiting_for(namespace, certificate) as wake:
        while not stopped:
            wake.clear()
            try:
                if await process_revocation(context, namespace, name, logger):
                    return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("Revocation %s/%s: %s; trying again", namespace, name, error, exc_info=True)
            await pause(stopped, pending_retry_delay(looks).total_seconds(), wake)
            looks += 1


# --------------------------------------------------------------------------- the steps


async def process_revocation(context: OperatorContext, namespace: str, name: str, logger: Any) -> bool:
    """Take one Revocation as far as it goes now; True once it is settled (Revoked or Failed)."""
    api = context.api
    body = await get_revocation(api, namespace, name)
    if body is None:
        return True
    revocation = Revocation.from_body(body)
    if revocation.status.phase in (RevocationPhase.REVOKED, RevocationPhase.FAILED):
        return True
    status = revocation.status
    if status.serial_number and status.issuer_ref is not None:
        serial, key, not_after = (
            status.serial_number,
            IssuerKey.of(status.issuer_ref, namespace),
            status.not_after,
        )
    else:
        resolution = await resolve(context, namespace, revocation)
        if resolution.outcome is Outcome.PENDING:
            await set_pending(api, body, revocation, resolution.reason, resolution.message)
            return False
        if resolution.outcome is Outcome.FAILED:
            await set_failed(api, body, revocation, resolution.reason, resolution.message)
            return True
        assert resolution.serial is not None and resolution.issuer is not None
        serial, key, not_after = resolution.serial, resolution.issuer, resolution.not_after
        await persist_target(api, body, revocation, serial, key, not_after)

    registry = registry_of(context)
    issuer_body = await get_issuer(api, key)
    if issuer_body is None:
        await set_pending(api, body, revocation, "IssuerNotFound", f"the issuer {key.label} does not exist")
        return False
    issuer = issuer_class(key).from_body(issuer_body)
    if issuer.spec.acme is not None:
        # Imported here: that module builds on this one's steps.
        from certctl_operator.handlers.acme_revocation import revoke_at_acme_ca

        return await revoke_at_acme_ca(context, body, revocation, key, issuer.spec, serial, not_after, logger)
    if issuer.spec.ca is None:
        await set_failed(
            api,
            body,
            revocation,
            "SelfSignedNotRevocable",
            f"the issuer {key.label} is not a ca issuer (any more)",
        )
        return True
    state = registry.issuer(key)
    ca = await load_ca(
        api, context.settings, key, issuer, utcnow(), cached=(state.authority_version, state.authority)
    )
    if ca.authority is None:
        message = f"the CA of issuer {key.label} cannot sign a CRL: {ca.problem}"
        await set_pending(api, body, revocation, "IssuerNotReady", message)
        return False
    authority = ca.authority

    entry = RevokedCertificate(
        serial_number=serial, revoked_at=utcnow(), reason=revocation.spec.reason, not_after=not_after
    )
    # Recorded without the issuer's lock (the guarded write orders concurrent revocations), published
    # under it: a revocation that waited for the lock publishes the newest CRL, which also lists the
    # revocations recorded meanwhile, so a burst of them costs a few signatures, not one each.
    try:
        recorded = await record_revocation(
            api,
            context.settings,
            key,
            entry,
            utcnow,
            floor=lambda: state.published_number,
            archived=state.add_archived,
        )
    except IssuerGone as error:
        await set_pending(api, body, revocation, "IssuerNotFound", str(error))
        return False
    except RevocationListFull as error:
        await set_pending(api, body, revocation, "RevocationListFull", str(error))
        return False
    listed = issuer_class(key).from_body(recorded.issuer_body)
    registry.update_revoked(key, listed.status)
    async with state.lock:
        try:
            newest_body = await get_issuer(api, key) or recorded.issuer_body
            newest = issuer_class(key).from_body(newest_body)
            registry.update_revoked(key, newest.status)
            await publish_state(context, key, newest_body, authority, state_of(newest.status))
        except Exception as error:  # the issuer's daemon publishes it on its next look
            logger.warning("issuer %s: the CRL listing %s is not published yet: %s", key.label, serial, error)
    if recorded.newly_listed:
        metrics.revocations_total.labels(reason=revocation.spec.reason.value).inc()
        logger.info("serial %s listed on the revocation list of issuer %s", serial, key.label)

    crl_number = (
        recorded.entry.crl_number if recorded.entry.crl_number is not None else listed.status.crl_number
    )
    await follow_up(context, body, revocation, key, recorded.entry, crl_number, logger)

    notified, notified_reason = issuer_notification(IssuerType.CA)
    requester, source = requested_by(body.get("metadata") or {})
    after = revocation.status.model_copy(deep=True)
    after.phase = RevocationPhase.REVOKED
    after.serial_number = recorded.entry.serial_number
    after.issuer_ref = key.reference
    after.revoked_at = recorded.entry.revoked_at
    after.not_after = recorded.entry.not_after
    after.crl_number = crl_number
    after.issuer_notified = notified
    after.issuer_notified_reason = notified_reason
    after.requested_by, after.requested_by_source = requester, source
    after.observed_generation = revocation.metadata.generation
    message = (
        f"serial {recorded.entry.serial_number} is revoked ({recorded.entry.reason.value}) "
        f"on the CRL of issuer {key.label}, first listed in CRL number {crl_number}"
    )
    if not recorded.newly_listed:
        message += (
            "; the serial was already listed (by an earlier attempt of this Revocation or by another "
            "Revocation), so nothing was listed twice"
        )
    after.conditions = set_condition(
        after.conditions,
        ConditionType.READY,
        ConditionStatus.TRUE,
        "Revoked",
        message,
        now=utcnow(),
        observed_generation=revocation.metadata.generation,
    )

    def announce() -> None:
        kopf.info(as_body(body), reason="Revoked", message=message)
        audit_line(revocation, after, key, outcome="revoked", listed_now=recorded.newly_listed)

    await settle(api, revocation, after, announce)
    return True


_settling: set[asyncio.Task[None]] = set()


async def settle(
    api: Any, revocation: Revocation, after: RevocationStatus, announce: Callable[[], None]
) -> None:
    """Write the final status (Revoked or Failed), then post its Event and audit line.

    Shielded: that write ends the daemon (Kopf stops it once it sees the phase,
    possibly before the write's own response has arrived here), and the
    Event and audit line must not be cut off by that.
    """

    async def run() -> None:
        await patch_revocation_status(
            api,
            revocation.metadata.namespace or "",
            revocation.metadata.name or "",
            status_patch(revocation.status, after),
        )
        announce()

    task = asyncio.ensure_future(run())
    _settling.add(task)
    task.add_done_callback(_settling.discard)
    await asyncio.shield(task)


async def resolve(context: OperatorContext, namespace: str, revocation: Revocation) -> Resolution:
    """Find what ``revocation`` revokes: the certificate in its ManagedCertificate's Secret now."""
    api, settings = context.api, context.settings
    certificate_name = revocation.spec.certificate_ref.name
    certificate_body = await get_certificate(api, namespace, certificate_name)
    if certificate_body is None:
        return resolve_target(
            certificate_name=certificate_name,
            certificate_exists=False,
            secret_name=None,
            current=None,
            issuer=None,
            revoked_serials=(),
            created_at=revocation.metadata.creation_timestamp,
        )
    certificate = ManagedCertificate.from_body(certificate_body)
    secret_name = certificate.spec.secret_name
    secret = await read_secret(api, namespace, secret_name)
    annotations = (secret.metadata.annotations or {}) if secret is not None else {}
    pem = secret_text(secret, "tls.crt") if secret is not None else None

    # The issuer that signed what is in the Secret (its annotations say), else the one asked for.
    if annotations.get(ISSUER_NAME_ANNOTATION):
        ref = IssuerReference(
            name=annotations[ISSUER_NAME_ANNOTATION],
            kind=issuer_kind_of(annotations.get(ISSUER_KIND_ANNOTATION)),
        )
    else:
        ref = certificate.status.issuer_ref or certificate.spec.issuer_ref
    key = IssuerKey.of(ref, namespace)

    leaf = None
    if pem:
        try:
            leaf = load_certificates(pem, f"tls.crt of Secret {secret_name}")[0]
        except PKIError:
            leaf = None

    view: IssuerView
    issuer_body = await get_issuer(api, key)
    issued_by_ca = False
    if issuer_body is None:
        view = IssuerView(key, None)
    else:
        issuer = issuer_class(key).from_body(issuer_body)
        if issuer.spec.acme is not None:
            # The ACME CA itself refuses a certificate that is not its own when asked to revoke it.
            view, issued_by_ca = IssuerView(key, IssuerType.ACME), True
        elif issuer.spec.ca is None:
            view = IssuerView(key, IssuerType.SELF_SIGNED)
        else:
            state = registry_of(context).issuer(key)
            ca = await load_ca(
                api, settings, key, issuer, utcnow(), cached=(state.authority_version, state.authority)
            )
            if ca.authority is not None and leaf is not None:
                try:
                    leaf.verify_directly_issued_by(ca.authority.certificate)
                    issued_by_ca = True
                except (ValueError, TypeError, InvalidSignature):
                    issued_by_ca = False
            earlier = await lookup_revoked(
                api, settings, key, issuer_body, certificate.status.revoked_serial_numbers or ()
            )
            view = IssuerView(key, IssuerType.CA, ca.problem, tuple(earlier))

    current = None
    if leaf is not None:
        summary = summarize_certificate(leaf)
        current = CurrentCertificate(
            serial=normalize_serial(summary.serial),
            not_after=summary.not_after,
            self_signed=summary.self_signed,
            issued_by_issuer_ca=issued_by_ca,
        )
    return resolve_target(
        certificate_name=certificate_name,
        certificate_exists=True,
        secret_name=secret_name,
        current=current,
        issuer=view,
        revoked_serials=certificate.status.revoked_serial_numbers or (),
        created_at=revocation.metadata.creation_timestamp,
    )


async def persist_target(
    api: Any, body: Any, revocation: Revocation, serial: str, key: IssuerKey, not_after: datetime | None
) -> None:
    """Write the resolved serial and issuer before touching the issuer: a restart then keeps them."""
    after = revocation.status.model_copy(deep=True)
    after.phase = RevocationPhase.PENDING
    after.serial_number = serial
    after.issuer_ref = key.reference
    after.not_after = not_after
    after.requested_by, after.requested_by_source = requested_by(body.get("metadata") or {})
    after.observed_generation = revocation.metadata.generation
    after.conditions = set_condition(
        after.conditions,
        ConditionType.READY,
        ConditionStatus.FALSE,
        "Revoking",
        f"revoking serial {serial} on the CRL of issuer {key.label}",
        now=utcnow(),
        observed_generation=revocation.metadata.generation,
    )
    written = await patch_revocation_status(
        api,
        revocation.metadata.namespace or "",
        revocation.metadata.name or "",
        status_patch(revocation.status, after),
    )
    revocation.status = Revocation.from_body(written).status


def not_ready_status(
    body: Any, revocation: Revocation, phase: RevocationPhase, reason: str, message: str
) -> RevocationStatus:
    """The Revocation's status in ``phase`` with Ready=False for ``reason``."""
    after = revocation.status.model_copy(deep=True)
    after.phase = phase
    after.requested_by, after.requested_by_source = requested_by(body.get("metadata") or {})
    after.observed_generation = revocation.metadata.generation
    after.conditions = set_condition(
        after.conditions,
        ConditionType.READY,
        ConditionStatus.FALSE,
        reason,
        message,
        now=utcnow(),
        observed_generation=revocation.metadata.generation,
    )
    return after


async def set_pending(api: Any, body: Any, revocation: Revocation, reason: str, message: str) -> None:
    """Phase Pending with ``reason``: written when reason or message changed, an Event on a new reason."""
    status = revocation.status
    ready = next((c for c in status.conditions if c.type == ConditionType.READY), None)
    if (
        status.phase is RevocationPhase.PENDING
        and ready is not None
        and (ready.reason, ready.message) == (reason, message)
    ):
        return
    after = not_ready_status(body, revocation, RevocationPhase.PENDING, reason, message)
    await patch_revocation_status(
        api, revocation.metadata.namespace or "", revocation.metadata.name or "", status_patch(status, after)
    )
    if ready is None or ready.reason != reason:
        kopf.info(as_body(body), reason="Pending", message=message)


async def set_failed(api: Any, body: Any, revocation: Revocation, reason: str, message: str) -> None:
    """Phase Failed for good: the Revocation is not looked at again."""
    after = not_ready_status(body, revocation, RevocationPhase.FAILED, reason, message)

    def announce() -> None:
        kopf.warn(as_body(body), reason="RevocationFailed", message=message)
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
    marked = await mark_certificate_revoked(api, namespace, certificate_name, serial, message, utcnow)
    if marked is not None:
        kopf.warn(as_body(marked), reason="Revoked", message=message)
    if revocation.spec.reissue and await request_reissue(api, namespace, certificate_name, serial):
        logger.info("asked for a new certificate for ManagedCertificate %s/%s", namespace, certificate_name)
    certificate_body = marked or await get_certificate(api, namespace, certificate_name)
    if certificate_body is not None:
        await announce(api, certificate_body, revocation, key, entry, crl_number)


async def announce(
    api: Any,
    certificate_body: dict[str, Any],
    revocation: Revocation,
    key: IssuerKey,
    entry: RevokedCertificate,
    crl_number: int | None,
) -> int:
    """One Revoked NotificationEvent per subscribed channel, named after the serial (so never twice)."""
    certificate = ManagedCertificate.from_body(certificate_body)
    settings = certificate.spec.notifications
    if settings is None or CertificateEventType.REVOKED not in settings.events:
        return 0
    namespace = certificate.metadata.namespace or ""
    name = certificate.metadata.name or ""
    reason = entry.reason.value
    details = {
        "serialNumber": entry.serial_number,
        "reason": reason,
        "issuer": key.label,
        "issuerKind": key.kind.value,
        "revocation": revocation.metadata.name or "",
        "revokedAt": entry.revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reissue": str(revocation.spec.reissue).lower(),
    }
    if crl_number is not None:
        details["crlNumber"] = str(crl_number)
    created = 0
    for channel in settings.channels:
        spec = {
            "type": "Revoked",
            "channelRef": {"name": channel},
            "certificateRef": {"name": name},
            "severity": severity_of(entry.reason),
            "subject": f"Certificate {namespace}/{name} revoked ({reason})",
            "message": (
                f"The certificate with serial number {entry.serial_number} of ManagedCertificate "
                f"{namespace}/{name} was revoked with reason {reason} by Revocation "
                f"{revocation.metadata.name}. It is listed on the CRL of issuer {key.label}"
                + (f" from CRL number {crl_number} on" if crl_number is not None else "")
                + "."
            ),
            "details": details,
        }
        labels = {
            LABEL_CERTIFICATE: object_name(name, max_length=63),
            LABEL_EVENT_TYPE: "Revoked",
            LABEL_CHANNEL: object_name(channel, max_length=63),
        }
        event_name = object_name(name, "revoked", entry.serial_number, channel)
        if await ensure_notification_event(
            api, namespace, event_name, spec, labels=labels, owner=certificate_body
        ):
            created += 1
    return created


def audit_line(
    revocation: Revocation,
    status: RevocationStatus,
    key: IssuerKey | None,
    *,
    outcome: str,
    listed_now: bool,
    failure: str | None = None,
) -> None:
    """The audit record of one Revocation: who asked (as far as the API tells), what, when, result."""
    facts: dict[str, Any] = {
        "logger": AUDIT_LOGGER,
        "audit_event": "certificate_revocation",
        "outcome": outcome,
        "revocation": f"{revocation.metadata.namespace}/{revocation.metadata.name}",
        "revocation_uid": revocation.metadata.uid,
        "certificate": f"{revocation.metadata.namespace}/{revocation.spec.certificate_ref.name}",
        "requested_by": status.requested_by,
        "requested_by_source": status.requested_by_source.value if status.requested_by_source else None,
        "reason": revocation.spec.reason.value,
        "reason_code": revocation.spec.reason.code,
        "serial_number": status.serial_number,
        "issuer": key.label if key is not None else None,
        "issuer_kind": key.kind.value if key is not None else None,
        "revoked_at": status.revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ") if status.revoked_at else None,
        "crl_number": status.crl_number,
        "listed_now": listed_now,
        "reissue": revocation.spec.reissue,
        "comment": revocation.spec.comment,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if failure is not None:
        facts["failure"] = failure
    facts[REF_ATTRIBUTE] = object_ref(
        {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": Revocation.KIND,
            "metadata": {
                "name": revocation.metadata.name,
                "namespace": revocation.metadata.namespace,
                "uid": revocation.metadata.uid,
            },
        }
    )
    source = "field manager" if facts["requested_by_source"] == "FieldManager" else "annotation"
    who = f"{status.requested_by} ({source})" if status.requested_by else "unknown"
    if outcome == "revoked":
        audit.info(
            "revocation %s: serial %s revoked, reason %s, issuer %s, CRL number %s, requested by %s",
            facts["revocation"],
            facts["serial_number"],
            facts["reason"],
            facts["issuer"],
            facts["crl_number"],
            who,
            extra=facts,
        )
    else:
        audit.warning(
            "revocation %s: not revoked (%s), reason %s, requested by %s",
            facts["revocation"],
            failure,
            facts["reason"],
            who,
            extra=facts,
        )
