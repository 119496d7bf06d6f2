"""The PKI registry follows watch events of issuers; the handlers keep their Kopf ids."""

from __future__ import annotations

from typing import Any

import kopf

import certctl_operator.controllers  # noqa: F401  (registers the controllers)
from certctl_operator.api import IssuerKind
from certctl_operator.controllers.publishing.index import take_issuer_status
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
        ("pki-issued-index", "index", "index_certificate"),
        ("crl-publisher", "publisher", "issuer_publisher"),
        ("crl-publisher", "publisher", "cluster_issuer_publisher"),
        ("revoke", "watch", "revoke"),
    } <= names
