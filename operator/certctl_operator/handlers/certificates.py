"""ManagedCertificate: issue into a kubernetes.io/tls Secret, keep it matching, renew it on time.

The watch handlers only keep the bodies they are given and queue keys (see
``issuance_runtime``); :func:`reconcile` takes the certificate, its Secret and
its issuer as last seen (read afresh after a conflict or failure), lets
``policy.issuance.decide`` pick one action and carries it out:

* **Issue**: sign, write the Secret (annotated with the revision and serial it
  holds), announce it (an Event and NotificationEvents whose names are fixed
  by the revision, so announcing twice is a no-op), then record it in the
  status.
* **Adopt**: a Secret one revision ahead of the status was written by an
  operator that died before recording it: record it, do not issue again.
* **Conflict**: the Secret is not this certificate's to write (a Secret the
  operator did not write, or one another certificate holds): Ready=False
  SecretConflict, the Secret untouched. The Secret is then watched, and the
  other certificates naming the same Secret wake this one when they let go of
  it, so it proceeds as soon as the conflict is gone.
* **None**, **Wait**, **Invalid**, **Revoked**: write the status that says so.

Every path ends by scheduling the certificate's next action from its status.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from datetime import datetime, timedelta
from typing import Any

import kopf
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from certctl_operator import API_GROUP
from certctl_operator.api import (
    CertificateEventType,
    ConditionStatus,
    ConditionType,
    IssuerKind,
    IssuerReference,
    ManagedCertificate,
    ManagedCertificateStatus,
    find_condition,
    status_patch,
)
from certctl_operator.handlers.acme import is_acme, issue_acme
from certctl_operator.handlers.issuance_runtime import (
    CERTIFICATE,
    IssuanceRuntime,
    Key,
    issuer_key,
    reconciler,
    runtime,
    watched_body,
)
from certctl_operator.handlers.pki_publishing import record_issued_serial
from certctl_operator.kube.events import NORMAL, WARNING, event_name, post_event
from certctl_operator.kube.notification_events import (
    LABEL_CERTIFICATE,
    LABEL_CHANNEL,
    LABEL_EVENT_TYPE,
    ensure_notification_event,
)
from certctl_operator.kube.objects import get_object, patch_metadata, patch_status
from certctl_operator.kube.secret_watch import secret_watcher
from certctl_operator.kube.secrets import (
    apply_secret,
    create_secret,
    created_fields,
    delete_secret,
    read_secret,
    snapshot,
)
from certctl_operator.metrics import (
    certificate_active,
    certificate_expiration_timestamp,
    certificate_expired,
    certificate_expiring_soon,
    certificate_not_before_timestamp,
    certificate_ready_status,
    certificate_renewal_timestamp,
    certificate_revoked,
    certificate_total,
    expiry_alerts_total,
    issuance_duration_seconds,
    issuance_failures_total,
    issuance_total,
)
from certctl_operator.pki import (
    KeyAlgorithm,
    PKIError,
    generate_private_key,
    generate_private_key_async,
    issue_certificate,
    planned_not_after,
    private_key_to_pem,
    random_serial,
)
from certctl_operator.policy.clock import format_rfc3339
from certctl_operator.policy.issuance import (
    ANNOTATION_CERTIFICATE_NAME,
    LABEL_MANAGED_BY_CERTIFICATE,
    Action,
    CertificateFacts,
    Decision,
    Reason,
    SecretExamination,
    build_request,
    current_serial_revoked,
    decide,
    desired_annotations,
    desired_labels,
    examine_secret,
    expiry_notice_due,
    key_encoding_for,
    key_spec_for,
    metadata_differs,
    name_constraint_violations,
    next_action_time,
    other_owner,
    ready_condition,
    ready_transition,
    request_hash,
    secret_conflict,
    serial_hex,
    spec_error_message,
    spec_problems,
    status_after_failure,
    status_after_issuance,
    status_conflict_waiting,
    status_in_sync,
    status_invalid,
    status_revoked,
    status_unreadable,
    subscribed_channels,
    with_notified,
)
from certctl_operator.policy.issuers import SECRET_TYPE_TLS, SecretSnapshot
from certctl_operator.policy.renewal import expiry_event_name, notification_event_name, object_name
from certctl_operator.workqueue import Requeue

logger = logging.getLogger("certctl.issuance")

FINALIZER = f"{API_GROUP}/delete-secret"
"""Held only by certificates with ``deleteSecretOnDeletion: true``, until their Secret is deleted."""

PLURAL = "managedcertificates"
EXPIRING_SOON = timedelta(days=30)


class Conflict(Requeue):
    """An object changed under a write; the reconcile starts over from fresh reads."""


# --------------------------------------------------------------------------- watch handlers


@kopf.on.event(API_GROUP, PLURAL)
async def certificate_event(
    type: str | None, event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any
) -> None:
    rt = runtime(memo)
    key = Key(CERTIFICATE, body.metadata.namespace or "", body.metadata.name or "")
    if type == "DELETED":
        certificate_gone(rt, key)
        # A reconcile under way may still export the certificate's series (or keep a body it read
        # just before); the next one reads, finds it gone and removes them again (the queue runs it
        # after the one under way).
        rt.read_afresh.add(key)
        rt.queue.add(key)
        return
    # Kept as delivered (never changed in place): the next reconcile starts from it.
    rt.certificate_bodies[key] = watched_body(event["object"])
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


@kopf.on.event("v1", "secrets", labels={LABEL_MANAGED_BY_CERTIFICATE: kopf.PRESENT})
async def secret_event(type: str | None, event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    rt = runtime(memo)
    location = (body.metadata.namespace or "", body.metadata.name or "")
    own = rt.own_secret_writes.get(location) == body.metadata.get("resourceVersion")
    # DELETED also when the Secret lost the label: then it is not one of the operator's any more.
    rt.secret_seen(location, None if type == "DELETED" else snapshot(event["object"]))
    if type == "DELETED":
        rt.own_secret_writes.pop(location, None)
        own = False
    owner = body.metadata.annotations.get(ANNOTATION_CERTIFICATE_NAME)
    if owner and not own:
        rt.queue.add(Key(CERTIFICATE, location[0], owner))
    # A certificate's Secret may be the CA of issuers (a CA made by the operator itself).
    for issuer in rt.issuers_by_secret.get(location, ()):
        rt.queue.add(issuer)


def certificate_gone(rt: IssuanceRuntime, key: Key) -> None:
    rt.forget(key)
    rt.track_certificate(key, None)
    for other in rt.track_secret_claim(key, None):
        rt.queue.add(other)
    secret_watcher(rt.context).forget(key)
    labels = rt.certificate_metrics.pop(key, None)
    if labels is not None:
        _remove_series(labels[0])


# --------------------------------------------------------------------------- reconcile


@reconciler(CERTIFICATE)
async def reconcile(rt: IssuanceRuntime, key: Key) -> None:
    fresh = key in rt.read_afresh
    try:
        await _reconcile(rt, key, fresh=fresh)
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


async def _reconcile(rt: IssuanceRuntime, key: Key, *, fresh: bool) -> None:
    body = await rt.certificate_body(key, fresh=fresh)
    if body is None:
        certificate_gone(rt, key)
        return
    rt.remember_uid(key, body)
    if body["metadata"].get("deletionTimestamp"):
        await _finalize(rt, key, body)
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
            await patch_status(rt.api, PLURAL, key.name, key.namespace, patch, version)
        return
    body, cert = await _sync_finalizer(rt, key, body, cert)

    settings = rt.settings
    now = rt.now()
    namespace = key.namespace
    problems = spec_problems(cert.spec, namespace, settings.minimum_certificate_duration)
    issuer = None if problems else await rt.issuer_view(cert.spec.issuer_ref, namespace, fresh=False)
    secret = await rt.secret(namespace, cert.spec.secret_name, fresh=fresh)
    conflict = secret_conflict(
        secret,
        certificate_name=key.name,
        owner_claims_it=await _claimed_by_other(rt, key, cert, secret),
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
    _watch_secret_while_conflicting(rt, key, cert, decision.conflict)

    if decision.action is Action.ISSUE:
        await _issue(rt, key, body, cert, exam, secret, decision)
        return
    if decision.action is Action.ADOPT:
        await _adopt(rt, key, body, cert, exam, decision)
        return
    if decision.action is Action.CONFLICT:
        assert decision.conflict is not None
        await _fail(rt, key, body, cert, decision, Reason.SECRET_CONFLICT, decision.conflict)
        return
    if decision.action is Action.NONE:
        status = status_in_sync(cert, exam, now=now)
        assert secret is not None
        await _repair_metadata(rt, key, cert, secret, exam, request)
    elif decision.action is Action.INVALID:
        status = status_invalid(cert, decision.message, now=now)
        if _invalid_transition(cert.status, status):
            await post_event(
                rt.api, body, event_type=WARNING, reason=Reason.INVALID_SPEC, message=decision.message
            )
            logger.warning("spec cannot be issued: %s", decision.message, extra=rt.log_extra(key))
    elif decision.action is Action.REVOKED:
        status = status_revoked(cert, now=now)
    elif decision.conflict is not None:  # Action.WAIT with the Secret still in the way.
        status = status_conflict_waiting(cert, decision.conflict, now=now)
    else:  # Action.WAIT: the failure status already says what is pending and when.
        status = cert.status
    status = await _announce_expiry(rt, key, body, cert, status, now)
    await _finish(rt, key, body, cert, status)


async def _finish(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    status: ManagedCertificateStatus,
) -> None:
    """Write ``status`` when it changed, refresh the metrics, schedule the next action."""
    await _write_status(rt, key, body, cert, status)
    after = cert.model_copy(update={"status": status})
    _update_metrics(rt, key, after)
    rt.queue.schedule(key, next_action_time(after, rt.now()))


async def _write_status(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    status: ManagedCertificateStatus,
) -> None:
    patch = status_patch(cert.status, status)
    if not patch:
        return
    try:
        result = await patch_status(
            rt.api, PLURAL, key.name, key.namespace, patch, body["metadata"].get("resourceVersion")
        )
    except ApiException as error:
        if error.status == 409:
            raise Conflict from None
        raise
    rt.own_writes[key] = result["metadata"]["resourceVersion"]
    rt.certificate_written(key, body, result)


# --------------------------------------------------------------------------- issuance


async def _issue(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    exam: SecretExamination,
    secret: SecretSnapshot | None,
    decision: Decision,
) -> None:
    started = time.monotonic()
    namespace = key.namespace
    spec = cert.spec
    issuer_kind = spec.issuer_ref.kind.value
    # Sign with what the issuer is now, not with a cached verdict.
    issuer = await rt.issuer_view(spec.issuer_ref, namespace, fresh=True)
    if not issuer.check.ready:
        # An issuer that exists but cannot be read (an invalid stored spec) is not ready, not missing.
        missing = issuer.check.reason == Reason.ISSUER_NOT_FOUND
        reason = Reason.ISSUER_NOT_FOUND if missing else Reason.ISSUER_NOT_READY
        await _fail(rt, key, body, cert, decision, reason, issuer.check.message)
        if issuer.found:
            rt.queue.add(issuer_key(spec.issuer_ref, namespace))
        return
    request = build_request(spec, namespace, issuer, rt.settings.public_base_url)
    if issuer.authority is not None:
        authority = issuer.authority
        forbidden = name_constraint_violations(request, [authority.certificate, *authority.chain])
        if forbidden:
            await _fail(rt, key, body, cert, decision, Reason.NAME_CONSTRAINTS, "; ".join(forbidden))
            return
    key_spec = key_spec_for(spec)
    encoding = key_encoding_for(spec)
    signed_at = rt.now()
    chosen_serial = random_serial()
    # A CA issuer's serial is chosen first and recorded for OCSP while the key is generated and the
    # certificate signed: the writes of the serials of reconciles waiting meanwhile are shared, and
    # the serial is stored before the Secret is written, as always.
    recording: asyncio.Future[None] | None = None
    try:
        if issuer.authority is not None and not is_acme(issuer):
            recording = asyncio.ensure_future(
                record_issued_serial(
                    rt.context,
                    spec.issuer_ref,
                    namespace,
                    serial_hex(chosen_serial),
                    planned_not_after(request, issuer.authority, signed_at),
                )
            )
        if not decision.new_key and exam.key is not None:
            private_key = exam.key
        elif key_spec.algorithm is KeyAlgorithm.RSA:
            private_key = await generate_private_key_async(key_spec, rt.context.key_pool)
        else:
            # An elliptic-curve key takes well under a millisecond: less than a hop to another thread.
            private_key = generate_private_key(key_spec)
        if is_acme(issuer):
            ordered = await issue_acme(rt, key, body, cert, issuer, private_key)
            body, cert = ordered.body, ordered.cert
            if ordered.issued is None:
                await _fail(rt, key, body, cert, decision, ordered.reason, ordered.message)
                return
            issued = ordered.issued
        else:
            issued = await rt.off_loop(
                issue_certificate, request, private_key, issuer.authority, signed_at, chosen_serial
            )
        key_pem = private_key_to_pem(private_key, encoding)
    except BaseException as error:
        if recording is not None:
            recording.cancel()
            await asyncio.gather(recording, return_exceptions=True)
        if not isinstance(error, PKIError):
            raise
        await _fail(rt, key, body, cert, decision, Reason.ISSUANCE_FAILED, error.message)
        return

    assert decision.revision is not None
    serial = serial_hex(issued.serial)
    if recording is not None:
        await recording
    else:
        await record_issued_serial(rt.context, spec.issuer_ref, namespace, serial, issued.not_after)
    facts = CertificateFacts(
        revision=decision.revision,
        serial=serial,
        fingerprint=issued.fingerprint_sha256.lower(),
        not_before=issued.not_before,
        not_after=issued.not_after,
    )
    annotations = desired_annotations(
        cert,
        revision=facts.revision,
        serial=serial,
        hash_=request_hash(request, key_spec, encoding, spec.issuer_ref),
        renew_request=decision.renew_request,
    )
    contents: dict[str, Any] = {
        "secret_type": SECRET_TYPE_TLS,
        "labels": desired_labels(cert),
        "annotations": annotations,
        "data": {
            "tls.crt": issued.full_chain_pem.encode("ascii"),
            "tls.key": key_pem.encode("ascii"),
            "ca.crt": issued.ca_pem.encode("ascii"),
        },
    }
    try:
        if secret is None:
            # Create-only: a Secret that appeared meanwhile (another certificate naming it, its user)
            # fails this with 409 and the next reconcile finds out whose it is.
            written = await create_secret(rt.api, namespace, spec.secret_name, **contents)
        else:
            written = await apply_secret(
                rt.api,
                namespace,
                spec.secret_name,
                **contents,
                resource_version=secret.resource_version,
                hand_over=created_fields(secret),
            )
    except ApiException as error:
        if error.status == 409:
            raise Conflict from None
        if error.status in (400, 403, 422):
            await _fail(
                rt,
                key,
                body,
                cert,
                decision,
                Reason.ISSUANCE_FAILED,
                f"writing the Secret failed: {error.reason}",
            )
            return
        raise
    rt.own_secret_writes[(namespace, spec.secret_name)] = written.resource_version or ""
    rt.secret_written((namespace, spec.secret_name), secret, written)
    # Counted once the Secret holds it: a reconcile cut short after this adopts it, never issues again.
    issuance_total.labels(issuer_kind=issuer_kind, result="success").inc()
    issuance_duration_seconds.labels(issuer_kind=issuer_kind).observe(time.monotonic() - started)

    await _announce_issuance(rt, body, cert, facts, trigger=decision)
    status = status_after_issuance(cert, facts, renew_request=decision.renew_request, now=rt.now())
    await _finish(rt, key, body, cert, status)
    logger.info(
        "issued revision %d (serial %s, %s, valid until %s) into Secret %s",
        facts.revision,
        serial,
        decision.reason,
        format_rfc3339(facts.not_after),
        spec.secret_name,
        extra=rt.log_extra(key),
    )


async def _adopt(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    exam: SecretExamination,
    decision: Decision,
) -> None:
    assert exam.serial and exam.fingerprint and exam.not_before and exam.not_after
    assert decision.revision is not None
    facts = CertificateFacts(
        decision.revision, exam.serial, exam.fingerprint, exam.not_before, exam.not_after
    )
    await _announce_issuance(rt, body, cert, facts, trigger=None)
    status = status_after_issuance(cert, facts, renew_request=decision.renew_request, now=rt.now())
    await _finish(rt, key, body, cert, status)
    logger.info(
        "recorded revision %d (serial %s) found in Secret %s",
        facts.revision,
        facts.serial,
        cert.spec.secret_name,
        extra=rt.log_extra(key),
    )
    # Whatever else is due (a renewal, a label to restore) is looked at with the adopted status.
    rt.queue.add(key)


async def _fail(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    decision: Decision,
    reason: str,
    message: str,
) -> None:
    now = rt.now()
    settings = rt.settings
    status = status_after_failure(
        cert,
        reason=reason,
        message=message,
        trigger=decision.reason,
        trigger_message=decision.message,
        now=now,
        retry_base=settings.issuance_retry_base,
        retry_cap=settings.issuance_retry_cap,
    )
    issuer_kind = cert.spec.issuer_ref.kind.value
    issuance_total.labels(issuer_kind=issuer_kind, result="failure").inc()
    issuance_failures_total.labels(issuer_kind=issuer_kind, reason=reason).inc()
    if ready_transition(cert.status, status):
        await post_event(rt.api, body, event_type=WARNING, reason=reason, message=message)
        revision = (cert.status.revision or 0) + 1
        # Announced for renewals: a certificate in use is at stake (a first issuance has none yet).
        channels = subscribed_channels(cert, CertificateEventType.RENEWAL_FAILED) if revision > 1 else ()
        for channel in channels:
            await _notify(
                rt,
                body,
                cert,
                name=notification_event_name(key.name, "RenewalFailed", revision, channel),
                event_type=CertificateEventType.RENEWAL_FAILED,
                channel=channel,
                severity="warning",
                subject=f"Certificate {key.namespace}/{key.name}: issuing revision {revision} failed",
                message=f"{reason}: {message}. The operator keeps retrying with back-off.",
                details={"reason": reason, "attemptedRevision": str(revision)},
            )
    logger.warning(
        "issuance failed (%s): %s; next attempt at %s",
        reason,
        message,
        status.next_attempt_time and format_rfc3339(status.next_attempt_time),
        extra=rt.log_extra(key),
    )
    status = await _announce_expiry(rt, key, body, cert, status, now)
    await _finish(rt, key, body, cert, status)


async def _claimed_by_other(
    rt: IssuanceRuntime, key: Key, cert: ManagedCertificate, secret: SecretSnapshot | None
) -> bool:
    """Whether the other certificate the Secret was written for exists and still names it."""
    owner = other_owner(secret, key.name)
    if owner is None:
        return False
    other = await get_object(rt.api, PLURAL, owner, key.namespace)
    return other is not None and (other.get("spec") or {}).get("secretName") == cert.spec.secret_name


def _watch_secret_while_conflicting(
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


async def _repair_metadata(
    rt: IssuanceRuntime,
    key: Key,
    cert: ManagedCertificate,
    secret: SecretSnapshot,
    exam: SecretExamination,
    request: Any,
) -> None:
    """Put back labels and annotations the Secret lost while keeping its certificate."""
    assert exam.serial is not None
    spec = cert.spec
    labels = desired_labels(cert)
    annotations = desired_annotations(
        cert,
        revision=cert.status.revision or 0,
        serial=exam.serial,
        hash_=request_hash(request, key_spec_for(spec), key_encoding_for(spec), spec.issuer_ref),
        renew_request=cert.status.last_renew_request,
    )
    if not metadata_differs(secret, labels, annotations):
        return
    try:
        written = await apply_secret(
            rt.api,
            key.namespace,
            secret.name,
            secret_type=SECRET_TYPE_TLS,
            labels=labels,
            annotations=annotations,
            data={
                name: secret.data[name] for name in ("tls.crt", "tls.key", "ca.crt") if name in secret.data
            },
            resource_version=secret.resource_version,
            hand_over=created_fields(secret),
        )
    except ApiException as error:
        if error.status == 409:
            raise Conflict from None
        raise
    rt.own_secret_writes[(key.namespace, secret.name)] = written.resource_version or ""
    rt.secret_written((key.namespace, secret.name), secret, written)
    logger.info("restored the labels and annotations of Secret %s", secret.name, extra=rt.log_extra(key))


# --------------------------------------------------------------------------- announcements


async def _announce_issuance(
    rt: IssuanceRuntime,
    body: dict[str, Any],
    cert: ManagedCertificate,
    facts: CertificateFacts,
    *,
    trigger: Decision | None,
) -> None:
    """The Event and the notifications of a revision; their names make them exactly-once."""
    name = cert.metadata.name or ""
    renewed = facts.revision > 1
    kind = CertificateEventType.RENEWED if renewed else CertificateEventType.ISSUED
    previous = cert.status.serial_number
    message = (
        f"Revision {facts.revision} (serial {facts.serial}, valid until {format_rfc3339(facts.not_after)})"
    )
    if renewed and previous and previous != facts.serial:
        message += f" replaces serial {previous}"
    message += f" in Secret {cert.spec.secret_name}"
    if trigger is not None and trigger.reason:
        message += f"; {trigger.reason}: {trigger.message}"
    await post_event(
        rt.api,
        body,
        event_type=NORMAL,
        reason=kind.value,
        message=message,
        name=event_name(name, f"certctl-revision-{facts.revision}"),
    )
    for channel in subscribed_channels(cert, kind):
        await _notify(
            rt,
            body,
            cert,
            name=notification_event_name(name, kind.value, facts.revision, channel),
            event_type=kind,
            channel=channel,
            severity="info",
            subject=(
                f"Certificate {cert.metadata.namespace}/{name} {kind.value.lower()} "
                f"(revision {facts.revision})"
            ),
            message=message,
            details={
                "revision": str(facts.revision),
                "serialNumber": facts.serial,
                "notBefore": format_rfc3339(facts.not_before),
                "notAfter": format_rfc3339(facts.not_after),
                "fingerprintSHA256": facts.fingerprint,
            },
        )


async def _announce_expiry(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    status: ManagedCertificateStatus,
    now: datetime,
) -> ManagedCertificateStatus:
    """Create the expiry notice due now, if any, and remember the thresholds it answers for."""
    view = cert.model_copy(update={"status": status})
    notice = expiry_notice_due(view, now)
    if notice is None or status.not_after is None or not status.revision:
        return status
    expired = now >= status.not_after
    severity = "critical" if expired else "warning" if notice.threshold <= timedelta(days=7) else "info"
    remaining = status.not_after - now
    when = "has expired" if expired else f"expires in {_human(remaining)} (threshold {notice.threshold_text})"
    for channel in subscribed_channels(cert, CertificateEventType.EXPIRING):
        created = await _notify(
            rt,
            body,
            cert,
            name=expiry_event_name(key.name, status.revision, notice.threshold, channel),
            event_type=CertificateEventType.EXPIRING,
            channel=channel,
            severity=severity,
            subject=f"Certificate {key.namespace}/{key.name} {when}",
            message=(
                f"Certificate {key.namespace}/{key.name} (revision {status.revision}, serial "
                f"{status.serial_number}) {when}: notAfter is {format_rfc3339(status.not_after)}."
            ),
            details={
                "revision": str(status.revision),
                "serialNumber": status.serial_number or "",
                "notAfter": format_rfc3339(status.not_after),
                "threshold": notice.threshold_text,
            },
        )
        expiry_alerts_total.labels(
            channel=channel, threshold=notice.threshold_text, result="created" if created else "exists"
        ).inc()
    return with_notified(status, notice.crossed)


def _human(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


async def _notify(
    rt: IssuanceRuntime,
    body: dict[str, Any],
    cert: ManagedCertificate,
    *,
    name: str,
    event_type: CertificateEventType,
    channel: str,
    severity: str,
    subject: str,
    message: str,
    details: dict[str, str],
) -> bool:
    namespace = cert.metadata.namespace or ""
    spec = {
        "type": event_type.value,
        "channelRef": {"name": channel},
        "certificateRef": {"name": cert.metadata.name},
        "severity": severity,
        "subject": subject[:998],
        "message": message,
        "details": {
            "namespace": namespace,
            "certificate": cert.metadata.name or "",
            "secretName": cert.spec.secret_name,
            "issuer": f"{cert.spec.issuer_ref.kind.value}/{cert.spec.issuer_ref.name}",
            **details,
        },
    }
    labels = {
        LABEL_CERTIFICATE: object_name(cert.metadata.name or "", max_length=63),
        LABEL_EVENT_TYPE: event_type.value,
        LABEL_CHANNEL: object_name(channel, max_length=63),
    }
    return await ensure_notification_event(rt.api, namespace, name, spec, labels, owner=body)


# --------------------------------------------------------------------------- finalizer


async def _sync_finalizer(
    rt: IssuanceRuntime, key: Key, body: dict[str, Any], cert: ManagedCertificate
) -> tuple[dict[str, Any], ManagedCertificate]:
    """Hold the finalizer exactly while ``deleteSecretOnDeletion`` is true."""
    finalizers = list(body["metadata"].get("finalizers") or [])
    wanted = cert.spec.delete_secret_on_deletion
    if wanted == (FINALIZER in finalizers):
        return body, cert
    updated = [*finalizers, FINALIZER] if wanted else [f for f in finalizers if f != FINALIZER]
    try:
        result = await patch_metadata(
            rt.api,
            PLURAL,
            key.name,
            key.namespace,
            {"finalizers": updated},
            body["metadata"]["resourceVersion"],
        )
    except ApiException as error:
        if error.status == 409:
            raise Conflict from None
        raise
    rt.own_writes[key] = result["metadata"]["resourceVersion"]
    rt.certificate_written(key, body, result)
    return result, ManagedCertificate.from_body(result)


async def _finalize(rt: IssuanceRuntime, key: Key, body: dict[str, Any]) -> None:
    """A certificate being deleted: delete its Secret if it asked so, then let it go."""
    finalizers = list(body["metadata"].get("finalizers") or [])
    rt.queue.schedule(key, None)
    if FINALIZER not in finalizers:
        return
    secret_name = (body.get("spec") or {}).get("secretName")
    if secret_name:
        secret = await read_secret(rt.api, key.namespace, secret_name)
        if secret is not None and secret.annotations.get(ANNOTATION_CERTIFICATE_NAME) == key.name:
            await delete_secret(rt.api, key.namespace, secret_name, uid=secret.uid)
            logger.info("deleted Secret %s with its certificate", secret_name, extra=rt.log_extra(key))
    try:
        await patch_metadata(
            rt.api,
            PLURAL,
            key.name,
            key.namespace,
            {"finalizers": [f for f in finalizers if f != FINALIZER]},
            body["metadata"]["resourceVersion"],
        )
    except ApiException as error:
        if error.status == 409:
            raise Conflict from None
        if error.status != 404:
            raise


def _invalid_transition(before: ManagedCertificateStatus, after: ManagedCertificateStatus) -> bool:
    old, new = ready_condition(before), ready_condition(after)
    return ready_transition(before, after) or (
        old is not None and new is not None and old.message != new.message
    )


# --------------------------------------------------------------------------- metrics


def _labels(key: Key, cert: ManagedCertificate) -> dict[str, str]:
    return {
        "namespace": key.namespace,
        "name": key.name,
        "issuer_name": cert.spec.issuer_ref.name,
        "issuer_kind": cert.spec.issuer_ref.kind.value,
    }


def _remove_series(labels: dict[str, str]) -> None:
    values = tuple(labels.values())
    for gauge in (
        certificate_expiration_timestamp,
        certificate_renewal_timestamp,
        certificate_not_before_timestamp,
    ):
        with contextlib.suppress(KeyError):
            gauge.remove(*values)
    for condition in ConditionStatus:
        with contextlib.suppress(KeyError):
            certificate_ready_status.remove(*values, condition.value)


def _update_metrics(rt: IssuanceRuntime, key: Key, cert: ManagedCertificate) -> None:
    labels = _labels(key, cert)
    previous = rt.certificate_metrics.get(key)
    if previous is not None and previous[0] != labels:
        _remove_series(previous[0])
    status = cert.status
    if status.not_after is not None:
        certificate_expiration_timestamp.labels(**labels).set(status.not_after.timestamp())
    if status.not_before is not None:
        certificate_not_before_timestamp.labels(**labels).set(status.not_before.timestamp())
    if status.renewal_time is not None:
        certificate_renewal_timestamp.labels(**labels).set(status.renewal_time.timestamp())
    ready = find_condition(status.conditions, ConditionType.READY)
    current = ready.status if ready is not None else ConditionStatus.UNKNOWN
    for condition in ConditionStatus:
        certificate_ready_status.labels(**labels, condition=condition.value).set(
            1.0 if condition == current else 0.0
        )
    rt.certificate_metrics[key] = (
        labels,
        current == ConditionStatus.TRUE,
        status.not_after,
        current_serial_revoked(status),
    )


def install_aggregate_metrics(rt: IssuanceRuntime) -> None:
    """The certctl_certificate_* totals, computed when Prometheus scrapes."""
    facts = rt.certificate_metrics

    def count(predicate: Any) -> float:
        now = rt.now()
        return float(sum(1 for entry in list(facts.values()) if predicate(entry, now)))

    certificate_total.set_function(lambda: float(len(facts)))
    certificate_active.set_function(
        lambda: count(lambda e, now: e[1] and e[2] is not None and now < e[2] and not e[3])
    )
    certificate_expiring_soon.set_function(
        lambda: count(lambda e, now: e[2] is not None and now <= e[2] < now + EXPIRING_SOON)
    )
    certificate_expired.set_function(lambda: count(lambda e, now: e[2] is not None and e[2] <= now))
    certificate_revoked.set_function(lambda: count(lambda e, now: e[3]))


@kopf.on.startup()
async def start_certificate_metrics(memo: Any, **_: Any) -> None:
    install_aggregate_metrics(runtime(memo))


__all__ = ["FINALIZER", "reconcile"]
