"""How ``kubectl certctl status`` sorts certificates into states and counts notifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certctl_operator.cli.summary import (
    CertificateState,
    certificate_state,
    notification_phase,
    parse_fail_on,
    summarize,
    tripped,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def stamp(delta: timedelta) -> str:
    return (NOW + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(type_: str, status: str, reason: str = "Because", message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": stamp(-timedelta(hours=1)),
    }


def cert(name: str = "web", namespace: str = "team-a", **status: Any) -> dict[str, Any]:
    return {
        "kind": "ManagedCertificate",
        "metadata": {"name": name, "namespace": namespace},
        "status": status,
    }


READY = condition("Ready", "True", "Issued")


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ({"conditions": [READY], "notAfter": stamp(timedelta(days=60))}, CertificateState.READY),
        ({"conditions": [READY], "notAfter": stamp(timedelta(days=29))}, CertificateState.EXPIRING),
        ({"conditions": [READY], "notAfter": stamp(-timedelta(seconds=1))}, CertificateState.EXPIRED),
        # Revoked wins over everything, even an expired certificate.
        (
            {"conditions": [READY], "notAfter": stamp(-timedelta(days=1)), "revoked": True},
            CertificateState.REVOKED,
        ),
        ({}, CertificateState.ISSUING),
        ({"conditions": [condition("Ready", "Unknown")]}, CertificateState.ISSUING),
        (
            {
                "conditions": [
                    condition("Ready", "False", "Pending"),
                    condition("Issuing", "True", "FirstIssuance"),
                ]
            },
            CertificateState.ISSUING,
        ),
        ({"conditions": [condition("Ready", "False", "IssuerNotReady")]}, CertificateState.FAILING),
        # A renewal that keeps failing while the old certificate is still valid is failing, not ready.
        (
            {
                "conditions": [READY, condition("Issuing", "True", "Renewing")],
                "notAfter": stamp(timedelta(days=60)),
                "failedIssuanceAttempts": 3,
            },
            CertificateState.FAILING,
        ),
        # Expired beats failing: the urgent fact is that clients already fail.
        (
            {"conditions": [condition("Ready", "False", "X")], "notAfter": stamp(-timedelta(days=1))},
            CertificateState.EXPIRED,
        ),
    ],
)
def test_certificate_state(status: dict[str, Any], state: CertificateState) -> None:
    assert certificate_state(cert(**status), NOW)[0] is state


def test_failing_detail_names_the_reason_and_attempts() -> None:
    body = cert(
        conditions=[condition("Ready", "False", "IssuerNotReady", "Issuer ca is not Ready")],
        failedIssuanceAttempts=2,
    )
    state, detail = certificate_state(body, NOW)
    assert state is CertificateState.FAILING
    assert detail == "IssuerNotReady: Issuer ca is not Ready (2 failed attempts)"


def event(name: str, phase: str | None = None, *, dead_label: bool = False, **status: Any) -> dict[str, Any]:
    labels = {"certctl.io/phase": "dead"} if dead_label else {}
    body: dict[str, Any] = {
        "kind": "NotificationEvent",
        "metadata": {"name": name, "namespace": "team-a", "labels": labels},
        "spec": {"channelRef": {"name": "ops"}},
        "status": dict(status, **({"phase": phase} if phase else {})),
    }
    return body


def test_notification_phase_defaults_to_pending_and_the_dead_label_wins() -> None:
    assert notification_phase(event("a")) == "Pending"
    assert notification_phase(event("b", "Sent")) == "Sent"
    assert notification_phase(event("c", "Failed", dead_label=True)) == "Dead"
    assert notification_phase(event("d", "Bogus")) == "Pending"


def test_summarize_counts_everything_once() -> None:
    certificates = [
        cert("ok", conditions=[READY], notAfter=stamp(timedelta(days=90))),
        cert("soon", conditions=[READY], notAfter=stamp(timedelta(days=3))),
        cert("gone", conditions=[READY], notAfter=stamp(-timedelta(days=3))),
        cert("new"),
    ]
    issuers = [
        {
            "kind": "Issuer",
            "metadata": {"name": "ca", "namespace": "team-a"},
            "status": {"conditions": [READY]},
        },
        {
            "kind": "ClusterIssuer",
            "metadata": {"name": "corp"},
            "status": {
                "conditions": [condition("Ready", "False", "SecretNotFound", "corp-ca-keypair missing")]
            },
        },
        {"kind": "Issuer", "metadata": {"name": "fresh", "namespace": "team-a"}},
    ]
    events = [
        event("dead-1", "Dead", dead_label=True, retryCount=4, lastError="HTTP 500"),
        event("retry", "Failed", retryCount=1),
        event("done", "Sent"),
        event("queued"),
    ]
    summary = summarize(certificates, issuers, events, NOW)

    assert summary.as_dict()["certificates"] == {
        "total": 4,
        "ready": 1,
        "issuing": 1,
        "failing": 0,
        "expiring": 1,
        "expired": 1,
        "revoked": 0,
    }
    # Most urgent first: expired before expiring before issuing.
    assert [(row.name, row.state) for row in summary.certificate_problems] == [
        ("gone", CertificateState.EXPIRED),
        ("soon", CertificateState.EXPIRING),
        ("new", CertificateState.ISSUING),
    ]
    assert summary.certificate_problems[1].detail == "expires " + (NOW + timedelta(days=3)).strftime(
        "%Y-%m-%d %H:%M:%S UTC"
    )
    assert [(row.kind, row.name, row.detail) for row in summary.issuers_not_ready] == [
        ("ClusterIssuer", "corp", "SecretNotFound: corp-ca-keypair missing"),
        ("Issuer", "fresh", "not reconciled yet"),
    ]
    notifications = summary.as_dict()["notifications"]
    assert list(notifications) == ["dead", "failed", "pending", "sent", "total"], "dead letters come first"
    assert notifications == {"dead": 1, "failed": 1, "pending": 1, "sent": 1, "total": 4}
    assert [letter.as_dict() for letter in summary.dead_letters] == [
        {"namespace": "team-a", "name": "dead-1", "channel": "ops", "retryCount": 4, "lastError": "HTTP 500"}
    ]


def test_fail_on() -> None:
    summary = summarize(
        [cert("gone", conditions=[READY], notAfter=stamp(-timedelta(days=1)))], [], [event("x", "Dead")], NOW
    )
    assert parse_fail_on("dead, Expired") == ["dead", "expired"]
    assert tripped(summary, ["dead", "expired", "failing", "issuers"]) == [
        "dead-lettered notifications: 1",
        "expired certificates: 1",
    ]
    assert tripped(summary, ["failing", "revoked"]) == []
    for bad in ("", "dead,nonsense", ","):
        with pytest.raises(ValueError, match="--fail-on takes a comma-separated list of failing"):
            parse_fail_on(bad)
