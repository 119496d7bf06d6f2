"""What the operator's Secret events do to the certificate queue (no cluster)."""

from __future__ import annotations

import base64
from typing import Any

from certctl_operator.api.metadata_keys import ANNOTATION_CERTIFICATE_NAME, LABEL_MANAGED_BY_CERTIFICATE
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.certificates.watch import secret_changed
from certctl_operator.controllers.issuance import IssuanceRuntime
from certctl_operator.settings import Settings


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
