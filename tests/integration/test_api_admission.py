"""The CRDs generated from the API models, as a real kube-apiserver enforces them.

Every example applies; a table of bad objects is refused with a message that
names the problem (and the pydantic models refuse the same objects); status
written from the models round-trips through the status subresource; kubectl
explain, the category and the printer columns work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from certctl_operator.api import (
    API_GROUP_VERSION,
    RESOURCES,
    AnyResource,
    AttemptResult,
    ChannelType,
    ClusterIssuer,
    ConditionStatus,
    DeliveryAttempt,
    DeliveryPhase,
    IssuerKind,
    IssuerReference,
    IssuerStatus,
    IssuerType,
    ManagedCertificate,
    ManagedCertificateStatus,
    NotificationChannelStatus,
    NotificationEventStatus,
    Revocation,
    RevocationPhase,
    RevocationReason,
    RevocationStatus,
    RevokedCertificate,
    StatusBase,
    parse_object,
    resource_class,
    set_condition,
)
from certctl_operator.policy.issuance import spec_problems

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEMO_NAMESPACE = "certctl-demo"

Kubectl = Callable[..., Any]


# --------------------------------------------------------------------------- object builders


def obj(kind: str, spec: dict[str, Any] | None, name: str = "bad") -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": API_GROUP_VERSION, "kind": kind, "metadata": {"name": name}}
    if spec is not None:
        body["spec"] = spec
    return body


def cert(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "secretName": "web-tls",
        "dnsNames": ["web.example.com"],
        "issuerRef": {"name": "demo-ca"},
    }
    spec.update(changes)
    return obj("ManagedCertificate", {key: value for key, value in spec.items() if value is not None})


def issuer(kind: str = "Issuer", **spec: Any) -> dict[str, Any]:
    return obj(kind, spec)


def revocation(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"certificateRef": {"name": "web"}, "reason": "keyCompromise"}
    spec.update(changes)
    return obj("Revocation", {key: value for key, value in spec.items() if value is not None})


def channel(**spec: Any) -> dict[str, Any]:
    return obj("NotificationChannel", spec)


def event(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "Test", "channelRef": {"name": "ops"}}
    spec.update(changes)
    return obj("NotificationEvent", {key: value for key, value in spec.items() if value is not None})


SECRET_REF = {"name": "hooks", "key": "url"}
MAIL = {"host": "127.0.0.1", "port": 2525, "from": "certctl@example.com", "to": ["ops@example.com"]}


@dataclass(frozen=True)
class Bad:
    """A manifest the API server must refuse, and a substring its error must contain.

    ``shared`` marks messages that come from the project's own rules, which the
    pydantic models must word the same way. With ``update`` the manifest is
    created first and the merge patch ``update`` is what must be refused.
    """

    id: str
    manifest: dict[str, Any]
    expect: str
    shared: bool = False
    update: dict[str, Any] | None = field(default=None)


BAD_OBJECTS = [
    # ManagedCertificate
    Bad("cert-missing-secretName", cert(secretName=None), "spec.secretName: Required value"),
    Bad("cert-missing-issuerRef", cert(issuerRef=None), "spec.issuerRef: Required value"),
    Bad(
        "cert-no-identity",
        cert(dnsNames=None),
        "at least one of commonName, dnsNames, ipAddresses, uris or emailAddresses must be set",
        shared=True,
    ),
    Bad(
        "cert-renewBefore-longer-than-duration",
        cert(duration="1d", renewBefore="25h"),
        "renewBefore (25h) must be shorter than duration (1d)",
        shared=True,
    ),
    Bad(
        "cert-renewBefore-equal-to-duration-in-other-units",
        cert(duration="2160h", renewBefore="90d"),
        "renewBefore (90d) must be shorter than duration (2160h)",
        shared=True,
    ),
    Bad(
        "cert-renewBefore-longer-than-default-duration",
        cert(renewBefore="91d"),
        "renewBefore (91d) must be shorter than duration (90d)",
        shared=True,
    ),
    Bad(
        "cert-both-renewBefore-and-percentage",
        cert(renewBefore="10d", renewBeforePercentage=20),
        "renewBefore and renewBeforePercentage are mutually exclusive",
        shared=True,
    ),
    Bad("cert-percentage-zero", cert(renewBeforePercentage=0), "should be greater than or equal to 1"),
    Bad("cert-percentage-100", cert(renewBeforePercentage=100), "should be less than or equal to 99"),
    Bad("cert-malformed-duration", cert(duration="90 days"), "spec.duration in body should match"),
    Bad("cert-malformed-renewBefore-unit", cert(renewBefore="2w"), "spec.renewBefore in body should match"),
    Bad(
        "cert-rsa-1024",
        cert(privateKey={"algorithm": "RSA", "size": 1024}),
        "spec.privateKey.size: Invalid value: size for RSA keys must be 2048, 3072 or 4096",
    ),
    Bad(
        "cert-default-rsa-with-ecdsa-size",
        cert(privateKey={"size": 384}),
        "size for RSA keys must be 2048, 3072 or 4096",
        shared=True,
    ),
    Bad(
        "cert-ecdsa-2048",
        cert(privateKey={"algorithm": "ECDSA", "size": 2048}),
        "size for ECDSA keys must be 256, 384 or 521",
        shared=True,
    ),
    Bad(
        "cert-ed25519-with-size",
        cert(privateKey={"algorithm": "Ed25519", "size": 256}),
        "spec.privateKey.size: Forbidden: size must not be set for Ed25519",
    ),
    Bad("cert-unknown-algorithm", cert(privateKey={"algorithm": "DSA"}), 'Unsupported value: "DSA"'),
    Bad(
        "cert-ed25519-with-pkcs1",
        cert(privateKey={"algorithm": "Ed25519", "encoding": "PKCS1"}),
        "Ed25519 private keys have no PKCS1 encoding, they are always PKCS#8: "
        "leave privateKey.encoding unset or set it to PKCS8",
        shared=True,
    ),
    Bad(
        "cert-duration-28-digits",
        cert(duration="9999999999999999999999999999d"),
        "spec.duration: Invalid value",
    ),
    Bad(
        "cert-duration-just-beyond-maximum",
        cert(duration="36500d1ms"),
        "must be at most 36500d (100 years)",
        shared=True,
    ),
    Bad(
        "cert-renewBefore-beyond-maximum",
        cert(duration="36500d", renewBefore="876001h"),
        "must be at most 36500d (100 years)",
        shared=True,
    ),
    Bad(
        "cert-expiry-threshold-beyond-maximum",
        cert(notifications={"channels": ["ops"], "expiryThresholds": ["7d", "99999999d"]}),
        "must be at most 36500d (100 years)",
        shared=True,
    ),
    Bad(
        "cert-unknown-issuer-kind",
        cert(issuerRef={"name": "ca", "kind": "CertificateAuthority"}),
        'spec.issuerRef.kind: Unsupported value: "CertificateAuthority"',
    ),
    Bad("cert-bad-ip", cert(ipAddresses=["10.0.0.300"]), "must be an IPv4 or IPv6 address", shared=True),
    Bad(
        "cert-duplicate-usage",
        cert(usages=["server auth", "server auth"]),
        'spec.usages[1]: Duplicate value: "server auth"',
    ),
    Bad(
        "cert-test-is-not-a-certificate-event",
        cert(notifications={"channels": ["ops"], "events": ["Issued", "Test"]}),
        'Unsupported value: "Test"',
    ),
    # Issuer / ClusterIssuer
    Bad(
        "issuer-both-types",
        issuer(selfSigned={}, ca={"secretName": "ca"}),
        "only one issuer type may be set: selfSigned, ca and acme are mutually exclusive",
        shared=True,
    ),
    Bad("issuer-no-type", issuer(), "no issuer type is set: set one of selfSigned, ca or acme", shared=True),
    Bad("clusterissuer-no-type", issuer("ClusterIssuer", crl={}), "no issuer type is set", shared=True),
    Bad(
        "clusterissuer-ca-without-secret",
        issuer("ClusterIssuer", ca={}),
        "spec.ca.secretName: Required value",
    ),
    Bad(
        "issuer-crl-refresh-not-shorter",
        issuer(ca={"secretName": "ca"}, crl={"validity": "1h", "refreshInterval": "60m"}),
        "crl.refreshInterval must be shorter than crl.validity",
        shared=True,
    ),
    Bad(
        "issuer-crl-validity-zero",
        issuer(ca={"secretName": "ca"}, crl={"validity": "0s"}),
        "must be at least 1s and at most 36500d",
        shared=True,
    ),
    Bad(
        "issuer-crl-refresh-below-a-second",
        issuer(ca={"secretName": "ca"}, crl={"refreshInterval": "999ms"}),
        "must be at least 1s and at most 36500d",
        shared=True,
    ),
    Bad(
        "issuer-crl-validity-beyond-maximum",
        issuer(ca={"secretName": "ca"}, crl={"validity": "36501d"}),
        "must be at least 1s and at most 36500d",
        shared=True,
    ),
    Bad(
        "clusterissuer-ocsp-response-validity-zero",
        issuer("ClusterIssuer", ca={"secretName": "ca"}, ocsp={"responseValidity": "0ms"}),
        "must be at least 1s and at most 36500d",
        shared=True,
    ),
    Bad(
        "issuer-ftp-public-base-url",
        issuer(selfSigned={}, publicBaseURL="ftp://pki.example.com"),
        "spec.publicBaseURL in body should match",
    ),
    # Revocation
    Bad(
        "revocation-removeFromCRL",
        revocation(reason="removeFromCRL"),
        "removeFromCRL is not accepted: it is only meaningful in delta CRLs",
        shared=True,
    ),
    Bad(
        "revocation-aACompromise",
        revocation(reason="aACompromise"),
        "aACompromise is not accepted: it concerns attribute authorities and attribute certificates",
        shared=True,
    ),
    Bad(
        "revocation-unknown-reason",
        revocation(reason="stolen"),
        "unknown revocation reason stolen: use one of",
    ),
    Bad("revocation-missing-reason", revocation(reason=None), "spec.reason: Required value"),
    Bad(
        "revocation-missing-certificateRef",
        revocation(certificateRef=None),
        "spec.certificateRef: Required value",
    ),
    Bad(
        "revocation-spec-edited-after-creation",
        revocation(),
        "Revocation spec is immutable",
        update={"spec": {"reason": "superseded"}},
    ),
    Bad(
        "revocation-reissue-flipped-after-creation",
        revocation(),
        "Revocation spec is immutable",
        update={"spec": {"reissue": False}},
    ),
    # NotificationChannel
    Bad(
        "channel-webhook-and-email",
        channel(webhook={"url": "http://127.0.0.1:9/hook"}, email=MAIL),
        "only one channel type may be set: webhook, email, slack, teams and pagerduty are mutually exclusive",
        shared=True,
    ),
    Bad("channel-no-type", channel(), "no channel type is set", shared=True),
    Bad(
        "channel-slack-without-secret-ref",
        channel(slack={}),
        "spec.slack.webhookURLSecretRef: Required value",
    ),
    Bad(
        "channel-teams-secret-ref-without-key",
        channel(teams={"webhookURLSecretRef": {"name": "hooks"}}),
        "spec.teams.webhookURLSecretRef.key: Required value",
    ),
    Bad(
        "channel-pagerduty-without-routing-key",
        channel(pagerduty={}),
        "spec.pagerduty.routingKeySecretRef: Required value",
    ),
    Bad(
        "channel-webhook-url-and-url-secret",
        channel(webhook={"url": "http://127.0.0.1:9/hook", "urlSecretRef": SECRET_REF}),
        "url and urlSecretRef are mutually exclusive",
        shared=True,
    ),
    Bad("channel-webhook-without-url", channel(webhook={}), "no webhook URL is set", shared=True),
    Bad(
        "channel-webhook-not-http",
        channel(webhook={"url": "file:///etc/passwd"}),
        "spec.webhook.url in body should match",
    ),
    Bad(
        "channel-email-bad-security",
        channel(email={**MAIL, "security": "ssl"}),
        'spec.email.security: Unsupported value: "ssl"',
    ),
    Bad(
        "channel-email-no-recipients",
        channel(email={**MAIL, "to": []}),
        "spec.email.to in body should have at least 1",
    ),
    Bad(
        "channel-webhook-timeout-beyond-maximum",
        channel(webhook={"url": "http://127.0.0.1:9/hook", "timeout": "9999999999999999999999999999s"}),
        "must be at most 36500d (100 years)",
        shared=True,
    ),
    Bad(
        "channel-email-timeout-beyond-maximum",
        channel(email={**MAIL, "timeout": "36500d1s"}),
        "must be at most 36500d (100 years)",
        shared=True,
    ),
    Bad(
        "channel-slack-timeout-beyond-maximum",
        channel(slack={"webhookURLSecretRef": SECRET_REF, "timeout": "876001h"}),
        "must be at most 36500d (100 years)",
        shared=True,
    ),
    Bad(
        "channel-teams-timeout-beyond-maximum",
        channel(teams={"webhookURLSecretRef": SECRET_REF, "timeout": "52560001m"}),
        "must be at most 36500d (100 years)",
        shared=True,
    ),
    Bad(
        "channel-pagerduty-timeout-beyond-maximum",
        channel(pagerduty={"routingKeySecretRef": SECRET_REF, "timeout": "3153600001s"}),
        "must be at most 36500d (100 years)",
        shared=True,
    ),
    Bad(
        "channel-email-port-zero",
        channel(email={**MAIL, "port": 0}),
        "spec.email.port in body should be greater",
    ),
    # NotificationEvent
    Bad("event-bad-type", event(type="Deleted"), 'spec.type: Unsupported value: "Deleted"'),
    Bad("event-bad-severity", event(severity="error"), 'spec.severity: Unsupported value: "error"'),
    Bad("event-missing-channelRef", event(channelRef=None), "spec.channelRef: Required value"),
    Bad("event-missing-type", event(type=None), "spec.type: Required value"),
    Bad("event-without-spec", obj("NotificationEvent", None), "spec: Required value"),
]


GOOD_OBJECTS = {
    # Right at the edges of the rules, so an off-by-one in the CEL arithmetic shows.
    "renewBefore-just-shorter-in-other-units": cert(duration="2160h", renewBefore="89d23h59m59s"),
    "fractional-days": cert(duration="1.5d", renewBefore="35h59m59s"),
    "milliseconds": cert(duration="1s", renewBefore="999ms"),
    "compound-durations": cert(duration="1h30m", renewBefore="45m"),
    "percentage-bounds": cert(renewBeforePercentage=99),
    "ed25519-without-size": cert(privateKey={"algorithm": "Ed25519", "encoding": "PKCS8"}),
    "durations-at-the-maximum": cert(duration="36500d", renewBefore="875999h59m59.999s"),
    "duration-maximum-in-milliseconds": cert(duration="3153600000000ms"),
    "crl-and-ocsp-at-one-second": issuer(
        ca={"secretName": "ca"},
        crl={"validity": "2s", "refreshInterval": "1s"},
        ocsp={"responseValidity": "1s"},
    ),
    "channel-timeout-at-the-maximum": channel(
        webhook={"url": "http://127.0.0.1:9/hook", "timeout": "36500d"}
    ),
    "ecdsa-521": cert(privateKey={"algorithm": "ECDSA", "size": 521}),
    "identity-from-ip-only": cert(dnsNames=None, ipAddresses=["10.0.0.1", "2001:db8::1"]),
    "identity-from-uri-only": cert(dnsNames=None, uris=["spiffe://cluster.local/ns/demo/sa/web"]),
    "clusterissuer-ca": issuer("ClusterIssuer", ca={"secretName": "root-ca"}, crl={"validity": "7d"}),
    "revocation-certificateHold": revocation(reason="certificateHold", reissue=False, comment="laptop lost"),
    "channel-webhook-secret-url": channel(
        webhook={"urlSecretRef": SECRET_REF, "signingSecretRef": SECRET_REF}
    ),
    "channel-email": channel(email={**MAIL, "security": "none"}),
    "channel-slack": channel(slack={"webhookURLSecretRef": SECRET_REF}),
    "channel-teams": channel(teams={"webhookURLSecretRef": SECRET_REF}),
    "channel-pagerduty": channel(pagerduty={"routingKeySecretRef": SECRET_REF}),
    "event-with-details": event(type="Expiring", severity="critical", details={"threshold": "7d"}),
}


# Defaulted fields next to a value of another field that a rule checks them against: each must be
# accepted by the API server and the models alike, and both must fill in the same defaults.
DEFAULTS_AGAINST_RULES = {
    # privateKey.encoding has no default: PKCS1 for RSA and ECDSA, PKCS8 for Ed25519 when unset.
    "ed25519-encoding-omitted": cert(privateKey={"algorithm": "Ed25519"}),
    "ecdsa-encoding-omitted": cert(privateKey={"algorithm": "ECDSA", "size": 384}),
    "rsa-everything-omitted": cert(privateKey={}),
    "rsa-pkcs8": cert(privateKey={"algorithm": "RSA", "encoding": "PKCS8"}),
    # privateKey.size has no default (per algorithm when unset): no clash with any algorithm.
    "ed25519-rotation-never": cert(privateKey={"algorithm": "Ed25519", "rotationPolicy": "Never"}),
    # duration defaults to 90d; renewBefore and renewBeforePercentage have no default, so a short
    # duration alone never meets a default renewBefore.
    "short-duration-alone": cert(duration="1s"),
    "short-duration-with-percentage": cert(duration="10s", renewBeforePercentage=99),
    # expiryThresholds default to 30d, 14d, 7d and 0d, longer than a short lifetime: allowed,
    # a threshold beyond the lifetime is never armed.
    "short-duration-default-thresholds": cert(duration="1h", notifications={"channels": ["ops"]}),
    # crl.validity and crl.refreshInterval have no schema default: each default follows the other.
    "crl-short-validity-alone": issuer(ca={"secretName": "ca"}, crl={"validity": "30m"}),
    "crl-long-refresh-alone": issuer(ca={"secretName": "ca"}, crl={"refreshInterval": "48h"}),
    "crl-empty": issuer("ClusterIssuer", ca={"secretName": "ca"}, crl={}, ocsp={}),
    "ocsp-disabled-short-validity": issuer(
        ca={"secretName": "ca"}, ocsp={"enabled": False, "responseValidity": "1s"}
    ),
    # timeouts default per channel type (10s, 30s for email); no rule relates them to another field.
    "channel-webhook-defaults": channel(webhook={"url": "http://127.0.0.1:9/hook"}),
    "channel-email-defaults": channel(email={key: value for key, value in MAIL.items() if key != "port"}),
    "channel-pagerduty-defaults": channel(pagerduty={"routingKeySecretRef": SECRET_REF}),
    "channel-slack-defaults": channel(slack={"webhookURLSecretRef": SECRET_REF}),
    "channel-teams-defaults": channel(teams={"webhookURLSecretRef": SECRET_REF}),
    "channel-email-implicit-tls-default-port": channel(
        email={**{key: value for key, value in MAIL.items() if key != "port"}, "security": "tls"}
    ),
    "revocation-defaults": revocation(),
    "event-defaults": event(certificateRef={"name": "web"}),
}


def create(kubectl: Kubectl, namespace: str, manifest: dict[str, Any], check: bool = False) -> Any:
    return kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest), check=check)


def unique(manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The manifest named after the test namespace (cluster-scoped objects share one name space)."""
    return {**manifest, "metadata": {"name": f"bad-{namespace}"[:63].rstrip("-")}}


def test_there_are_at_least_25_bad_objects() -> None:
    assert len(BAD_OBJECTS) >= 25
    assert len({case.id for case in BAD_OBJECTS}) == len(BAD_OBJECTS)


@pytest.mark.parametrize("case", BAD_OBJECTS, ids=lambda case: case.id)
def test_api_server_refuses_bad_objects(case: Bad, kubectl: Kubectl, namespace: str) -> None:
    manifest = unique(case.manifest, namespace)
    if case.update is None:
        result = create(kubectl, namespace, manifest)
    else:
        create(kubectl, namespace, manifest, check=True)
        target = f"{resource_class(manifest['kind']).PLURAL}.certctl.io/{manifest['metadata']['name']}"
        patch = json.dumps(case.update)
        result = kubectl("patch", "-n", namespace, target, "--type=merge", "-p", patch, check=False)
    assert result.returncode != 0, f"the API server accepted {case.id}:\n{result.stdout}"
    assert case.expect in result.stderr, f"{case.id}: expected {case.expect!r} in:\n{result.stderr}"


@pytest.mark.parametrize(
    "case", [case for case in BAD_OBJECTS if case.update is None], ids=lambda case: case.id
)
def test_models_refuse_the_same_objects(case: Bad) -> None:
    with pytest.raises(ValidationError) as excinfo:
        parse_object(case.manifest)
    if case.shared:
        assert case.expect in str(excinfo.value)


@pytest.mark.parametrize("case", GOOD_OBJECTS, ids=str)
def test_api_server_and_models_accept_edge_cases(case: str, kubectl: Kubectl, namespace: str) -> None:
    manifest = unique(GOOD_OBJECTS[case], namespace)
    create(kubectl, namespace, manifest, check=True)
    parse_object(manifest)


@pytest.mark.parametrize("case", DEFAULTS_AGAINST_RULES, ids=str)
def test_schema_defaults_never_clash_with_the_rules(case: str, kubectl: Kubectl, namespace: str) -> None:
    manifest = unique(DEFAULTS_AGAINST_RULES[case], namespace)
    created = kubectl(
        "create", "-n", namespace, "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(manifest)
    )
    server = json.loads(created.stdout)
    parsed = parse_object(manifest)
    assert server["spec"] == parsed.spec.dump()
    if isinstance(parsed, ManagedCertificate):
        # The operator's own checks find nothing either (issue 16 was a refusal only there).
        assert spec_problems(parsed.spec, namespace, minimum_duration=timedelta(0)) == []


# --------------------------------------------------------------------------- examples


@pytest.fixture(scope="module")
def applied_examples(kubectl: Kubectl) -> list[dict[str, Any]]:
    kubectl("apply", "--server-side", "--field-manager=certctl-examples", "-f", str(EXAMPLES))
    documents = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def test_every_example_applies_and_reads_back_through_the_models(
    applied_examples: list[dict[str, Any]], kubectl: Kubectl
) -> None:
    ours = [doc for doc in applied_examples if doc["apiVersion"] == API_GROUP_VERSION]
    assert {doc["kind"] for doc in ours} == {resource.KIND for resource in RESOURCES}
    for doc in ours:
        namespace = doc["metadata"].get("namespace")
        scope = ["-n", namespace] if namespace else []
        target = f"{resource_class(doc['kind']).PLURAL}.certctl.io/{doc['metadata']['name']}"
        stored = json.loads(kubectl("get", *scope, target, "-o", "json").stdout)
        assert contains(stored["spec"], doc["spec"]), f"{target}: the API server changed the spec"
        # What the API server stored, its defaults applied, parses and dumps back unchanged.
        assert parse_object(stored).spec.dump() == stored["spec"], target


def contains(whole: Any, part: Any) -> bool:
    """Whether ``part`` is ``whole`` with some object keys left out (defaults the server added)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and contains(whole[key], part[key]) for key in part
        )
    return bool(whole == part)


def test_api_server_defaults_match_the_models(
    applied_examples: list[dict[str, Any]], kubectl: Kubectl
) -> None:
    stored = json.loads(
        kubectl("get", "-n", DEMO_NAMESPACE, "managedcertificate", "web", "-o", "json").stdout
    )
    assert stored["spec"]["isCA"] is False
    assert stored["spec"]["issuerRef"]["kind"] == "Issuer"
    assert ManagedCertificate.from_body(stored).spec.dump() == stored["spec"]

    minimal = cert(commonName="defaults", dnsNames=None, notifications={"channels": ["ops"]}, privateKey={})
    minimal["metadata"]["name"] = "defaults"
    created = kubectl(
        "create", "-n", DEMO_NAMESPACE, "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(minimal)
    )
    server = json.loads(created.stdout)
    assert server["spec"] == ManagedCertificate.model_validate(minimal).spec.dump()


def test_category_lists_every_kind(applied_examples: list[dict[str, Any]], kubectl: Kubectl) -> None:
    listed = kubectl("get", "certctl", "-A", "-o", "name").stdout.split()
    kinds = {line.split("/")[0] for line in listed}
    assert kinds == {f"{resource.singular()}.certctl.io" for resource in RESOURCES}
    table = kubectl("get", "certctl", "-A").stdout
    assert "selfsigned" in table and "web-superseded" in table and "ops-webhook-test" in table


def test_short_names_resolve(applied_examples: list[dict[str, Any]], kubectl: Kubectl) -> None:
    for resource in RESOURCES:
        for short in resource.SHORT_NAMES:
            result = kubectl("get", short, "-A", "-o", "name")
            assert f"{resource.singular()}.certctl.io/" in result.stdout, short


def test_kubectl_explain_teaches_the_api(control_plane: Any, kubectl: Kubectl) -> None:
    deadline = time.monotonic() + 30
    while True:
        result = kubectl("explain", "managedcertificate.spec.privateKey", check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)  # the OpenAPI document follows the CRDs by a moment
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # kubectl wraps descriptions
    for expected in (
        "Private key settings",
        "algorithm",
        "Key algorithm: RSA, ECDSA or Ed25519.",
        "enum: RSA, ECDSA, Ed25519",
        "rotationPolicy",
        "Key size in bits: 2048 (default), 3072 or 4096 for RSA",
    ):
        assert expected in text
    reason = " ".join(kubectl("explain", "revocation.spec.reason").stdout.split())
    assert "removeFromCRL and aACompromise are refused" in reason


def test_printer_columns_show_status(namespace: str, kubectl: Kubectl) -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    manifest = event(channelRef={"name": "ops"})
    manifest["metadata"]["name"] = "columns"
    create(kubectl, namespace, manifest, check=True)
    status = NotificationEventStatus(
        phase=DeliveryPhase.FAILED, retry_count=2, next_retry_at=now, last_error="connection refused"
    )
    patch = json.dumps({"status": status.dump()})
    kubectl("patch", "-n", namespace, "nevent/columns", "--subresource=status", "--type=merge", "-p", patch)
    header, row = kubectl("get", "-n", namespace, "nevent", "columns").stdout.splitlines()
    assert header.split()[:6] == ["NAME", "TYPE", "CHANNEL", "PHASE", "RETRIES", "NEXT"]
    assert "LAST ERROR" in header
    assert row.split()[:5] == ["columns", "Test", "ops", "Failed", "2"]
    assert "connection refused" in row


# --------------------------------------------------------------------------- status round trip


def full_statuses(now: datetime) -> dict[str, StatusBase]:
    ready = set_condition(
        [], "Ready", ConditionStatus.TRUE, "Ready", "all good", now=now, observed_generation=1
    )
    issuer_ref = IssuerReference(name="demo-ca", kind=IssuerKind.ISSUER)
    return {
        "Issuer": IssuerStatus(
            observed_generation=1,
            conditions=ready,
            type=IssuerType.CA,
            ca_serial_number="0a1b",
            ca_not_after=now + timedelta(days=365),
            crl_number=12,
            crl_this_update=now,
            crl_next_update=now + timedelta(hours=24),
            revoked_certificates=[
                RevokedCertificate(
                    serial_number="1f",
                    revoked_at=now,
                    reason=RevocationReason.KEY_COMPROMISE,
                    not_after=now + timedelta(days=30),
                )
            ],
        ),
        "ManagedCertificate": ManagedCertificateStatus(
            observed_generation=1,
            conditions=ready,
            secret_name="web-tls",
            issuer_ref=issuer_ref,
            not_before=now,
            not_after=now + timedelta(days=90),
            renewal_time=now + timedelta(days=60),
            serial_number="5e1a",
            fingerprint_sha256="ab" * 32,
            revision=3,
            last_failure_time=now,
            failed_issuance_attempts=0,
            next_attempt_time=now,
            revoked=False,
            revoked_serial_numbers=["11", "22"],
            notified_expiry_thresholds=["30d"],
        ),
        "Revocation": RevocationStatus(
            observed_generation=1,
            conditions=ready,
            phase=RevocationPhase.REVOKED,
            serial_number="5e1a",
            issuer_ref=issuer_ref,
            revoked_at=now,
            crl_number=13,
            issuer_notified=False,
            issuer_notified_reason="the local CA needs no notice",
            requested_by="system:admin",
        ),
        "NotificationChannel": NotificationChannelStatus(
            observed_generation=1, conditions=ready, type=ChannelType.WEBHOOK
        ),
        "NotificationEvent": NotificationEventStatus(
            observed_generation=1,
            conditions=ready,
            phase=DeliveryPhase.SENT,
            retry_count=1,
            sent_at=now,
            last_error="timed out",
            attempts=[
                DeliveryAttempt(
                    time=now, result=AttemptResult.FAILED, error="timed out", duration_seconds=10.0
                ),
                DeliveryAttempt(time=now, result=AttemptResult.SUCCEEDED, duration_seconds=0.25),
            ],
        ),
    }


SPECS: dict[str, dict[str, Any]] = {
    "Issuer": {"ca": {"secretName": "ca"}},
    "ClusterIssuer": {"selfSigned": {}},
    "ManagedCertificate": cert()["spec"],
    "Revocation": revocation()["spec"],
    "NotificationChannel": {"webhook": {"url": "http://127.0.0.1:9/hook"}},
    "NotificationEvent": event()["spec"],
}


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda resource: resource.KIND)
def test_status_written_from_the_models_round_trips(
    resource: type[AnyResource], namespace: str, kubectl: Kubectl
) -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    status = full_statuses(now)["Issuer" if resource is ClusterIssuer else resource.KIND]
    manifest = obj(resource.KIND, SPECS[resource.KIND], name=f"status-{namespace}"[:63].rstrip("-"))
    scope = ["-n", namespace] if resource.NAMESPACED else []
    kubectl("create", *scope, "-f", "-", input=json.dumps(manifest))
    target = f"{resource.PLURAL}.certctl.io/{manifest['metadata']['name']}"
    written = status.dump()
    patch = json.dumps({"status": written})
    kubectl("patch", *scope, target, "--subresource=status", "--type=merge", "-p", patch)
    stored = json.loads(kubectl("get", *scope, target, "-o", "json").stdout)
    assert stored["status"] == written, "the API server pruned or changed status fields"
    assert resource.from_body(stored).status == status


def test_status_subresource_ignores_spec_and_keeps_revocations_immutable(
    namespace: str, kubectl: Kubectl
) -> None:
    manifest = revocation()
    manifest["metadata"]["name"] = "immutable"
    create(kubectl, namespace, manifest, check=True)
    patch = json.dumps({"status": RevocationStatus(phase=RevocationPhase.PENDING).dump()})
    target = "revocations.certctl.io/immutable"
    kubectl("patch", "-n", namespace, target, "--subresource=status", "--type=merge", "-p", patch)
    # Re-applying an identical spec is not an edit.
    kubectl(
        "apply",
        "--server-side",
        "--field-manager=test",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(manifest),
    )
    stored = Revocation.from_body(json.loads(kubectl("get", "-n", namespace, target, "-o", "json").stdout))
    assert stored.status.phase is RevocationPhase.PENDING
    assert stored.spec.reason is RevocationReason.KEY_COMPROMISE
