"""The NotificationEvents a certificate announces, as created (no cluster)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

from certctl_operator.api import CertificateEventType, ManagedCertificate, NotificationEventSpec, Severity
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.certificates import announce
from certctl_operator.controllers.issuance import IssuanceRuntime
from certctl_operator.settings import Settings

BODY: dict[str, Any] = {
    "apiVersion": "certctl.io/v1alpha1",
    "kind": "ManagedCertificate",
    "metadata": {"name": "web", "namespace": "shop", "uid": "0f6c"},
    "spec": {
        "secretName": "web-tls",
        "dnsNames": ["web.shop.example"],
        "issuerRef": {"name": "shop-ca", "kind": "ClusterIssuer"},
    },
}


async def test_a_notification_event_spec_is_the_camel_case_api_model(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[tuple[str, str, dict[str, Any], dict[str, str]]] = []

    async def ensure(
        api: Any,
        *,
        namespace: str,
        name: str,
        spec: NotificationEventSpec,
        labels: Mapping[str, str] | None = None,
        owner: Mapping[str, Any] | None = None,
    ) -> bool:
        assert owner is BODY
        created.append((namespace, name, spec.dump(), dict(labels or {})))
        return True

    monkeypatch.setattr(announce, "ensure_notification_event", ensure)
    rt = IssuanceRuntime(OperatorContext(settings=Settings()))
    cert = ManagedCertificate.from_body(BODY)
    assert await announce.notify(
        rt,
        BODY,
        cert,
        name="web-renewed-2-ops",
        event_type=CertificateEventType.RENEWED,
        channel="ops",
        severity=Severity.INFO,
        subject="s" * 1200,
        message="Revision 2",
        details={"revision": "2"},
    )
    [(namespace, name, spec, labels)] = created
    assert (namespace, name) == ("shop", "web-renewed-2-ops")
    assert spec == {
        "type": "Renewed",
        "channelRef": {"name": "ops"},
        "certificateRef": {"name": "web"},
        "severity": "info",
        "subject": "s" * 998,
        "message": "Revision 2",
        "details": {
            "namespace": "shop",
            "certificate": "web",
            "secretName": "web-tls",
            "issuer": "ClusterIssuer/shop-ca",
            "revision": "2",
        },
    }
    assert labels == {
        "certctl.io/certificate": "web",
        "certctl.io/event-type": "Renewed",
        "certctl.io/channel": "ops",
    }


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=3, hours=5), "3d"),
        (timedelta(hours=5, minutes=1), "5h"),
        (timedelta(minutes=12), "12m"),
        (timedelta(seconds=40), "40s"),
        (timedelta(seconds=-5), "0s"),
    ],
)
def test_time_left_is_said_in_its_largest_whole_unit(delta: timedelta, text: str) -> None:
    assert announce.human_duration(delta) == text
