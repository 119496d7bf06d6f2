"""The PKI registry follows watch events of issuers and certificates; the Kopf handlers keep their ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

import certctl_operator.controllers  # noqa: F401  (registers the controllers)
from certctl_operator.api import IssuerKind
from certctl_operator.controllers.publishing.index import index_certificate, take_issuer_status
from certctl_operator.policy.revocation import IssuerKey
from certctl_operator.web.pki_state import PKIRegistry

KEY = IssuerKey(IssuerKind.ISSUER, "team-ca", "team-a")


def event(kind: str) -> Any:
    return {"type": kind}


def test_an_issuer_that_is_gone_or_no_ca_is_forgotten() -> None:
    registry = PKIRegistry()
    take_issuer_status(registry, KEY, event("MODIFIED"), {"spec": {"ca": {"secretName": "ca"}}, "status": {}})
    assert KEY in registry.issuers
    take_issuer_status(registry, KEY, event("MODIFIED"), {"spec": {"selfSigned": {}}})
    assert KEY not in registry.issuers
    take_issuer_status(registry, KEY, event("ADDED"), {"spec": {"ca": {"secretName": "ca"}}, "status": {}})
    take_issuer_status(registry, KEY, event("DELETED"), {"spec": {"ca": {"secretName": "ca"}}})
    assert KEY not in registry.issuers


def test_publishing_and_revocation_handlers_keep_their_ids() -> None:
    registry = kopf.get_default_registry()
    names = {
        (handler.id, handler.fn.__module__.rsplit(".", 1)[-1], handler.fn.__name__)
        for handler in [*registry._watching.get_all_handlers(), *registry._spawning.get_all_handlers()]
    }
    assert {
        ("pki-issuer-index", "index", "index_issuer"),
        ("pki-issuer-index", "index", "index_cluster_issuer"),
        ("crl-publisher", "publisher", "issuer_publisher"),
        ("crl-publisher", "publisher", "cluster_issuer_publisher"),
        ("revoke", "watch", "revoke"),
    } <= names


def test_certificate_events_keep_the_index_of_issued_serials_and_wake_its_revocations() -> None:
    registry = PKIRegistry()
    now = datetime.now(UTC)
    certificate = {
        "metadata": {"namespace": "team-a", "name": "web", "resourceVersion": "7"},
        "spec": {"issuerRef": {"name": "team-ca", "kind": "Issuer"}},
        # Expired: a serial past its notAfter counts as issued only while it is some certificate's.
        "status": {"serialNumber": "0a1b", "notAfter": "2020-01-01T00:00:00Z"},
    }
    with registry.waiting_for("team-a", "web") as woken:
        index_certificate(registry, "ADDED", certificate)
        assert woken.is_set()
        assert registry.index.is_issued(KEY, 0x0A1B, now)
        woken.clear()
        # A list that replaces a watch reports a certificate gone by its name alone.
        index_certificate(registry, "DELETED", {"metadata": {"namespace": "team-a", "name": "web"}})
        assert woken.is_set()
        assert not registry.index.is_issued(KEY, 0x0A1B, now)
