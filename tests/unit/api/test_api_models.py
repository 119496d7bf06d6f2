"""The API models parse whole Kubernetes objects and mirror the CRD's validation."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from pydantic import ValidationError

from certctl_operator.api import (
    API_GROUP_VERSION,
    RESOURCES,
    CertificateEventType,
    ClusterIssuer,
    Condition,
    ConditionStatus,
    DeliveryAttempt,
    DeliveryPhase,
    Issuer,
    IssuerSpec,
    IssuerType,
    KeyUsage,
    ManagedCertificate,
    ManagedCertificateSpec,
    NotificationChannel,
    NotificationEvent,
    NotificationEventStatus,
    NotificationEventType,
    PrivateKeyAlgorithm,
    PrivateKeySpec,
    Revocation,
    RevocationReason,
    parse_object,
    resource_class,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def certificate_body(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "secretName": "web-tls",
        "dnsNames": ["web.example.com"],
        "issuerRef": {"name": "ca"},
    }
    base.update(spec)
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": "ManagedCertificate",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": base,
    }


def error_text(excinfo: pytest.ExceptionInfo[ValidationError]) -> str:
    return str(excinfo.value)


# --------------------------------------------------------------------------- whole objects


def example_documents() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def test_there_is_an_example_of_every_kind() -> None:
    kinds = {doc["kind"] for doc in example_documents()}
    assert {resource.KIND for resource in RESOURCES} <= kinds
    assert "Namespace" in kinds


@pytest.mark.parametrize(
    "document",
    [doc for doc in example_documents() if doc["apiVersion"] == API_GROUP_VERSION],
    ids=lambda doc: f"{doc['kind']}/{doc['metadata']['name']}",
)
def test_every_example_parses(document: dict[str, Any]) -> None:
    parsed = parse_object(document)
    assert document["kind"] == parsed.KIND
    assert parsed.metadata.name == document["metadata"]["name"]


def test_examples_use_the_demo_namespace() -> None:
    for doc in example_documents():
        if doc["kind"] in {"Namespace", "ClusterIssuer"}:
            continue
        assert doc["metadata"]["namespace"] == "certctl-demo", doc["metadata"]["name"]


def test_whole_object_parses_with_status_and_dumps_back_in_camel_case() -> None:
    body = certificate_body(renewBeforePercentage=25, isCA=False)
    body["metadata"].update(
        generation=3, resourceVersion="42", uid="u-1", creationTimestamp="2026-01-02T03:04:05Z"
    )
    body["status"] = {
        "observedGeneration": 2,
        "notAfter": "2026-04-01T00:00:00Z",
        "fingerprintSHA256": "ab" * 32,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Issued",
                "message": "",
                "lastTransitionTime": "2026-01-02T03:04:05Z",
                "observedGeneration": 2,
            }
        ],
    }
    cert = ManagedCertificate.model_validate(body)
    assert cert.metadata.generation == 3
    assert cert.metadata.creation_timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert cert.spec.renew_before_percentage == 25
    assert cert.status.not_after == datetime(2026, 4, 1, tzinfo=UTC)
    assert cert.status.conditions[0].status is ConditionStatus.TRUE
    assert cert.dump_status() == body["status"]
    round_trip = cert.to_body()
    assert round_trip["spec"]["secretName"] == "web-tls"
    assert round_trip["status"] == body["status"]
    assert round_trip["metadata"]["resourceVersion"] == "42"


def test_kopf_body_is_accepted() -> None:
    body = kopf.Body(certificate_body())
    cert = ManagedCertificate.from_body(body)
    assert cert.spec.secret_name == "web-tls"
    assert cert.status.conditions == []


def test_unknown_metadata_is_kept() -> None:
    body = certificate_body()
    body["metadata"]["finalizers"] = ["certctl.io/secret"]
    cert = ManagedCertificate.model_validate(body)
    assert cert.to_body()["metadata"]["finalizers"] == ["certctl.io/secret"]


def test_field_names_and_aliases_both_work() -> None:
    by_name = ManagedCertificateSpec(
        secret_name="a", common_name="a", issuer_ref={"name": "ca"}, is_ca=True, renew_before="1h"
    )
    by_alias = ManagedCertificateSpec.model_validate(
        {"secretName": "a", "commonName": "a", "issuerRef": {"name": "ca"}, "isCA": True, "renewBefore": "1h"}
    )
    assert by_name == by_alias
    assert by_name.dump() == {
        "secretName": "a",
        "commonName": "a",
        "duration": "90d",
        "renewBefore": "1h",
        "isCA": True,
        "issuerRef": {"name": "ca", "kind": "Issuer"},
        "deleteSecretOnDeletion": False,
    }


def test_kind_and_api_version_are_checked_and_filled_in() -> None:
    body = certificate_body()
    del body["kind"], body["apiVersion"]
    cert = ManagedCertificate.model_validate(body)
    assert (cert.kind, cert.api_version) == ("ManagedCertificate", "certctl.io/v1alpha1")
    with pytest.raises(ValidationError, match="kind must be ManagedCertificate"):
        ManagedCertificate.model_validate({**certificate_body(), "kind": "Certificate"})
    with pytest.raises(ValidationError, match=r"apiVersion must be certctl\.io/v1alpha1"):
        ManagedCertificate.model_validate({**certificate_body(), "apiVersion": "cert-manager.io/v1"})


def test_resource_class_and_names() -> None:
    assert resource_class("ClusterIssuer") is ClusterIssuer
    with pytest.raises(KeyError):
        resource_class("Certificate")
    assert ManagedCertificate.crd_name() == "managedcertificates.certctl.io"
    assert Revocation.singular() == "revocation"
    assert not ClusterIssuer.NAMESPACED and Issuer.NAMESPACED


def test_unknown_spec_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ManagedCertificate.model_validate(certificate_body(dnsName="typo.example.com"))


# --------------------------------------------------------------------------- timestamps


def test_timestamps_are_written_like_metav1_time() -> None:
    status = NotificationEventStatus(
        phase=DeliveryPhase.FAILED,
        retry_count=1,
        next_retry_at=datetime(2026, 1, 1, 12, 0, 30, 123456, tzinfo=UTC),
    )
    assert status.dump() == {
        "phase": "Failed",
        "retryCount": 1,
        "nextRetryAt": "2026-01-01T12:00:30Z",
        "conditions": [],
        "attempts": [],
    }
    berlin_winter = timezone(timedelta(hours=1))
    sent = datetime(2026, 1, 1, 14, 0, tzinfo=berlin_winter)
    assert NotificationEventStatus(sent_at=sent).dump()["sentAt"] == "2026-01-01T13:00:00Z"


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        NotificationEventStatus(sent_at=datetime(2026, 1, 1))


def test_attempt_history_is_bounded() -> None:
    status = NotificationEventStatus()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for minute in range(15):
        status.add_attempt(
            DeliveryAttempt(time=start + timedelta(minutes=minute), result="Failed", error=f"e{minute}")
        )
    assert len(status.attempts) == 10
    assert status.attempts[0].error == "e5"
    assert status.attempts[-1].error == "e14"


# --------------------------------------------------------------------------- ManagedCertificate rules


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"dnsNames": None, "commonName": None}, "at least one of commonName, dnsNames"),
        ({"dnsNames": []}, "at least one of commonName, dnsNames"),
        ({"renewBefore": "1h", "renewBeforePercentage": 20}, "mutually exclusive"),
        ({"duration": "1d", "renewBefore": "25h"}, "renewBefore (25h) must be shorter than duration (1d)"),
        ({"duration": "2160h", "renewBefore": "90d"}, "must be shorter than duration"),
        ({"duration": "90 days"}, "String should match pattern"),
        ({"renewBefore": "1w"}, "String should match pattern"),
        ({"renewBeforePercentage": 0}, "greater than or equal to 1"),
        ({"renewBeforePercentage": 100}, "less than or equal to 99"),
        ({"privateKey": {"algorithm": "RSA", "size": 1024}}, "size for RSA keys must be 2048, 3072 or 4096"),
        ({"privateKey": {"size": 256}}, "size for RSA keys must be"),
        ({"privateKey": {"algorithm": "ECDSA", "size": 2048}}, "size for ECDSA keys must be 256, 384 or 521"),
        ({"privateKey": {"algorithm": "Ed25519", "size": 256}}, "size must not be set for Ed25519"),
        ({"privateKey": {"algorithm": "DSA"}}, "Input should be 'RSA', 'ECDSA' or 'Ed25519'"),
        ({"privateKey": {"encoding": "PEM"}}, "PKCS1"),
        ({"privateKey": {"size": "2048"}}, "valid integer"),
        ({"issuerRef": {"name": "ca", "kind": "CertificateAuthority"}}, "'Issuer' or 'ClusterIssuer'"),
        ({"issuerRef": {}}, "issuerRef.name"),
        ({"secretName": "Web_TLS"}, "secretName"),
        ({"usages": ["server auth", "server auth"]}, "duplicate entry"),
        ({"usages": ["serverAuth"]}, "usages"),
        ({"ipAddresses": ["10.0.0.256"]}, "must be an IPv4 or IPv6 address"),
        ({"ipAddresses": ["fe80::1%eth0"]}, "must be an IPv4 or IPv6 address"),
        ({"ipAddresses": ["::ffff:10.0.0.1"]}, "must be an IPv4 or IPv6 address"),
        ({"uris": ["not a uri"]}, "String should match pattern"),
        ({"emailAddresses": ["nobody"]}, "String should match pattern"),
        ({"subject": {"countries": ["DEU"]}}, "countries"),
        ({"isCA": "yes"}, "valid boolean"),
        ({"notifications": {"channels": []}}, "at least 1 item"),
        ({"notifications": {"channels": ["ops"], "events": ["Test"]}}, "events"),
        ({"notifications": {"channels": ["ops"], "expiryThresholds": ["30d", "30d"]}}, "duplicate entry"),
        ({"commonName": "x" * 65}, "at most 64 characters"),
    ],
)
def test_certificate_spec_rules(spec: dict[str, Any], message: str) -> None:
    body = certificate_body(**spec)
    body["spec"] = {key: value for key, value in body["spec"].items() if value is not None}
    with pytest.raises(ValidationError) as excinfo:
        ManagedCertificate.model_validate(body)
    assert message in error_text(excinfo)


@pytest.mark.parametrize(
    "spec",
    [
        {"commonName": "only a common name", "dnsNames": None},
        {"ipAddresses": ["10.0.0.1", "2001:db8::1"], "dnsNames": None},
        {"uris": ["spiffe://cluster.local/ns/demo/sa/web"], "dnsNames": None},
        {"emailAddresses": ["ops@example.com"], "dnsNames": None},
        {"dnsNames": ["*.example.com", "example.com"]},
        {"duration": "1h30m", "renewBefore": "45m"},
        {"duration": "1.5d", "renewBefore": "35h59m59s"},
        {"renewBeforePercentage": 1},
        {"privateKey": {"algorithm": "Ed25519", "encoding": "PKCS8"}},
        {"privateKey": {"algorithm": "ECDSA", "size": 521, "rotationPolicy": "Never"}},
        {"privateKey": {"algorithm": "RSA", "size": 4096}},
        {"usages": ["digital signature", "key encipherment", "server auth", "client auth"]},
        {"subject": {"organizations": ["Example"], "countries": ["de"]}},
        {"issuerRef": {"name": "root", "kind": "ClusterIssuer"}},
    ],
)
def test_valid_certificate_specs(spec: dict[str, Any]) -> None:
    body = certificate_body(**spec)
    body["spec"] = {key: value for key, value in body["spec"].items() if value is not None}
    ManagedCertificate.model_validate(body)


def test_certificate_defaults_and_derived_values() -> None:
    spec = ManagedCertificate.model_validate(certificate_body()).spec
    assert spec.duration == "90d"
    assert spec.duration_delta == timedelta(days=90)
    assert spec.key == PrivateKeySpec()
    assert spec.key.algorithm is PrivateKeyAlgorithm.RSA
    assert spec.key.effective_size == 2048
    assert spec.effective_usages == (KeyUsage.DIGITAL_SIGNATURE, KeyUsage.KEY_ENCIPHERMENT)
    assert spec.renewal_lead(timedelta(days=90)) == timedelta(days=30)
    assert spec.delete_secret_on_deletion is False

    with_percentage = spec.model_copy(update={"renew_before_percentage": 10})
    assert with_percentage.renewal_lead(timedelta(days=90)) == timedelta(days=9)
    with_renew_before = spec.model_copy(update={"renew_before": "36h"})
    assert with_renew_before.renewal_lead(timedelta(days=90)) == timedelta(hours=36)

    assert PrivateKeySpec(algorithm=PrivateKeyAlgorithm.ECDSA).effective_size == 256
    assert PrivateKeySpec(algorithm=PrivateKeyAlgorithm.ED25519).effective_size is None


def test_notification_defaults() -> None:
    spec = ManagedCertificate.model_validate(certificate_body(notifications={"channels": ["ops"]})).spec
    assert spec.notifications is not None
    assert spec.notifications.expiry_thresholds == ["30d", "14d", "7d", "0d"]
    assert [str(event) for event in spec.notifications.events] == [
        "Issued",
        "Renewed",
        "RenewalFailed",
        "Expiring",
        "Revoked",
    ]


# --------------------------------------------------------------------------- issuers


def issuer_body(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_GROUP_VERSION, "kind": "Issuer", "metadata": {"name": "ca"}, "spec": spec}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "no issuer type is set: set one of selfSigned, ca or acme"),
        ({"selfSigned": {}, "ca": {"secretName": "ca"}}, "selfSigned, ca and acme are mutually exclusive"),
        ({"ca": {}}, "ca.secretName"),
        ({"ca": {"secretName": "ca"}, "crl": {"validity": "1h", "refreshInterval": "2h"}}, "refreshInterval"),
        ({"ca": {"secretName": "ca"}, "crl": {"validity": "forever"}}, "String should match pattern"),
        ({"ca": {"secretName": "ca"}, "ocsp": {"enabled": "sometimes"}}, "valid boolean"),
        ({"selfSigned": {}, "publicBaseURL": "ftp://pki.example.com"}, "String should match pattern"),
        ({"selfSigned": {"ca": "x"}}, "Extra inputs"),
    ],
)
def test_issuer_spec_rules(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        Issuer.model_validate(issuer_body(**spec))
    assert message in error_text(excinfo)


def test_issuer_defaults() -> None:
    ca = IssuerSpec.model_validate({"ca": {"secretName": "ca"}, "publicBaseURL": "http://127.0.0.1:8080"})
    assert ca.type is IssuerType.CA
    assert ca.crl_settings.validity is None
    assert ca.crl_settings.validity_delta == timedelta(hours=24)
    assert ca.crl_settings.refresh_interval_delta == timedelta(hours=1)
    assert ca.ocsp_settings.enabled is True
    assert ca.ocsp_settings.response_validity == "1h"
    assert ca.public_base_url == "http://127.0.0.1:8080"
    assert IssuerSpec.model_validate({"selfSigned": {}}).type is IssuerType.SELF_SIGNED
    assert IssuerSpec.model_validate({"selfSigned": {}}).dump() == {"selfSigned": {}}


def test_cluster_issuer_keeps_its_revocation_list() -> None:
    body = {
        "apiVersion": API_GROUP_VERSION,
        "kind": "ClusterIssuer",
        "metadata": {"name": "root"},
        "spec": {"ca": {"secretName": "root-ca"}},
        "status": {
            "type": "CA",
            "crlNumber": 7,
            "revokedCertificates": [
                {
                    "serialNumber": "1f2e",
                    "revokedAt": "2026-01-01T00:00:00Z",
                    "reason": "keyCompromise",
                    "notAfter": "2026-03-01T00:00:00Z",
                }
            ],
        },
    }
    issuer = ClusterIssuer.model_validate(body)
    entry = issuer.status.revoked_certificates[0]
    assert entry.reason is RevocationReason.KEY_COMPROMISE
    assert entry.reason.code == 1
    assert issuer.dump_status()["revokedCertificates"] == body["status"]["revokedCertificates"]


# --------------------------------------------------------------------------- revocations


def revocation_body(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_GROUP_VERSION, "kind": "Revocation", "metadata": {"name": "r"}, "spec": spec}


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("unspecified", 0),
        ("keyCompromise", 1),
        ("cACompromise", 2),
        ("affiliationChanged", 3),
        ("superseded", 4),
        ("cessationOfOperation", 5),
        ("certificateHold", 6),
        ("privilegeWithdrawn", 9),
    ],
)
def test_accepted_revocation_reasons(reason: str, code: int) -> None:
    revocation = Revocation.model_validate(revocation_body(certificateRef={"name": "web"}, reason=reason))
    assert revocation.spec.reason.code == code
    assert revocation.spec.reissue is True


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("removeFromCRL", "removeFromCRL is not accepted: it is only meaningful in delta CRLs"),
        ("aACompromise", "aACompromise is not accepted: it concerns attribute authorities"),
        ("compromised", "Input should be 'unspecified'"),
    ],
)
def test_refused_revocation_reasons_say_why(reason: str, message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        Revocation.model_validate(revocation_body(certificateRef={"name": "web"}, reason=reason))
    assert message in error_text(excinfo)


def test_revocation_needs_a_certificate_and_a_reason() -> None:
    with pytest.raises(ValidationError) as excinfo:
        Revocation.model_validate(revocation_body(certificateRef={"name": "web"}))
    assert "spec.reason" in error_text(excinfo)
    with pytest.raises(ValidationError) as excinfo:
        Revocation.model_validate(revocation_body(reason="superseded"))
    assert "spec.certificateRef" in error_text(excinfo)


# --------------------------------------------------------------------------- notifications


def channel_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": "NotificationChannel",
        "metadata": {"name": "ops"},
        "spec": spec,
    }


SECRET_REF = {"name": "hook", "key": "url"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "no channel type is set"),
        (
            {
                "webhook": {"url": "http://127.0.0.1:9/x"},
                "email": {"host": "smtp", "from": "a@b", "to": ["c@d"]},
            },
            "webhook, email, slack, teams and pagerduty are mutually exclusive",
        ),
        ({"slack": {}}, "slack.webhookURLSecretRef"),
        ({"teams": {"webhookURLSecretRef": {"name": "hook"}}}, "teams.webhookURLSecretRef.key"),
        ({"pagerduty": {}}, "pagerduty.routingKeySecretRef"),
        ({"webhook": {}}, "no webhook URL is set"),
        (
            {"webhook": {"url": "http://x", "urlSecretRef": SECRET_REF}},
            "url and urlSecretRef are mutually exclusive",
        ),
        ({"webhook": {"url": "mailto:ops@example.com"}}, "String should match pattern"),
        ({"webhook": {"url": "http://x", "timeout": "ten seconds"}}, "String should match pattern"),
        ({"webhook": {"url": "http://x", "caBundle": "not base64!"}}, "base64"),
        (
            {"email": {"host": "smtp", "from": "a@b", "to": ["c@d"], "security": "ssl"}},
            "'none', 'starttls' or 'tls'",
        ),
        ({"email": {"host": "smtp", "from": "a@b", "to": []}}, "at least 1 item"),
        ({"email": {"host": "smtp", "from": "a@b", "to": ["c@d"], "port": 0}}, "greater than or equal to 1"),
        ({"email": {"host": "smtp", "from": "a@b", "to": ["c@d"], "password": "x"}}, "Extra inputs"),
    ],
)
def test_channel_spec_rules(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        NotificationChannel.model_validate(channel_body(**spec))
    assert message in error_text(excinfo)


def test_channel_types_and_defaults() -> None:
    hook = NotificationChannel.model_validate(
        channel_body(webhook={"urlSecretRef": SECRET_REF, "caBundle": "LS0tLS1CRUdJTg==\n"})
    )
    assert hook.spec.type == "Webhook"
    assert hook.spec.webhook is not None and hook.spec.webhook.timeout == "10s"
    mail = NotificationChannel.model_validate(
        channel_body(email={"host": "127.0.0.1", "from": "certctl@example.com", "to": ["ops@example.com"]})
    )
    assert mail.spec.type == "Email"
    assert mail.spec.email is not None
    assert (mail.spec.email.port, mail.spec.email.security) == (587, "starttls")
    assert mail.spec.dump()["email"]["from"] == "certctl@example.com"
    for kind, spec in [
        ("Slack", {"slack": {"webhookURLSecretRef": SECRET_REF}}),
        ("Teams", {"teams": {"webhookURLSecretRef": SECRET_REF}}),
        ("PagerDuty", {"pagerduty": {"routingKeySecretRef": SECRET_REF}}),
    ]:
        assert NotificationChannel.model_validate(channel_body(**spec)).spec.type == kind


def event_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": "NotificationEvent",
        "metadata": {"name": "e"},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"channelRef": {"name": "ops"}}, "spec.type"),
        ({"type": "Test"}, "spec.channelRef"),
        ({"type": "Deleted", "channelRef": {"name": "ops"}}, "'Issued', 'Renewed', 'RenewalFailed'"),
        (
            {"type": "Test", "channelRef": {"name": "ops"}, "severity": "error"},
            "'info', 'warning' or 'critical'",
        ),
        ({"type": "Test", "channelRef": {"name": "ops"}, "details": {"n": 1}}, "valid string"),
    ],
)
def test_event_spec_rules(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        NotificationEvent.model_validate(event_body(**spec))
    assert message in error_text(excinfo)


def test_event_defaults_and_status() -> None:
    event = NotificationEvent.model_validate(
        {
            **event_body(type="Expiring", channelRef={"name": "ops"}, certificateRef={"name": "web"}),
            "status": {"phase": "Dead", "retryCount": 4, "lastError": "connection refused"},
        }
    )
    assert event.spec.severity == "info"
    assert event.status.phase is DeliveryPhase.DEAD
    event.status.next_retry_at = None
    assert event.dump_status() == {
        "phase": "Dead",
        "retryCount": 4,
        "lastError": "connection refused",
        "conditions": [],
        "attempts": [],
    }


def test_condition_rejects_bad_status_and_reason() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError):
        Condition(type="Ready", status="Yes", reason="Issued", last_transition_time=now)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Condition(type="Ready", status=ConditionStatus.TRUE, reason="has spaces", last_transition_time=now)


def test_models_do_not_share_mutable_defaults() -> None:
    first = ManagedCertificate.model_validate(certificate_body())
    second = ManagedCertificate.model_validate(copy.deepcopy(certificate_body()))
    first.status.conditions.append(
        Condition(
            type="Ready",
            status=ConditionStatus.TRUE,
            reason="Issued",
            last_transition_time=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    assert second.status.conditions == []


def test_certificate_event_types_are_the_notification_event_types_but_test() -> None:
    # A ManagedCertificate subscribes to what it can announce; a channel test is the only other kind.
    assert {t.value for t in CertificateEventType} | {NotificationEventType.TEST.value} == {
        t.value for t in NotificationEventType
    }
