"""No secret ever leaves its Secret: not into logs, Events, status, NotificationEvents or metrics.

A full run of a real operator at DEBUG log level: a CA Issuer from a CA
Secret, a ManagedCertificate issued, renewed on request (``certctl.io/renew``)
and revoked with reissue (every issuance with a new key), notifications to a
signed webhook and to a Slack channel whose webhook URL (in a Secret) holds a
token, the Slack receiver failing at first so error texts are written, and
the OCSP responder asked. Every secret of the run is collected as it is
written (the CA key, each tls.key, the signing key, the Slack token, the OCSP
responder key), then looked for, raw and base64-encoded and as a distinctive
32-character slice of the key's PEM body, in everything the operator writes
or shows.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from kubernetes import client
from tests.support.leak_scan import key_needles as _key_needles
from tests.support.leak_scan import leaks as _leaks
from tests.support.leak_scan import text_needles as _text_needles
from tests.support.observability import json_records
from tests.support.pki_cluster import (
    GROUP,
    VERSION,
    Issued,
    ask_ocsp,
    certificate_body,
    create,
    custom,
    issuer_body,
    make_ca_secret,
    revocation_body,
    wait_for,
    wait_issued,
    wait_phase,
    wait_ready,
)
from tests.support.receivers import HTTPReceiver, RecordedRequest, ScriptedResponse

from certctl_operator.dev.operator_process import OperatorFactory

ENV = {"CERTCTL_ISSUER_CHECK_INTERVAL": "1s", "CERTCTL_NOTIFICATION_MAX_ATTEMPTS": "2"}
NAMESPACED = ("issuers", "managedcertificates", "revocations", "notificationchannels", "notificationevents")


# --------------------------------------------------------------------------- helpers


def _secret_text(kube: Any, namespace: str, name: str, key: str) -> str:
    secret = client.CoreV1Api(kube).read_namespaced_secret(name, namespace)
    data: dict[str, Any] = dict(secret.data or {})
    return base64.b64decode(data[key]).decode()


def _make_secret(kube: Any, namespace: str, name: str, data: Mapping[str, str]) -> None:
    client.CoreV1Api(kube).create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=dict(data), type="Opaque"),
    )


def _channel(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": "NotificationChannel", "metadata": {"name": name}, "spec": dict(spec)}


def _items(listing: Any) -> list[dict[str, Any]]:
    return [dict(item) for item in listing["items"]]


def _settled_notifications(kube: Any, namespace: str) -> list[dict[str, Any]] | None:
    """Every NotificationEvent once the run's eight exist and none takes attempts any more."""
    items = _items(
        custom(kube).list_namespaced_custom_object(GROUP, VERSION, namespace, "notificationevents")
    )
    phases = [(item.get("status") or {}).get("phase") for item in items]
    if len(items) < 8 or any(phase not in ("Sent", "Dead") for phase in phases):
        return None
    return list(items)


class RefusingFirstRevision(HTTPReceiver):
    """Answers 500 to every message about revision 1 (so it is dead-lettered, with its errors), else 200."""

    MARKER = b"(revision 1)"

    def _record(self, request: RecordedRequest) -> ScriptedResponse:
        super()._record(request)
        if self.MARKER in request.body:
            return ScriptedResponse(status=500, body=b"invalid_token")
        return ScriptedResponse(status=200, body=b"ok")


@pytest.fixture
def receivers() -> Iterator[tuple[HTTPReceiver, HTTPReceiver]]:
    with HTTPReceiver(default=ScriptedResponse(status=200)) as hook, RefusingFirstRevision() as slack:
        yield hook, slack


# --------------------------------------------------------------------------- the test


def test_no_secret_reaches_logs_events_status_notifications_or_metrics(
    kube: Any,
    namespace: str,
    operator_factory: OperatorFactory,
    receivers: tuple[HTTPReceiver, HTTPReceiver],
) -> None:
    hook, slack = receivers
    operator = operator_factory(
        namespaces=[namespace], env=ENV, extra_args=["--log-level", "DEBUG"], start=False
    )
    base = operator.base_url
    needles: dict[str, str] = {}

    keys: dict[str, str] = {}

    def add_key(label: str, pem: str) -> None:
        assert pem not in keys.values(), f"{label}: the key did not change"
        keys[label] = pem
        needles.update(_key_needles(label, pem))

    # The CA key pair, a signed webhook, a Slack channel with a token in its URL.
    make_ca_secret(kube, namespace, "team-ca-keypair", "Leak Test CA")
    add_key("CA key", _secret_text(kube, namespace, "team-ca-keypair", "tls.key"))
    signing_key = secrets.token_hex(20)
    slack_token = "xoxleak" + secrets.token_hex(16)
    slack_url = f"{slack.url}/services/T0LEAKTEST/B0LEAKTEST/{slack_token}"
    _make_secret(kube, namespace, "hook-signing", {"key": signing_key})
    _make_secret(kube, namespace, "slack-webhook", {"url": slack_url})
    needles |= _text_needles("webhook signing key", signing_key)
    needles |= _text_needles("Slack token", slack_token)
    needles |= _text_needles("Slack URL", slack_url)
    create(
        kube,
        namespace,
        "notificationchannels",
        _channel(
            "hook", {"webhook": {"url": hook.url, "signingSecretRef": {"name": "hook-signing", "key": "key"}}}
        ),
    )
    create(
        kube,
        namespace,
        "notificationchannels",
        _channel("slack", {"slack": {"webhookURLSecretRef": {"name": "slack-webhook", "key": "url"}}}),
    )
    create(kube, namespace, "issuers", issuer_body("team-ca", ca_secret="team-ca-keypair", base_url=base))
    create(
        kube,
        namespace,
        "managedcertificates",
        certificate_body(
            "web",
            "team-ca",
            privateKey={"algorithm": "ECDSA", "rotationPolicy": "Always"},
            notifications={"channels": ["hook", "slack"], "events": ["Issued", "Renewed", "Revoked"]},
        ),
    )
    operator.start()
    wait_ready(kube, namespace, "issuers", "team-ca")

    # Issued, renewed on request, revoked and reissued: three keys, each read from the Secret.
    def collect_key(label: str) -> None:
        add_key(label, _secret_text(kube, namespace, "web-tls", "tls.key"))

    first = wait_issued(kube, namespace, "web")
    collect_key("tls.key of revision 1")
    custom(kube).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "managedcertificates",
        "web",
        {"metadata": {"annotations": {"certctl.io/renew": "leak-test"}}},
    )
    second = wait_issued(kube, namespace, "web", after=first.serial)
    collect_key("tls.key of revision 2")
    create(kube, namespace, "revocations", revocation_body("web-revoked", "web", "keyCompromise", True))
    wait_phase(kube, namespace, "web-revoked", "Revoked")
    third = wait_issued(kube, namespace, "web", after=second.serial)
    collect_key("tls.key of revision 3")

    # The OCSP responder, with its own key pair, answers for the revoked certificate.
    responder_key = wait_for(
        "the OCSP responder Secret",
        lambda: _secret_text(kube, namespace, "team-ca-ocsp-responder", "tls.key"),
    )
    add_key("OCSP responder key", responder_key)
    url = f"{base}/ocsp/{namespace}/team-ca"

    def answered(certificate: Issued) -> ocsp.OCSPResponse | None:
        answer = ask_ocsp(url, certificate.certificate, certificate.ca)
        return answer if answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL else None

    revoked = wait_for("OCSP answers for revision 2", lambda: answered(second))
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert ask_ocsp(url, third.certificate, third.ca).certificate_status == ocsp.OCSPCertStatus.GOOD

    notifications = wait_for(
        "every notification delivered or dead", lambda: _settled_notifications(kube, namespace), 60
    )
    phases = sorted((item["spec"]["channelRef"]["name"], item["status"]["phase"]) for item in notifications)
    assert ("slack", "Dead") in phases and ("slack", "Sent") in phases and ("hook", "Sent") in phases, phases
    assert slack.requests and all(r.path.endswith(slack_token) for r in slack.requests), (
        "Slack used the Secret's URL"
    )
    assert all(r.header("X-Certctl-Signature") for r in hook.requests), "the webhook was signed"

    # Everything the operator writes or shows.
    metrics = operator.metrics()
    operator.stop()
    haystacks: dict[str, str] = {"the operator's log": operator.logs(), "/metrics": metrics}
    core = client.CoreV1Api(kube)
    for where in (namespace, "default"):
        for event in core.list_namespaced_event(where).items:
            haystacks[f"Event {where}/{event.metadata.name}"] = json.dumps(event.to_dict(), default=str)
    objects = custom(kube)
    for plural in NAMESPACED:
        for item in _items(objects.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)):
            name = f"{item['kind']} {item['metadata']['name']}"
            haystacks[f"status of {name}"] = json.dumps(item.get("status") or {})
            if plural == "notificationevents":
                haystacks[f"spec of {name}"] = json.dumps(item["spec"])
    for item in _items(objects.list_cluster_custom_object(GROUP, VERSION, "clusterissuers")):
        haystacks[f"status of ClusterIssuer {item['metadata']['name']}"] = json.dumps(
            item.get("status") or {}
        )

    # The needles are right: every PEM-derived form of each key is found where the key really is.
    for label, pem in keys.items():
        forms = {
            what: needle
            for what, needle in needles.items()
            if what.startswith(f"{label} (") and "hex" not in what
        }
        stored = {"the Secret": pem + "\n" + base64.b64encode(pem.encode()).decode()}
        assert len(_leaks(forms, stored)) == len(forms) == 4, label

    # The run did what it should, at DEBUG, and wrote plenty.
    logs = json_records(haystacks["the operator's log"])
    assert any(record.get("severity") == "debug" for record in logs.records), "DEBUG records were logged"
    assert len(logs.records) > 50
    assert sum(1 for where in haystacks if where.startswith("Event ")) >= 8
    assert any(
        "HTTP 500" in text
        for where, text in haystacks.items()
        if where.startswith("status of NotificationEvent")
    )

    leaks = _leaks(needles, haystacks)
    assert not leaks, "secrets found:\n" + "\n".join(leaks)


def test_needles_find_what_they_look_for() -> None:
    """The forms looked for do match a key written in a log line, in a JSON string or on its own."""
    key = ec.generate_private_key(ec.SECP256R1())
    for encoding in (serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8):
        pem = key.private_bytes(serialization.Encoding.PEM, encoding, serialization.NoEncryption()).decode()
        needles = _key_needles("key", pem)
        body = "".join(pem.strip().splitlines()[1:-1])
        for haystack in (
            f"oops: {pem}",
            json.dumps({"message": pem}),
            body,
            base64.b64encode(pem.encode()).decode(),
        ):
            assert _leaks(needles, {"here": haystack}), haystack[:60]
        # A whole PEM is recognised as such inside a JSON string too, not only by its slice.
        assert "key (PEM) in here" in _leaks(needles, {"here": json.dumps({"message": pem})})
        assert not _leaks(needles, {"elsewhere": "nothing secret in here"})
