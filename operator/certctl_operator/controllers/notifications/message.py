"""The message a NotificationEvent stands for, as the senders take it.

Pure: the event's spec and metadata in, a :class:`~certctl_operator.notify.payload.Message`
out, equal on every attempt so that receivers can tell a retry from a new
message by its id.
"""

from __future__ import annotations

from certctl_operator.api.notification import NotificationEvent, NotificationEventType, Severity
from certctl_operator.notify.payload import (
    CertificateRef,
    JSONValue,
    Message,
)

_TYPE_VERBS = {
    NotificationEventType.ISSUED: "issued",
    NotificationEventType.RENEWED: "renewed",
    NotificationEventType.RENEWAL_FAILED: "failed to renew",
    NotificationEventType.EXPIRING: "expiring",
    NotificationEventType.REVOKED: "revoked",
}


def default_subject(event_type: NotificationEventType, certificate: CertificateRef | None) -> str:
    """A one-line subject for an event that has none."""
    if event_type is NotificationEventType.TEST:
        return "certctl test notification"
    verb = _TYPE_VERBS[event_type]
    if certificate is None:
        return f"Certificate {verb}"
    return f"Certificate {certificate} {verb}"


def build_message(event: NotificationEvent) -> Message:
    """The message one NotificationEvent stands for; equal on every attempt.

    Its id is the event's uid (the webhook Idempotency-Key, the PagerDuty
    dedup key), its timestamp the event's creation time.
    """
    meta = event.metadata
    if not meta.uid or meta.creation_timestamp is None:
        raise ValueError(
            "only a NotificationEvent stored by the API server (uid, creationTimestamp) is delivered"
        )
    spec = event.spec
    certificate = (
        CertificateRef(meta.namespace or "", spec.certificate_ref.name) if spec.certificate_ref else None
    )
    event_type = NotificationEventType(spec.type.value)
    subject = spec.subject or default_subject(event_type, certificate)
    details: dict[str, JSONValue] = dict(spec.details or {})
    return Message(
        event_id=meta.uid,
        type=event_type,
        severity=Severity(spec.severity.value),
        subject=subject,
        message=spec.message or subject,
        timestamp=meta.creation_timestamp,
        certificate=certificate,
        details=details,
    )
