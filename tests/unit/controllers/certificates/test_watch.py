"""What the events of certificates and of the operator's Secrets do to the certificate queue (no cluster)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from certctl_operator.api import IssuerKind
from certctl_operator.api.metadata_keys import ANNOTATION_CERTIFICATE_NAME, LABEL_MANAGED_BY_CERTIFICATE
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.certificates.watch import certificate_changed, secret_changed
from certctl_operator.controllers.issuance import CERTIFICATE, ISSUER, IssuanceRuntime, Key
from certctl_operator.policy.revocation import IssuerKey
from certctl_operator.settings import Settings
from certctl_operator.web.pki_state import registry_of


def secret(version: str, data: bytes = b"pem") -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "team-a",
            "name": "web-tls",
            "resourceVersion": version,
            "labels": {LABEL_MANAGED_BY_CERTIFICATE: "web"},
            "annotations": {ANNOTATION_CERTIFICATE_NAME: "web"},
        },
        "data": {"tls.crt": base64.b64encode(data).decode()},
    }


def test_the_start_up_listing_records_secrets_and_later_changes_wake_their_certificate() -> None:
    rt = IssuanceRuntime(OperatorContext(settings=Settings()))
    # Listed at start-up: recorded, nothing queued (the certificate's own listing queues it).
    secret_changed(rt, "ADDED", secret("5"), wake=False)
    assert rt.secrets[("team-a", "web-tls")].data == {"tls.crt": b"pem"}
    assert rt.queue.pending == 0
    # The same version again (a list replacing a watch): nothing new, nothing queued.
    secret_changed(rt, "MODIFIED", secret("5"))
    assert rt.queue.pending == 0
    # Changed by someone else: recorded, and its certificate queued.
    secret_changed(rt, "MODIFIED", secret("6", b"other"))
    assert rt.secrets[("team-a", "web-tls")].data == {"tls.crt": b"other"}
    assert rt.queue.pending == 1
    # The operator's own write: recorded, not queued again.
    rt.own_secret_writes[("team-a", "web-tls")] = "7"
    secret_changed(rt, "MODIFIED", secret("7", b"ours"))
    assert rt.queue.pending == 1
    # Gone (or the label taken away): forgotten.
    secret_changed(rt, "DELETED", {"metadata": {"namespace": "team-a", "name": "web-tls"}})
    assert ("team-a", "web-tls") not in rt.secrets


def certificate(version: str, *, serial: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "certctl.io/v1alpha1",
        "kind": "ManagedCertificate",
        "metadata": {"namespace": "team-a", "name": "web", "uid": "u-1", "resourceVersion": version},
        "spec": {"secretName": "web-tls", "issuerRef": {"name": "team-ca", "kind": "Issuer"}},
        "status": {"serialNumber": serial} if serial else {},
    }


def test_certificate_events_keep_the_body_and_indexes_and_queue_all_but_the_operators_own_writes() -> None:
    rt = IssuanceRuntime(OperatorContext(settings=Settings()))
    key = Key(CERTIFICATE, "team-a", "web")
    issuer = IssuerKey(IssuerKind.ISSUER, "team-ca", "team-a")
    # Listed at start-up (or seen by the watch): kept, indexed and queued.
    certificate_changed(rt, "ADDED", certificate("5", serial="0a1b"))
    assert rt.certificate_bodies[key].body()["metadata"]["resourceVersion"] == "5"
    assert rt.uids[key] == "u-1"
    assert rt.secret_of_certificate[key] == ("team-a", "web-tls")
    assert rt.issuer_of[key] == Key(ISSUER, "team-a", "team-ca")
    assert registry_of(rt.context).index.is_issued(issuer, 0x0A1B, datetime.now(UTC))
    assert rt.queue.pending == 1
    # The operator's own write: kept, not queued again.
    rt.own_writes[key] = "6"
    certificate_changed(rt, "MODIFIED", certificate("6", serial="0a1b"))
    assert rt.certificate_bodies[key].resource_version == "6"
    assert rt.queue.pending == 1
    # Gone: forgotten, and queued once more to clean up after a reconcile under way.
    certificate_changed(rt, "DELETED", {"metadata": {"namespace": "team-a", "name": "web"}})
    assert key not in rt.certificate_bodies and key not in rt.issuer_of
    assert key in rt.read_afresh
    assert rt.queue.pending == 1
