"""The message a NotificationEvent stands for: stable across attempts, with defaults for what is left out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from certctl_operator.api import NotificationEvent
from certctl_operator.api.notification import NotificationEventType
from certctl_operator.controllers.notifications.message import build_message, default_subject
from certctl_operator.notify.payload import (
    CertificateRef,
)


def event(**spec: Any) -> NotificationEvent:
    body = {
        "apiVersion": "certctl.io/v1alpha1",
        "kind": "NotificationEvent",
        "metadata": {
            "name": "e",
            "namespace": "shop",
            "uid": "2b1d0d7e-0000-4000-8000-000000000001",
            "creationTimestamp": "2026-01-01T11:59:00Z",
        },
        "spec": {"type": "Renewed", "channelRef": {"name": "ops"}, **spec},
    }
    return NotificationEvent.from_body(body)


def test_build_message_is_stable_and_complete() -> None:
    message = build_message(
        event(
            certificateRef={"name": "web"},
            severity="warning",
            subject="Renewed web",
            message="It is renewed.",
            details={"serialNumber": "0a"},
        )
    )
    assert message.event_id == "2b1d0d7e-0000-4000-8000-000000000001"
    assert message.timestamp == datetime(2026, 1, 1, 11, 59, tzinfo=UTC)
    assert message.certificate == CertificateRef("shop", "web")
    assert (message.type, message.severity.value) == (NotificationEventType.RENEWED, "warning")
    assert (message.subject, message.message, dict(message.details)) == (
        "Renewed web",
        "It is renewed.",
        {"serialNumber": "0a"},
    )
    assert build_message(event()) == build_message(event())


def test_build_message_defaults() -> None:
    message = build_message(event(certificateRef={"name": "web"}))
    assert message.subject == "Certificate shop/web renewed"
    assert message.message == message.subject
    assert message.severity.value == "info"
    assert build_message(event(type="Test")).subject == "certctl test notification"
    assert build_message(event(type="RenewalFailed")).subject == "Certificate failed to renew"
    unsaved = event()
    unsaved.metadata.uid = None
    with pytest.raises(ValueError, match="uid"):
        build_message(unsaved)


@pytest.mark.parametrize("event_type", list(NotificationEventType))
def test_every_event_type_has_a_default_subject(event_type: NotificationEventType) -> None:
    subject = default_subject(event_type, CertificateRef("a", "b"))
    assert subject and (event_type is NotificationEventType.TEST or "a/b" in subject)
