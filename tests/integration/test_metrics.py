"""The operator's metrics and logs during a real run, judged by their values.

One run, shared by the tests of this module: a real ``certctl-operator run``
against the local API server. A self-signed Issuer signs a CA certificate
(a ManagedCertificate), a CA Issuer made from it signs two leaf
certificates, one of them is revoked (keyCompromise, no reissue), one
notification is delivered and another dead-lettered, the OCSP responder is
asked once, and then a certificate and the CA Issuer are deleted. The
``/metrics`` exposition is scraped along the way and compared with what the
Secrets and the objects' status say; the operator's JSON log lines are
checked for their object references.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.support.observability import LogLines, Scrape, json_records, scrape_until
from tests.support.pki_cluster import (
    GROUP,
    VERSION,
    ask_ocsp,
    certificate_body,
    condition,
    create,
    custom,
    get,
    issuer_body,
    revocation_body,
    wait_crl,
    wait_for,
    wait_issued,
    wait_phase,
    wait_ready,
)
from tests.support.receivers import HTTPReceiver, ScriptedResponse

from certctl_operator.dev.controlplane import ControlPlane
from certctl_operator.dev.operator_process import OperatorProcess
from certctl_operator.dev.operator_process import operator_factory as operators

ENV = {"CERTCTL_ISSUER_CHECK_INTERVAL": "1s", "CERTCTL_NOTIFICATION_MAX_ATTEMPTS": "2"}
CERTIFICATES = ("root-ca", "web", "api")
PER_CERTIFICATE = (
    "certctl_certificate_expiration_timestamp_seconds",
    "certctl_certificate_not_before_timestamp_seconds",
    "certctl_certificate_renewal_timestamp_seconds",
    "certctl_certificate_ready_status",
)
ALLOWED_LABELS = {
    "namespace",
    "name",
    "issuer_name",
    "issuer_kind",
    "condition",
    "kind",
    "issuer",
    "result",
    "reason",
    "phase",
    "status",
    "channel_type",
    "channel",
    "threshold",
    "le",
}


@dataclass
class Run:
    namespace: str
    operator: OperatorProcess
    leaves: dict[str, x509.Certificate] = field(default_factory=dict)
    """The certificate each ManagedCertificate's Secret held, before any deletion."""
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    issuer_status: dict[str, Any] = field(default_factory=dict)
    serials: set[str] = field(default_factory=set)
    before: Scrape = field(default_factory=lambda: Scrape(""))
    after_certificate_deleted: Scrape = field(default_factory=lambda: Scrape(""))
    after_issuer_deleted: Scrape = field(default_factory=lambda: Scrape(""))
    ocsp_status: ocsp.OCSPCertStatus | None = None
    delivered: str = ""
    """The NotificationEvent the operator created for web's issuance (delivered)."""
    logs: LogLines = field(default_factory=lambda: LogLines([], []))
    events: list[Any] = field(default_factory=list)


def _leaf(kube: Any, namespace: str, secret_name: str) -> x509.Certificate:
    secret = client.CoreV1Api(kube).read_namespaced_secret(secret_name, namespace)
    data: dict[str, Any] = dict(secret.data or {})
    return x509.load_pem_x509_certificates(base64.b64decode(data["tls.crt"]))[0]


def _delete_and_wait(kube: Any, namespace: str, plural: str, name: str) -> None:
    custom(kube).delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    last: dict[str, Any] = {}

    def gone() -> bool:
        try:
            last.update(get(kube, namespace, plural, name)["metadata"])
        except ApiException as error:
            return bool(error.status == 404)
        return False

    try:
        wait_for(f"{plural}/{name} deleted", gone)
    except AssertionError as error:
        raise AssertionError(f"{error}; finalizers: {last.get('finalizers')}") from None


def _ready(scrape: Scrape, namespace: str, name: str, issuer: str) -> dict[str, float | None]:
    labels = {"namespace": namespace, "name": name, "issuer_name": issuer, "issuer_kind": "Issuer"}
    return {
        condition: scrape.value("certctl_certificate_ready_status", **labels, condition=condition)
        for condition in ("True", "False", "Unknown")
    }


def _test_event(name: str, channel: str) -> dict[str, Any]:
    return {
        "kind": "NotificationEvent",
        "metadata": {"name": name},
        "spec": {
            "type": "Test",
            "channelRef": {"name": channel},
            "subject": f"metrics test {name}",
            "message": f"Message of {name}.",
        },
    }


@pytest.fixture(scope="module")
def run(control_plane: ControlPlane, kube: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    namespace = f"metrics-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    logs = tmp_path_factory.mktemp("metrics-operator")
    with (
        operators(control_plane.kubeconfig, Path(logs)) as factory,
        HTTPReceiver(default=ScriptedResponse(status=200)) as good,
        HTTPReceiver(default=ScriptedResponse(status=500, body=b"down")) as bad,
    ):
        operator = factory(namespaces=[namespace], env=ENV, start=False)
        result = Run(namespace, operator)
        try:
            _flow(kube, result, good, bad)
        finally:
            print(f"--- {operator.log_path}\n{operator.log_tail(200)}")
        yield result


def _flow(kube: Any, run: Run, good: HTTPReceiver, bad: HTTPReceiver) -> None:
    namespace, operator = run.namespace, run.operator
    base = operator.base_url

    # A CA certificate from a self-signed issuer, then a CA issuer made from it.
    create(kube, namespace, "issuers", issuer_body("selfsigned", ca_secret=None, base_url=None))
    root = certificate_body(
        "root-ca", "selfsigned", secretName="root-ca-keypair", isCA=True, duration="2160h"
    )
    root["spec"].pop("dnsNames")
    root["spec"]["commonName"] = "metrics test root"
    create(kube, namespace, "managedcertificates", root)
    operator.start()
    wait_issued(kube, namespace, "root-ca")
    create(kube, namespace, "issuers", issuer_body("ca", ca_secret="root-ca-keypair", base_url=base))
    wait_ready(kube, namespace, "issuers", "ca")

    # Two channels: one whose receiver accepts everything, one whose receiver is down.
    for channel, receiver in (("good", good), ("bad", bad)):
        spec = {"webhook": {"url": receiver.url}}
        create(
            kube,
            namespace,
            "notificationchannels",
            {"kind": "NotificationChannel", "metadata": {"name": channel}, "spec": spec},
        )

    # Two leaves, web announcing its issuance to the good channel; api revoked for good.
    notifications = {"channels": ["good"], "events": ["Issued"]}
    create(kube, namespace, "managedcertificates", certificate_body("web", "ca", notifications=notifications))
    create(kube, namespace, "managedcertificates", certificate_body("api", "ca"))
    web = wait_issued(kube, namespace, "web")
    wait_issued(kube, namespace, "api")
    wait_crl(base, namespace, "ca", lambda der: True)
    for name in CERTIFICATES:
        run.leaves[name] = _leaf(kube, namespace, f"{name}-tls" if name != "root-ca" else "root-ca-keypair")
    create(kube, namespace, "revocations", revocation_body("api-compromised", "api", "keyCompromise", False))
    wait_phase(kube, namespace, "api-compromised", "Revoked")
    wait_for(
        "api shown revoked",
        lambda: condition(get(kube, namespace, "managedcertificates", "api")).get("reason") == "Revoked",
    )

    # The notification of web's issuance delivered, a test message dead-lettered (two attempts, both 500).
    create(kube, namespace, "notificationevents", _test_event("doomed", "bad"))

    def phase_of(name: str) -> str | None:
        return (get(kube, namespace, "notificationevents", name).get("status") or {}).get("phase")

    def issued_event() -> str | None:
        listing: Any = custom(kube).list_namespaced_custom_object(
            GROUP, VERSION, namespace, "notificationevents"
        )
        names = [item["metadata"]["name"] for item in listing["items"] if item["spec"]["type"] == "Issued"]
        return names[0] if len(names) == 1 else None

    run.delivered = wait_for("web's Issued NotificationEvent", issued_event)
    wait_for(f"NotificationEvent {run.delivered} Sent", lambda: phase_of(run.delivered) == "Sent")
    wait_for("NotificationEvent doomed Dead", lambda: phase_of("doomed") == "Dead")

    # The OCSP responder, asked once.
    answer = ask_ocsp(f"{base}/ocsp/{namespace}/ca", web.certificate, web.ca)
    run.ocsp_status = answer.certificate_status

    def settled(scrape: Scrape) -> bool:
        issuer = get(kube, namespace, "issuers", "ca")
        run.issuer_status = dict(issuer.get("status") or {})
        return (
            _ready(scrape, namespace, "api", "ca")["False"] == 1.0
            and scrape.value("certctl_notification_events", phase="Dead") == 1.0
            and scrape.value("certctl_notification_events", phase="Sent") == 1.0
            and scrape.value("certctl_crl_number", issuer=f"{namespace}/ca")
            == run.issuer_status.get("crlNumber")
        )

    run.before = scrape_until(operator, settled)
    for name in CERTIFICATES:
        status = dict(get(kube, namespace, "managedcertificates", name).get("status") or {})
        run.statuses[name] = status
        run.serials.update(status.get("revokedSerialNumbers") or [])
        if status.get("serialNumber"):
            run.serials.add(status["serialNumber"])

    # A certificate deleted: its series go, the totals follow.
    _delete_and_wait(kube, namespace, "managedcertificates", "web")
    run.after_certificate_deleted = scrape_until(
        operator, lambda scrape: not scrape.matching(namespace=namespace, name="web")
    )

    # The CA issuer deleted: its Ready and CRL series go.
    _delete_and_wait(kube, namespace, "issuers", "ca")
    run.after_issuer_deleted = scrape_until(
        operator,
        lambda scrape: (
            not scrape.matching(namespace=namespace, name="ca", kind="Issuer")
            and not scrape.matching(issuer=f"{namespace}/ca")
        ),
    )
    run.logs = json_records(operator.logs())
    run.events = list(client.CoreV1Api(kube).list_namespaced_event(namespace).items)


# --------------------------------------------------------------------------- metrics


def test_certificate_series_hold_what_the_secrets_hold(run: Run) -> None:
    scrape, namespace = run.before, run.namespace
    issuers = {"root-ca": "selfsigned", "web": "ca", "api": "ca"}
    for name, issuer in issuers.items():
        labels = {"namespace": namespace, "name": name, "issuer_name": issuer, "issuer_kind": "Issuer"}
        leaf = run.leaves[name]
        expiration = scrape.value("certctl_certificate_expiration_timestamp_seconds", **labels)
        not_before = scrape.value("certctl_certificate_not_before_timestamp_seconds", **labels)
        renewal = scrape.value("certctl_certificate_renewal_timestamp_seconds", **labels)
        assert expiration == leaf.not_valid_after_utc.timestamp(), name
        assert not_before == leaf.not_valid_before_utc.timestamp(), name
        renewal_time = datetime.fromisoformat(run.statuses[name]["renewalTime"].replace("Z", "+00:00"))
        assert renewal == renewal_time.timestamp(), name
        assert not_before < renewal < expiration, name
    assert _ready(scrape, namespace, "root-ca", "selfsigned") == {"True": 1.0, "False": 0.0, "Unknown": 0.0}
    assert _ready(scrape, namespace, "web", "ca") == {"True": 1.0, "False": 0.0, "Unknown": 0.0}
    assert _ready(scrape, namespace, "api", "ca") == {"True": 0.0, "False": 1.0, "Unknown": 0.0}


def test_issuer_readiness_totals_and_issuance_counters(run: Run) -> None:
    scrape, namespace = run.before, run.namespace
    for name in ("selfsigned", "ca"):
        states = {
            condition: scrape.value(
                "certctl_issuer_ready_status",
                namespace=namespace,
                name=name,
                kind="Issuer",
                condition=condition,
            )
            for condition in ("True", "False", "Unknown")
        }
        assert states == {"True": 1.0, "False": 0.0, "Unknown": 0.0}, name
    # This operator watches only the test namespace: three certificates, root-ca (90 days) and
    # web Ready and valid, web and api (24 hours) expiring within 30 days, api revoked.
    assert scrape.value("certctl_certificate_total") == 3
    assert scrape.value("certctl_certificate_active") == 2
    assert scrape.value("certctl_certificate_expiring_soon") == 2
    assert scrape.value("certctl_certificate_expired") == 0
    assert scrape.value("certctl_certificate_revoked") == 1
    # Three issuances, all by Issuers, none failed (the leaves came after the CA issuer was Ready).
    assert scrape.value("certctl_issuance_total", issuer_kind="Issuer", result="success") == 3
    assert scrape.value("certctl_issuance_total", issuer_kind="Issuer", result="failure") in (None, 0.0)
    assert scrape.value("certctl_issuance_duration_seconds_count", issuer_kind="Issuer") == 3
    total = scrape.value("certctl_issuance_duration_seconds_sum", issuer_kind="Issuer")
    assert total is not None and 0 < total < 30


def test_revocation_crl_ocsp_and_notification_metrics(run: Run) -> None:
    scrape, namespace = run.before, run.namespace
    assert scrape.value("certctl_revocations_total", reason="keyCompromise") == 1
    assert [s.labels["reason"] for s in scrape.named("certctl_revocations_total")] == ["keyCompromise"]
    issuer = f"{namespace}/ca"
    assert scrape.value("certctl_crl_number", issuer=issuer) == run.issuer_status["crlNumber"]
    next_update = datetime.fromisoformat(run.issuer_status["crlNextUpdate"].replace("Z", "+00:00"))
    assert scrape.value("certctl_crl_next_update_timestamp_seconds", issuer=issuer) == next_update.timestamp()

    assert run.ocsp_status == ocsp.OCSPCertStatus.GOOD
    answered = {s.labels["status"]: s.value for s in scrape.named("certctl_ocsp_responses_total")}
    assert answered == {"good": 1.0}

    assert scrape.value("certctl_notification_dead_total") == 1
    phases = {s.labels["phase"]: s.value for s in scrape.named("certctl_notification_events")}
    assert phases == {"Pending": 0.0, "Sent": 1.0, "Failed": 0.0, "Dead": 1.0}
    attempts = "certctl_notification_delivery_attempts_total"
    assert scrape.value(attempts, channel_type="webhook", result="success") == 1
    assert scrape.value(attempts, channel_type="webhook", result="failure") == 2


def test_label_values_are_bounded_and_hold_no_serials(run: Run) -> None:
    assert run.serials, "the run issued certificates"
    hex_serials = {serial.replace(":", "").lower() for serial in run.serials}
    for sample in run.before.certctl():
        assert set(sample.labels) <= ALLOWED_LABELS, sample
        for value in sample.labels.values():
            assert value.replace(":", "").lower() not in hex_serials, sample
            assert len(value) <= 253 + 64, sample


def test_deleted_objects_take_their_series_along(run: Run) -> None:
    namespace = run.namespace
    after = run.after_certificate_deleted
    assert not after.matching(namespace=namespace, name="web"), after.matching(
        namespace=namespace, name="web"
    )
    for name in PER_CERTIFICATE:
        assert any(s.labels.get("name") == "api" for s in after.named(name)), f"{name} of api is kept"
    assert after.value("certctl_certificate_total") == 2
    assert after.value("certctl_certificate_active") == 1
    assert after.value("certctl_certificate_expiring_soon") == 1
    assert after.value("certctl_certificate_revoked") == 1

    gone = run.after_issuer_deleted
    assert not gone.matching(namespace=namespace, name="ca", kind="Issuer")
    assert not gone.matching(issuer=f"{namespace}/ca")
    assert (
        gone.value(
            "certctl_issuer_ready_status",
            namespace=namespace,
            name="selfsigned",
            kind="Issuer",
            condition="True",
        )
        == 1
    )
    # Counters are totals over the process's life: they stay.
    assert gone.value("certctl_revocations_total", reason="keyCompromise") == 1


# --------------------------------------------------------------------------- logs


def test_json_log_lines_name_their_object(run: Run) -> None:
    namespace = run.namespace
    assert not run.logs.other, f"lines that are not JSON: {run.logs.other[:5]}"
    records = run.logs.records
    assert len(records) > 20
    names = (
        "selfsigned",
        "ca",
        "root-ca",
        "web",
        "api",
        "api-compromised",
        "good",
        "bad",
        run.delivered,
        "doomed",
    )
    mention = re.compile(rf"\b{re.escape(namespace)}/({'|'.join(map(re.escape, names))})\b")
    about_objects = 0
    for record in records:
        message = str(record.get("message", ""))
        ref = record.get("object")
        if ref is not None:
            about_objects += 1
            assert all(ref.get(key) for key in ("kind", "name", "uid")), record
        if mention.search(message):
            assert ref is not None, f"no object reference: {record}"
            assert ref.get("namespace") == namespace and ref.get("uid"), record
    assert about_objects > 10

    # What each object went through, told by the operator's own loggers too.
    def told(logger: str, kind: str, name: str) -> list[dict[str, Any]]:
        return [
            r
            for r in records
            if str(r.get("logger", "")).startswith(logger)
            and (r.get("object") or {}).get("kind") == kind
            and (r.get("object") or {}).get("name") == name
        ]

    assert told("certctl.issuance", "ManagedCertificate", "web"), "issuance of web"
    assert told("certctl.issuers", "Issuer", "ca"), "issuer ca Ready"
    assert told("certctl.crl", "Issuer", "ca"), "CRL publishing of ca"
    assert told("certctl.notifications", "NotificationEvent", run.delivered), "NotificationEvent created"
    assert told("kopf.objects", "NotificationEvent", run.delivered), "NotificationEvent delivered"
    audit = told("certctl.audit", "Revocation", "api-compromised")
    assert len(audit) == 1 and audit[0]["reason"] == "keyCompromise"


def test_event_reasons_are_stable_words(run: Run) -> None:
    ours = [
        e
        for e in run.events
        if (e.source and e.source.component) == "certctl-operator"
        or e.reporting_component == "certctl-operator"
    ]
    assert ours
    for event in run.events:
        assert re.fullmatch(r"[A-Z][A-Za-z]+", event.reason or ""), (event.reason, event.message)
