"""What a Revocation announces: its Events (once where a step repeats) and its Revoked NotificationEvents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certctl_operator.api import (
    IssuerKind,
    ManagedCertificate,
    Revocation,
    RevocationReason,
    RevokedCertificate,
)
from certctl_operator.controllers.revocations import announce
from certctl_operator.policy.revocation import IssuerKey

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = IssuerKey(IssuerKind.ISSUER, "team-ca", "team-a")


def revocation(uid: str = "u-1") -> Revocation:
    return Revocation.from_body(
        {
            "apiVersion": "certctl.io/v1alpha1",
            "kind": "Revocation",
            "metadata": {"name": "web-gone", "namespace": "team-a", "uid": uid},
            "spec": {"certificateRef": {"name": "web"}, "reason": "keyCompromise", "reissue": True},
        }
    )


def certificate() -> ManagedCertificate:
    return ManagedCertificate.from_body(
        {
            "apiVersion": "certctl.io/v1alpha1",
            "kind": "ManagedCertificate",
            "metadata": {"name": "web", "namespace": "team-a", "uid": "c-1"},
            "spec": {
                "secretName": "web-tls",
                "issuerRef": {"name": "team-ca"},
                "dnsNames": ["web.example.com"],
                "notifications": {"channels": ["ops"], "events": ["Revoked"]},
            },
        }
    )


ENTRY = RevokedCertificate(
    serial_number="0a1b",
    revoked_at=NOW,
    reason=RevocationReason.KEY_COMPROMISE,
    not_after=NOW + timedelta(days=30),
)


def test_the_revoked_notification_is_the_spec_it_always_was() -> None:
    spec = announce.revoked_notification(certificate(), "ops", revocation(), KEY, ENTRY, 7)
    assert spec.dump() == {
        "type": "Revoked",
        "channelRef": {"name": "ops"},
        "certificateRef": {"name": "web"},
        "severity": "critical",
        "subject": "Certificate team-a/web revoked (keyCompromise)",
        "message": (
            "The certificate with serial number 0a1b of ManagedCertificate team-a/web was revoked with "
            "reason keyCompromise by Revocation web-gone. It is listed on the CRL of issuer team-a/team-ca "
            "from CRL number 7 on."
        ),
        "details": {
            "serialNumber": "0a1b",
            "reason": "keyCompromise",
            "issuer": "team-a/team-ca",
            "issuerKind": "Issuer",
            "revocation": "web-gone",
            "revokedAt": "2026-03-01T12:00:00Z",
            "reissue": "true",
            "crlNumber": "7",
        },
    }
    without_number = announce.revoked_notification(
        certificate(), "ops", revocation(), KEY, ENTRY, None
    ).dump()
    assert "crlNumber" not in without_number["details"]
    assert without_number["message"].endswith("on the CRL of issuer team-a/team-ca.")


def test_settled_events_are_named_per_revocation_object() -> None:
    first = announce.settled_event_name(revocation("u-1"), "Revoked")
    assert first == announce.settled_event_name(revocation("u-1"), "Revoked")
    assert first != announce.settled_event_name(revocation("u-2"), "Revoked")
    assert first != announce.settled_event_name(revocation("u-1"), "RevocationFailed")


async def test_an_event_that_cannot_be_posted_does_not_stop_the_revocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    posted: list[dict[str, Any]] = []

    async def failing(api: Any, obj: Any, **kwargs: Any) -> bool:
        posted.append(kwargs)
        raise RuntimeError("the API server is away")

    monkeypatch.setattr(announce, "post_event", failing)
    body = {"apiVersion": "certctl.io/v1alpha1", "kind": "ManagedCertificate", "metadata": {"name": "web"}}
    await announce.post_certificate_revoked(None, body, "0a1b", "revoked")
    assert posted == [
        {
            "event_type": "Warning",
            "reason": "Revoked",
            "message": "revoked",
            "name": "web.certctl-revoked-0a1b",
        }
    ]
