"""What a Revocation tells the world: Kubernetes Events, Revoked NotificationEvents, the audit line.

Events go through :func:`kube.events.post_event`; those of a step that can run
again (the settle of a Revocation, the marking of its certificate) carry a
deterministic name so they are posted once. Posting an Event is best effort:
one that fails is logged and the revocation goes on. NotificationEvents are
built as :class:`api.NotificationEventSpec` and named after the certificate,
the serial and the channel, so a repeated follow-up never announces twice.
The audit line is one record per settled Revocation on the audit logger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.api import (
    CertificateEventType,
    LocalObjectReference,
    ManagedCertificate,
    NotificationEventSpec,
    NotificationEventType,
    Revocation,
    RevocationStatus,
    RevokedCertificate,
    Severity,
)
from certctl_operator.api.metadata_keys import LABEL_CERTIFICATE, LABEL_CHANNEL, LABEL_EVENT_TYPE
from certctl_operator.kube.events import NORMAL, WARNING, event_name, post_event
from certctl_operator.kube.notification_events import ensure_notification_event
from certctl_operator.logs import AUDIT_LOGGER, REF_ATTRIBUTE, object_extra, object_ref
from certctl_operator.policy.clock import utc_now
from certctl_operator.policy.renewal import object_name
from certctl_operator.policy.revocation import IssuerKey, severity_of

logger = logging.getLogger("certctl.revocation")
audit = logging.getLogger(AUDIT_LOGGER)


# --------------------------------------------------------------------------- Kubernetes Events


async def post_event_or_log(
    api: Any, obj: Mapping[str, Any], event_type: str, reason: str, message: str, name: str | None = None
) -> None:
    """Post an Event about ``obj``; one that cannot be posted is logged, the revocation goes on."""
    try:
        await post_event(api, obj, event_type=event_type, reason=reason, message=message, name=name)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        logger.warning("could not post the %s Event: %s", reason, error, extra=object_extra(obj))


def settled_event_name(revocation: Revocation, reason: str) -> str:
    """The one Event a Revocation gets when it settles: per object (uid), so a recreated one gets its own."""
    return event_name(revocation.metadata.name or "", f"certctl-{reason.lower()}-{revocation.metadata.uid}")


async def post_revoked(api: Any, body: Mapping[str, Any], revocation: Revocation, message: str) -> None:
    """Normal Event Revoked on the Revocation, once."""
    name = settled_event_name(revocation, "Revoked")
    await post_event_or_log(api, body, NORMAL, "Revoked", message, name=name)


async def post_failed(api: Any, body: Mapping[str, Any], revocation: Revocation, message: str) -> None:
    """Warning Event RevocationFailed on the Revocation, once."""
    name = settled_event_name(revocation, "RevocationFailed")
    await post_event_or_log(api, body, WARNING, "RevocationFailed", message, name=name)


async def post_pending(api: Any, body: Mapping[str, Any], message: str) -> None:
    """Normal Event Pending on the Revocation.

    Unnamed: it is posted when the Pending reason changes, after the status
    that records the reason is written, so a repeated look does not post it
    again, and a reason that comes back later is news again.
    """
    await post_event_or_log(api, body, NORMAL, "Pending", message)


async def post_certificate_revoked(
    api: Any, certificate_body: Mapping[str, Any], serial: str, message: str
) -> None:
    """Warning Event Revoked on the ManagedCertificate, once per serial."""
    name = event_name(str((certificate_body.get("metadata") or {}).get("name")), f"certctl-revoked-{serial}")
    await post_event_or_log(api, certificate_body, WARNING, "Revoked", message, name=name)


# --------------------------------------------------------------------------- NotificationEvents


def revoked_notification(
    certificate: ManagedCertificate,
    channel: str,
    revocation: Revocation,
    key: IssuerKey,
    entry: RevokedCertificate,
    crl_number: int | None,
) -> NotificationEventSpec:
    """The Revoked NotificationEvent for ``channel`` about ``entry`` of ``certificate``."""
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
    return NotificationEventSpec(
        type=NotificationEventType.REVOKED,
        channel_ref=LocalObjectReference(name=channel),
        certificate_ref=LocalObjectReference(name=name),
        severity=Severity(severity_of(entry.reason)),
        subject=f"Certificate {namespace}/{name} revoked ({reason})",
        message=(
            f"The certificate with serial number {entry.serial_number} of ManagedCertificate "
            f"{namespace}/{name} was revoked with reason {reason} by Revocation "
            f"{revocation.metadata.name}. It is listed on the CRL of issuer {key.label}"
            + (f" from CRL number {crl_number} on" if crl_number is not None else "")
            + "."
        ),
        details=details,
    )


async def notify_revoked(
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
    created = 0
    for channel in settings.channels:
        spec = revoked_notification(certificate, channel, revocation, key, entry, crl_number)
        labels = {
            LABEL_CERTIFICATE: object_name(name, max_length=63),
            LABEL_EVENT_TYPE: NotificationEventType.REVOKED.value,
            LABEL_CHANNEL: object_name(channel, max_length=63),
        }
        notification_name = object_name(name, "revoked", entry.serial_number, channel)
        if await ensure_notification_event(
            api, namespace=namespace, name=notification_name, spec=spec, labels=labels, owner=certificate_body
        ):
            created += 1
    return created


# --------------------------------------------------------------------------- the audit line


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
        "time": utc_now().strftime("%Y-%m-%dT%H:%M:%SZ"),
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
