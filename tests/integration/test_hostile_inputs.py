"""Objects the API server admits but that cannot work, all at once against one operator.

Every row of :data:`ROWS` creates one object (and the Secrets it needs) that
passes admission but can never do its job: a CA Secret that is not a CA, a
channel whose Secret is missing, a Revocation of a certificate that does not
exist, ... The operator must say so on the object (Ready=False, or the
kind's failure phase, with a reason and a message naming the problem), post
one Warning Event for it, not retry it in a hot loop, and keep serving the
healthy objects created alongside.

All rows share one namespace and one operator process, so the whole table
costs about as much as one test.
"""

from __future__ import annotations

import base64
import copy
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from tests.support.hostile_pki import KeyPair, ca_key_pair, key_pem, new_ec_key
from tests.support.pki_cluster import GROUP, VERSION, condition, create, get, wait_for

from certctl_operator.api import Issuer
from certctl_operator.crdgen import crd
from certctl_operator.dev.controlplane import ControlPlane, apply_crd_manifests
from certctl_operator.dev.operator_process import OperatorFactory

Body = dict[str, Any]
ISSUERS, CERTS, CHANNELS, EVENTS, REVOCATIONS = (
    "issuers",
    "managedcertificates",
    "notificationchannels",
    "notificationevents",
    "revocations",
)
WATCHED = (ISSUERS, CERTS, CHANNELS, EVENTS, REVOCATIONS)
QUIET_WINDOW = 10.0
"""Seconds over which a failed object's writes are counted once it settled."""
MAX_WRITES_IN_WINDOW = 3
"""With the tests' issuance back-off (1s doubling to 10s) a settled failure is retried at most this often."""


@dataclass
class Namespace:
    kube: Any
    name: str

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.kube)

    def secret(self, name: str, data: Mapping[str, str | bytes], type_: str = "Opaque") -> None:
        encoded = {
            key: base64.b64encode(value if isinstance(value, bytes) else value.encode()).decode()
            for key, value in data.items()
        }
        self.core.create_namespaced_secret(
            self.name,
            client.V1Secret(metadata=client.V1ObjectMeta(name=name), type=type_, data=encoded),
        )

    def tls(self, name: str, pair: KeyPair, type_: str = "kubernetes.io/tls") -> None:
        self.secret(name, {"tls.crt": pair.certificate_pem, "tls.key": pair.private_key_pem}, type_)

    def create(self, plural: str, kind: str, name: str, spec: Mapping[str, Any]) -> None:
        # create() raises on a refusal: every row asserts admission this way.
        create(self.kube, self.name, plural, {"kind": kind, "metadata": {"name": name}, "spec": dict(spec)})

    def ca_issuer(self, name: str, secret: str) -> None:
        self.create(ISSUERS, "Issuer", name, {"ca": {"secretName": secret}})

    def certificate(self, name: str, issuer: str, kind: str = "Issuer", **spec: Any) -> None:
        full = {
            "secretName": f"{name}-tls",
            "dnsNames": [f"{name}.example.test"],
            "duration": "24h",
            "privateKey": {"algorithm": "ECDSA"},
            "issuerRef": {"name": issuer, "kind": kind},
            **spec,
        }
        self.create(CERTS, "ManagedCertificate", name, full)

    def channel(self, name: str, spec: Mapping[str, Any]) -> None:
        self.create(CHANNELS, "NotificationChannel", name, spec)

    def event(self, name: str, channel: str) -> None:
        spec = {"type": "Test", "channelRef": {"name": channel}, "subject": name, "message": name}
        self.create(EVENTS, "NotificationEvent", name, spec)

    def revocation(self, name: str, certificate: str) -> None:
        spec = {"certificateRef": {"name": certificate}, "reason": "keyCompromise", "reissue": False}
        self.create(REVOCATIONS, "Revocation", name, spec)


@dataclass(frozen=True)
class Row:
    id: str
    plural: str
    build: Callable[[Namespace, str], None]
    """Creates the object named by the row's id (and what it needs) in the namespace."""
    reason: str
    """The Ready condition's reason."""
    message: str
    """Text the Ready condition's message must contain."""
    phase: str | None = None
    """For the kinds with phases: the failure phase the object must reach."""
    events: tuple[tuple[str, str], ...] | None = None
    """Every Event (type, reason) about the object, each posted once; default: one Warning with ``reason``."""

    @property
    def expected_events(self) -> Counter[tuple[str, str]]:
        return Counter(self.events if self.events is not None else [("Warning", self.reason)])


def now() -> datetime:
    return datetime.now(UTC)


def good_ca(common_name: str) -> KeyPair:
    return ca_key_pair(common_name)


def issuer_row(row_id: str, secret: Callable[[Namespace, str], None], reason: str, message: str) -> Row:
    def build(ns: Namespace, name: str) -> None:
        secret(ns, f"{name}-keypair")
        ns.ca_issuer(name, f"{name}-keypair")

    return Row(row_id, ISSUERS, build, reason, message)


def tls_of(
    pair_factory: Callable[[], KeyPair], type_: str = "kubernetes.io/tls"
) -> Callable[[Namespace, str], None]:
    return lambda ns, secret: ns.tls(secret, pair_factory(), type_)


def raw(data: Mapping[str, str | bytes], type_: str = "Opaque") -> Callable[[Namespace, str], None]:
    return lambda ns, secret: ns.secret(secret, data, type_)


def mismatched() -> KeyPair:
    return KeyPair(good_ca("mismatch").certificate_pem, key_pem(new_ec_key()))


def two_keys() -> KeyPair:
    pair = good_ca("two keys")
    return KeyPair(pair.certificate_pem, pair.private_key_pem + key_pem(new_ec_key()))


def weak_rsa() -> KeyPair:
    # 1024-bit RSA is too weak to sign with; cryptography still generates it.
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point)
    return ca_key_pair("weak", key=weak)


GARBAGE = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"

ISSUER_ROWS = [
    issuer_row("ca-secret-missing", lambda ns, secret: None, "SecretNotFound", "does not exist"),
    issuer_row("ca-not-a-ca", tls_of(lambda: ca_key_pair("leaf", is_ca=False)), "NotACA", "CA:FALSE"),
    issuer_row(
        "ca-no-basic-constraints",
        tls_of(lambda: ca_key_pair("no bc", is_ca=None)),
        "NotACA",
        "no basicConstraints",
    ),
    issuer_row(
        "ca-no-keycertsign",
        tls_of(lambda: ca_key_pair("no kcs", key_cert_sign=False)),
        "NotACA",
        "lacks keyCertSign",
    ),
    issuer_row("ca-key-mismatch", tls_of(mismatched), "KeyMismatch", "does not belong to the CA certificate"),
    issuer_row(
        "ca-expired",
        tls_of(
            lambda: ca_key_pair(
                "old", not_before=now() - timedelta(days=60), not_after=now() - timedelta(days=1)
            )
        ),
        "Expired",
        "the CA certificate expired at",
    ),
    issuer_row(
        "ca-not-yet-valid",
        tls_of(
            lambda: ca_key_pair(
                "future", not_before=now() + timedelta(days=1), not_after=now() + timedelta(days=60)
            )
        ),
        "NotYetValid",
        "the CA certificate is not valid before",
    ),
    issuer_row("ca-rsa-1024", tls_of(weak_rsa), "InvalidKey", "RSA key of 1024 bits is too small"),
    issuer_row(
        "ca-opaque-other-keys", raw({"cert": "x", "key": "y"}), "InvalidCertificate", "has no tls.crt"
    ),
    issuer_row(
        "ca-no-tls-key", raw({"tls.crt": good_ca("no key").certificate_pem}), "InvalidKey", "has no tls.key"
    ),
    issuer_row(
        "ca-garbage-pem",
        raw({"tls.crt": GARBAGE, "tls.key": GARBAGE}),
        "InvalidCertificate",
        "PEM CERTIFICATE block that cannot be parsed",
    ),
    issuer_row("ca-two-keys", tls_of(two_keys), "InvalidKey", "tls.key holds 2 private keys"),
    issuer_row(
        "ca-key-in-crt",
        raw({"tls.crt": key_pem(new_ec_key()), "tls.key": key_pem(new_ec_key())}),
        "InvalidCertificate",
        "holds no PEM CERTIFICATE block",
    ),
    issuer_row(
        "ca-wrong-secret-type",
        raw(
            {
                "tls.crt": good_ca("docker").certificate_pem,
                "tls.key": "x",
                ".dockerconfigjson": '{"auths": {}}',
            },
            "kubernetes.io/dockerconfigjson",
        ),
        "InvalidKey",
        "holds no PEM PRIVATE KEY block",
    ),
]


def certificate_row(
    row_id: str, setup: Callable[[Namespace, str], dict[str, Any]], reason: str, message: str
) -> Row:
    def build(ns: Namespace, name: str) -> None:
        spec = setup(ns, name)
        issuer = spec.pop("issuer")
        kind = spec.pop("kind", "Issuer")
        ns.certificate(name, issuer, kind, **spec)

    return Row(row_id, CERTS, build, reason, message)


def with_ca(pair: Callable[[], KeyPair], **spec: Any) -> Callable[[Namespace, str], dict[str, Any]]:
    def setup(ns: Namespace, name: str) -> dict[str, Any]:
        ns.tls(f"{name}-ca-keypair", pair())
        ns.ca_issuer(f"{name}-ca", f"{name}-ca-keypair")
        return {"issuer": f"{name}-ca", **spec}

    return setup


def secret_taken(ns: Namespace, name: str) -> dict[str, Any]:
    ns.secret(f"{name}-tls", {"password": "of someone else"})
    return {"issuer": "healthy-selfsigned"}


def tls_secret_taken(ns: Namespace, name: str) -> dict[str, Any]:
    ns.tls(f"{name}-tls", good_ca("someone else"))
    return {"issuer": "healthy-selfsigned"}


CERTIFICATE_ROWS = [
    certificate_row(
        "cert-issuer-missing",
        lambda ns, name: {"issuer": "never-created"},
        "IssuerNotFound",
        "Issuer never-created in namespace",
    ),
    certificate_row(
        "cert-clusterissuer-missing",
        lambda ns, name: {"issuer": "hostile-never-created", "kind": "ClusterIssuer"},
        "IssuerNotFound",
        "ClusterIssuer hostile-never-created does not exist",
    ),
    certificate_row(
        "cert-issuer-not-ready",
        lambda ns, name: (ns.ca_issuer(f"{name}-ca", f"{name}-absent"), {"issuer": f"{name}-ca"})[1],
        "IssuerNotReady",
        "cannot sign: CA Secret cert-issuer-not-ready-absent does not exist",
    ),
    certificate_row(
        "cert-name-constraints",
        with_ca(lambda: ca_key_pair("constrained", permitted_dns=("example.org",))),
        "NameConstraintViolation",
        "DNS name cert-name-constraints.example.test is outside the names CA CN=constrained may sign for "
        "(permitted: example.org)",
    ),
    certificate_row(
        "cert-secret-taken-opaque", secret_taken, "SecretConflict", "is of type Opaque, which cannot change"
    ),
    certificate_row(
        "cert-secret-taken-tls", tls_secret_taken, "SecretConflict", "was not written by certctl-operator"
    ),
    certificate_row(
        "cert-excluded-by-ca",
        with_ca(lambda: ca_key_pair("excluding", excluded_dns=("example.test",))),
        "NameConstraintViolation",
        "DNS name cert-excluded-by-ca.example.test is excluded by the name constraints of CA CN=excluding",
    ),
]


def channel_row(
    row_id: str, setup: Callable[[Namespace, str], dict[str, Any]], reason: str, message: str
) -> Row:
    def build(ns: Namespace, name: str) -> None:
        ns.channel(name, setup(ns, name))

    return Row(row_id, CHANNELS, build, reason, message, events=(("Warning", "ChannelNotReady"),))


def webhook_from_secret(url: str) -> Callable[[Namespace, str], dict[str, Any]]:
    def setup(ns: Namespace, name: str) -> dict[str, Any]:
        ns.secret(f"{name}-url", {"url": url})
        return {"webhook": {"urlSecretRef": {"name": f"{name}-url", "key": "url"}}}

    return setup


def email(credentials: Mapping[str, str] | None) -> Callable[[Namespace, str], dict[str, Any]]:
    def setup(ns: Namespace, name: str) -> dict[str, Any]:
        if credentials is not None:
            ns.secret(f"{name}-login", credentials)
        spec = {
            "host": "127.0.0.1",
            "port": 2525,
            "security": "none",
            "from": "ops@example.test",
            "to": ["team@example.test"],
            "credentialsSecretRef": {"name": f"{name}-login"},
        }
        return {"email": spec}

    return setup


def url_secret(kind: str, data: Mapping[str, str] | None) -> Callable[[Namespace, str], dict[str, Any]]:
    def setup(ns: Namespace, name: str) -> dict[str, Any]:
        if data is not None:
            ns.secret(f"{name}-url", data)
        return {kind: {"webhookURLSecretRef": {"name": f"{name}-url", "key": "url"}}}

    return setup


def pagerduty(routing_key: str | None) -> Callable[[Namespace, str], dict[str, Any]]:
    def setup(ns: Namespace, name: str) -> dict[str, Any]:
        if routing_key is not None:
            ns.secret(f"{name}-key", {"routingKey": routing_key})
        return {"pagerduty": {"routingKeySecretRef": {"name": f"{name}-key", "key": "routingKey"}}}

    return setup


def signed_webhook(data: Mapping[str, str] | None) -> Callable[[Namespace, str], dict[str, Any]]:
    def setup(ns: Namespace, name: str) -> dict[str, Any]:
        if data is not None:
            ns.secret(f"{name}-signing", data)
        return {
            "webhook": {
                "url": "http://127.0.0.1:9/hook",
                "signingSecretRef": {"name": f"{name}-signing", "key": "key"},
            }
        }

    return setup


CHANNEL_ROWS = [
    channel_row(
        "ch-signing-secret-missing",
        signed_webhook(None),
        "SecretNotFound",
        "ch-signing-secret-missing-signing",
    ),
    channel_row(
        "ch-signing-key-missing",
        signed_webhook({"other": "x"}),
        "InvalidConfiguration",
        "has no key 'key' (signing key)",
    ),
    channel_row(
        "ch-url-ftp",
        webhook_from_secret("ftp://127.0.0.1/upload"),
        "InvalidConfiguration",
        "does not hold an http(s) URL",
    ),
    channel_row(
        "ch-url-garbage",
        webhook_from_secret("not a url at all"),
        "InvalidConfiguration",
        "does not hold an http(s) URL",
    ),
    channel_row("ch-email-secret-missing", email(None), "SecretNotFound", "ch-email-secret-missing-login"),
    channel_row(
        "ch-email-no-password",
        email({"username": "ops"}),
        "InvalidConfiguration",
        "has no key 'password' (SMTP password)",
    ),
    channel_row(
        "ch-slack-secret-missing", url_secret("slack", None), "SecretNotFound", "ch-slack-secret-missing-url"
    ),
    channel_row(
        "ch-slack-no-url-key",
        url_secret("slack", {"token": "xoxb"}),
        "InvalidConfiguration",
        "has no key 'url' (Slack webhook URL)",
    ),
    channel_row(
        "ch-teams-not-a-url",
        url_secret("teams", {"url": "teams please"}),
        "InvalidConfiguration",
        "does not hold an http(s) URL",
    ),
    channel_row(
        "ch-pagerduty-secret-missing", pagerduty(None), "SecretNotFound", "(PagerDuty routing key) not found"
    ),
]


def event_to_missing_channel(ns: Namespace, name: str) -> None:
    ns.event(name, "no-such-channel")


def event_to_broken_channel(ns: Namespace, name: str) -> None:
    ns.channel(f"{name}-ch", signed_webhook(None)(ns, f"{name}-ch"))
    ns.event(name, f"{name}-ch")


def revocation_of_missing(ns: Namespace, name: str) -> None:
    ns.revocation(name, "no-such-certificate")


def revocation_of_unissued(ns: Namespace, name: str) -> None:
    ns.certificate(f"{name}-cert", "never-created")
    ns.revocation(name, f"{name}-cert")


def revocation_of_self_signed(ns: Namespace, name: str) -> None:
    ns.certificate(f"{name}-cert", "healthy-selfsigned")
    ns.revocation(name, f"{name}-cert")


OTHER_ROWS = [
    Row(
        "ev-channel-missing",
        EVENTS,
        event_to_missing_channel,
        "ChannelNotFound",
        "channel 'no-such-channel' not found; closed without delivery",
        "Sent",
    ),
    Row(
        "ev-channel-broken",
        EVENTS,
        event_to_broken_channel,
        "RetriesExhausted",
        "(signing key) not found",
        "Dead",
        # Five failed attempts: one Warning for the failure, one for the dead letter.
        events=(("Warning", "DeliveryFailed"), ("Warning", "NotificationDeadLettered")),
    ),
    Row(
        "rev-certificate-missing",
        REVOCATIONS,
        revocation_of_missing,
        "CertificateNotFound",
        "ManagedCertificate no-such-certificate does not exist",
        "Pending",
        # Waiting, not failed: the certificate may still be created (GitOps applies in any order).
        events=(("Normal", "Pending"),),
    ),
    Row(
        "rev-certificate-unissued",
        REVOCATIONS,
        revocation_of_unissued,
        "CertificateNotIssued",
        "yet; waiting for issuance",
        "Pending",
        events=(("Normal", "Pending"),),
    ),
    Row(
        "rev-self-signed",
        REVOCATIONS,
        revocation_of_self_signed,
        "SelfSignedNotRevocable",
        "no CRL or OCSP responder exists that could list it",
        "Failed",
        events=(("Warning", "RevocationFailed"),),
    ),
]

ROWS = [*ISSUER_ROWS, *CERTIFICATE_ROWS, *CHANNEL_ROWS, *OTHER_ROWS]


# --------------------------------------------------------------------------- observing


def ready_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return condition(body)


def observed(kube: Any, namespace: str, row: Row) -> tuple[str | None, str | None, str | None, str]:
    body = get(kube, namespace, row.plural, row.id)
    ready = ready_of(body)
    return (
        (body.get("status") or {}).get("phase"),
        ready.get("status"),
        ready.get("reason"),
        str(ready.get("message", "")),
    )


def settled(kube: Any, namespace: str, row: Row) -> bool:
    phase, status, reason, message = observed(kube, namespace, row)
    if row.phase is not None and phase != row.phase:
        return False
    return status == "False" and reason == row.reason and row.message in message


class WriteCounter:
    """Counts the watch events (writes) of every object of the watched kinds in one namespace."""

    def __init__(self, kube: Any, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.counts: Counter[tuple[str, str]] = Counter()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._follow, args=(plural,), daemon=True) for plural in WATCHED
        ]

    def _follow(self, plural: str) -> None:
        objects = client.CustomObjectsApi(self.kube)
        listed = objects.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)
        version = listed["metadata"]["resourceVersion"]
        while not self.stop.is_set():
            stream = watch.Watch()
            for item in stream.stream(
                objects.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                plural,
                resource_version=version,
                timeout_seconds=2,
            ):
                version = item["object"]["metadata"]["resourceVersion"]
                self.counts[(plural, item["object"]["metadata"]["name"])] += 1
                if self.stop.is_set():
                    stream.stop()

    def __enter__(self) -> WriteCounter:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def events_about(kube: Any, namespace: str, name: str) -> Counter[tuple[str, str]]:
    """Every Event about ``name``: (type, reason) with how often it was posted (repeats included)."""
    items = (
        client.CoreV1Api(kube)
        .list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        .items
    )
    found: Counter[tuple[str, str]] = Counter()
    for event in items:
        found[(event.type, event.reason)] += event.count or 1
    return found


# --------------------------------------------------------------------------- the table


def test_every_admitted_but_unworkable_object_fails_clearly_once_without_stopping_the_rest(
    kube: Any, namespace: str, operator_factory: OperatorFactory
) -> None:
    ns = Namespace(kube, namespace)
    assert len(ROWS) >= 30, len(ROWS)
    assert len({row.id for row in ROWS}) == len(ROWS)
    operator = operator_factory(namespaces=[namespace])
    ns.create(ISSUERS, "Issuer", "healthy-selfsigned", {"selfSigned": {}})
    for row in ROWS:
        row.build(ns, row.id)
    ns.tls("healthy-ca-keypair", good_ca("healthy"))
    ns.ca_issuer("healthy-ca", "healthy-ca-keypair")
    ns.certificate("healthy-web", "healthy-ca")

    started = time.monotonic()
    pending = list(ROWS)
    deadline = started + 90
    while pending and time.monotonic() < deadline:
        pending = [row for row in pending if not settled(kube, namespace, row)]
        time.sleep(0.5)  # polling interval of a deadline-bounded wait
    report = "\n".join(f"{row.id}: {observed(kube, namespace, row)}" for row in ROWS)
    assert not pending, f"not settled: {[row.id for row in pending]}\n{report}\n{operator.log_tail(60)}"
    print(f"all {len(ROWS)} rows settled after {time.monotonic() - started:.1f}s\n{report}")

    # The operator kept serving: the healthy certificate was issued.
    wait_for(
        "healthy-web issued",
        lambda: condition(get(kube, namespace, CERTS, "healthy-web")).get("status") == "True",
        60,
    )

    with WriteCounter(kube, namespace) as counter:
        window_end = time.monotonic() + QUIET_WINDOW
        while time.monotonic() < window_end:
            time.sleep(0.5)  # the measuring window itself
    busy = {key: count for key, count in counter.counts.items() if count > MAX_WRITES_IN_WINDOW}
    print(f"writes in {QUIET_WINDOW}s: {dict(counter.counts)}")
    assert not busy, f"written more than {MAX_WRITES_IN_WINDOW} times in {QUIET_WINDOW}s: {busy}"

    events = {row.id: events_about(kube, namespace, row.id) for row in ROWS}
    wrong = {
        row.id: (dict(events[row.id]), dict(row.expected_events))
        for row in ROWS
        if events[row.id] != row.expected_events
    }
    assert not wrong, f"Events (found, expected) differ: {wrong}"
    logs = operator.logs()
    assert "Traceback" not in logs, operator.log_tail(80)


# --------------------------------------------------------------------------- stored under a looser CRD

HUGE = "9999999999999999999999999999d"


def refused_issuer(kube: Any, namespace: str, body: Mapping[str, Any]) -> bool:
    try:
        client.CustomObjectsApi(kube).create_namespaced_custom_object(
            GROUP, VERSION, namespace, ISSUERS, {"apiVersion": f"{GROUP}/{VERSION}", **body}, dry_run="All"
        )
    except ApiException as error:
        if error.status == 422:
            return True
        raise
    return False


def test_an_issuer_stored_with_a_spec_the_model_refuses_ends_invalid_spec_without_a_loop(
    control_plane: ControlPlane, kube: Any, namespace: str, operator_factory: OperatorFactory
) -> None:
    ns = Namespace(kube, namespace)
    strict = crd(Issuer)
    loose = copy.deepcopy(strict)
    crl = loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["crl"]
    crl["properties"]["validity"].pop("x-kubernetes-validations", None)
    crl.pop("x-kubernetes-validations", None)
    stored = {"kind": "Issuer", "metadata": {"name": "legacy"}, "spec": {}}
    ns.tls("legacy-keypair", good_ca("legacy"))
    stored["spec"] = {"ca": {"secretName": "legacy-keypair"}, "crl": {"validity": HUGE}}
    apply_crd_manifests(control_plane.kubeconfig, [loose])
    try:
        wait_for("the loose Issuer schema", lambda: not refused_issuer(kube, namespace, stored), 60)
        create(kube, namespace, ISSUERS, stored)
    finally:
        apply_crd_manifests(control_plane.kubeconfig, [strict])
        wait_for("the strict Issuer schema", lambda: refused_issuer(kube, namespace, stored), 60)

    ns.certificate("via-legacy", "legacy")
    operator = operator_factory(namespaces=[namespace])

    def invalid() -> Mapping[str, Any] | None:
        ready = condition(get(kube, namespace, ISSUERS, "legacy"))
        return ready if ready.get("reason") == "InvalidSpec" else None

    ready = wait_for("Ready=False/InvalidSpec on the stored issuer", invalid, 60)
    assert ready["status"] == "False"
    assert ready["message"] == "invalid spec: spec.crl.validity: must be at least 1s and at most 36500d"

    # Barrier: an issuer and a certificate created later are served.
    ns.create(ISSUERS, "Issuer", "after", {"selfSigned": {}})
    ns.certificate("after-web", "after")
    wait_for(
        "after-web issued",
        lambda: condition(get(kube, namespace, CERTS, "after-web")).get("status") == "True",
        90,
    )
    with WriteCounter(kube, namespace) as counter:
        window_end = time.monotonic() + QUIET_WINDOW
        while time.monotonic() < window_end:
            time.sleep(0.5)  # the measuring window itself
    waiting = condition(get(kube, namespace, CERTS, "via-legacy"))
    assert (waiting["status"], waiting["reason"]) == ("False", "IssuerNotReady"), waiting
    assert waiting["message"] == (
        f"Issuer legacy in namespace {namespace} has an "
        "invalid spec: spec.crl.validity: must be at least 1s and at most 36500d"
    )
    assert counter.counts[(ISSUERS, "legacy")] == 0, counter.counts
    assert events_about(kube, namespace, "legacy") == Counter({("Warning", "InvalidSpec"): 1})
    logs = operator.logs()
    assert "Traceback" not in logs, operator.log_tail(80)
