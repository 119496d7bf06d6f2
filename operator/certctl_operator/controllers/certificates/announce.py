"""What a ManagedCertificate announces: Kubernetes Events and NotificationEvents about it.

Issuance (issued, renewed), failure (a renewal that failed), an invalid spec
and expiry notices. Events go through :func:`~certctl_operator.kube.events.post_event`;
NotificationEvents are built as :class:`~certctl_operator.api.NotificationEventSpec`
models. Both are named after what they announce (revision, threshold,
channel), so announcing twice is a no-op.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from certctl_operator.api import (
    CertificateEventType,
    LocalObjectReference,
    ManagedCertificate,
    ManagedCertificateStatus,
    NotificationEventSpec,
    NotificationEventType,
    Severity,
)
from certctl_operator.api.metadata_keys import LABEL_CERTIFICATE, LABEL_CHANNEL, LABEL_EVENT_TYPE
from certctl_operator.controllers.issuance import IssuanceRuntime, Key
from certctl_operator.kube.events import NORMAL, WARNING, event_name, post_event
from certctl_operator.kube.notification_events import ensure_notification_event
from certctl_operator.metrics import expiry_alerts_total
from certctl_operator.policy.clock import format_rfc3339
from certctl_operator.policy.issuance import (
    Decision,
    Reason,
    expiry_notice_due,
    subscribed_channels,
    with_notified,
)
from certctl_operator.policy.renewal import expiry_event_name, notification_event_name, object_name
from certctl_operator.status.certificates import (
    CertificateFacts,
)

logger = logging.getLogger("certctl.issuance")


async def announce_issuance(
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
        await notify(
            rt,
            body,
            cert,
            name=notification_event_name(name, kind.value, facts.revision, channel),
            event_type=kind,
            channel=channel,
            severity=Severity.INFO,
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


async def announce_failure(
    rt: IssuanceRuntime,
    key: Key,
    body: dict[str, Any],
    cert: ManagedCertificate,
    reason: str,
    message: str,
) -> None:
    """The Warning Event of an issuance that failed, and the notifications when it was a renewal."""
    await post_event(rt.api, body, event_type=WARNING, reason=reason, message=message)
    revision = (cert.status.revision or 0) + 1
    # Announced for renewals: a certificate in use is at stake (a first issuance has none yet).
    channels = subscribed_channels(cert, CertificateEventType.RENEWAL_FAILED) if revision > 1 else ()
    for channel in channels:
        await notify(
            rt,
            body,
            cert,
            name=notification_event_name(key.name, "RenewalFailed", revision, channel),
            event_type=CertificateEventType.RENEWAL_FAILED,
            channel=channel,
            severity=Severity.WARNING,
            subject=f"Certificate {key.namespace}/{key.name}: issuing revision {revision} failed",
            message=f"{reason}: {message}. The operator keeps retrying with back-off.",
            details={"reason": reason, "attemptedRevision": str(revision)},
        )


async def announce_invalid_spec(rt: IssuanceRuntime, key: Key, body: dict[str, Any], message: str) -> None:
    """The Warning Event of a spec that cannot be issued."""
    await post_event(rt.api, body, event_type=WARNING, reason=Reason.INVALID_SPEC, message=message)
    logger.warning("spec cannot be issued: %s", message, extra=rt.log_extra(key))


async def announce_expiry(
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
    severity = (
        Severity.CRITICAL
        if expired
        else Severity.WARNING
        if notice.threshold <= timedelta(days=7)
        else Severity.INFO
    )
    remaining = status.not_after - now
    when = (
        "has expired"
        if expired
        else f"expires in {human_duration(remaining)} (threshold {notice.threshold_text})"
    )
    for channel in subscribed_channels(cert, CertificateEventType.EXPIRING):
        created = await notify(
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


def human_duration(delta: timedelta) -> str:
    """``delta`` in its largest whole unit: ``3d``, ``5h``, ``12m``, ``40s``."""
    seconds = max(int(delta.total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


async def notify(
    rt: IssuanceRuntime,
    body: dict[str, Any],
    cert: ManagedCertificate,
    *,
    name: str,
    event_type: CertificateEventType,
    channel: str,
    severity: Severity,
    subject: str,
    message: str,
    details: dict[str, str],
) -> bool:
    """Create the NotificationEvent ``name`` for one channel, owned by the certificate; True when created."""
    namespace = cert.metadata.namespace or ""
    spec = NotificationEventSpec(
        type=NotificationEventType(event_type.value),
        channel_ref=LocalObjectReference(name=channel),
        certificate_ref=LocalObjectReference(name=cert.metadata.name or ""),
        severity=severity,
        subject=subject[:998],
        message=message,
        details={
            "namespace": namespace,
            "certificate": cert.metadata.name or "",
            "secretName": cert.spec.secret_name,
            "issuer": f"{cert.spec.issuer_ref.kind.value}/{cert.spec.issuer_ref.name}",
            **details,
        },
    )
    labels = {
        LABEL_CERTIFICATE: object_name(cert.metadata.name or "", max_length=63),
        LABEL_EVENT_TYPE: event_type.value,
        LABEL_CHANNEL: object_name(channel, max_length=63),
    }
    return await ensure_notification_event(
        rt.api, namespace=namespace, name=name, spec=spec, labels=labels, owner=body
    )


__all__ = [
    "announce_expiry",
    "announce_failure",
    "announce_invalid_spec",
    "announce_issuance",
    "human_duration",
    "notify",
]
