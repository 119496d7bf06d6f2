"""Issuance and renewal end to end: a real operator process against a real API server.

Each test starts ``certctl-operator run`` for its own namespace with fast
settings (issuance retry base 1 s, cap 10 s, CA re-check every second,
minimum certificate duration 10 s). Every certificate the operator writes is
checked with the ``openssl`` command line, not with the operator's own code.
Waits poll the API server until a condition holds, each bounded by a deadline;
"nothing happened" is proven with a barrier: a later object the operator must
handle first, after which the earlier one must still be untouched.
"""

from __future__ import annotations

import base64
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families
from urllib3.exceptions import HTTPError

from certctl_operator.api import Issuer, ManagedCertificate
from certctl_operator.dev.operator_process import OperatorFactory, OperatorProcess
from certctl_operator.pki import (
    CertificateRequest,
    KeyAlgorithm,
    KeySpec,
    create_self_signed_ca,
    generate_private_key,
    issue_certificate,
    load_certificates,
    load_private_key,
    private_key_to_pem,
)
from certctl_operator.policy.issuance import (
    IssuerView,
    build_request,
    desired_annotations,
    desired_labels,
    key_encoding_for,
    key_spec_for,
    request_hash,
    serial_hex,
)
from certctl_operator.policy.issuers import SecretSnapshot, evaluate_issuer

GROUP = "certctl.io"
VERSION = "v1alpha1"
CERTS = "managedcertificates"
ISSUERS = "issuers"
CLUSTER_ISSUERS = "clusterissuers"

ISSUANCE_ENV = {"CERTCTL_ISSUER_CHECK_INTERVAL": "1s"}

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
Body = dict[str, Any]


# --------------------------------------------------------------------------- waiting


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)  # polling interval of a deadline-bounded wait
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# --------------------------------------------------------------------------- API helpers


class Cluster:
    """Thin helpers over the synchronous client for one test namespace."""

    def __init__(self, kube: Any, kubectl: Kubectl, namespace: str) -> None:
        self.kube = kube
        self.kubectl = kubectl
        self.namespace = namespace
        self.objects = client.CustomObjectsApi(kube)
        self.core = client.CoreV1Api(kube)

    def apply(self, *documents: Body) -> None:
        self.kubectl(
            "apply", "--server-side", "-n", self.namespace, "-f", "-", input=yaml.safe_dump_all(documents)
        )

    def cert(self, name: str) -> Body:
        return dict(self.objects.get_namespaced_custom_object(GROUP, VERSION, self.namespace, CERTS, name))

    def issuer(self, name: str, cluster: bool = False) -> Body:
        if cluster:
            return dict(self.objects.get_cluster_custom_object(GROUP, VERSION, CLUSTER_ISSUERS, name))
        return dict(self.objects.get_namespaced_custom_object(GROUP, VERSION, self.namespace, ISSUERS, name))

    def secret(self, name: str) -> client.V1Secret | None:
        try:
            return self.core.read_namespaced_secret(name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def secret_data(self, name: str) -> dict[str, bytes]:
        secret = self.secret(name)
        assert secret is not None, f"Secret {name} does not exist"
        return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}

    def events(self, name: str, reason: str | None = None, namespace: str | None = None) -> list[Any]:
        items = self.core.list_namespaced_event(
            namespace or self.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return [e for e in items if reason is None or e.reason == reason]

    def notification_events(self) -> dict[str, Body]:
        items = self.objects.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "notificationevents"
        )
        return {item["metadata"]["name"]: item for item in items["items"]}

    def patch_status(self, name: str, status: Body) -> None:
        self.objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, CERTS, name, {"status": status}
        )

    def annotate(self, name: str, annotations: dict[str, str]) -> None:
        self.objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, CERTS, name, {"metadata": {"annotations": annotations}}
        )


def condition(body: Body, type_: str = "Ready") -> Body | None:
    for entry in (body.get("status") or {}).get("conditions") or []:
        if entry.get("type") == type_:
            return dict(entry)
    return None


def is_ready(body: Body) -> bool:
    found = condition(body)
    return found is not None and found["status"] == "True"


def wait_ready(cluster: Cluster, name: str, timeout: float = 30.0, revision: int | None = None) -> Body:
    def check() -> Body | None:
        body = cluster.cert(name)
        status = body.get("status") or {}
        if is_ready(body) and (revision is None or status.get("revision", 0) >= revision):
            return body
        return None

    return wait_for(
        check, timeout, f"ManagedCertificate {name} Ready" + (f" at revision {revision}" if revision else "")
    )


def wait_reason(cluster: Cluster, name: str, reason: str, timeout: float = 30.0) -> Body:
    def check() -> Body | None:
        body = cluster.cert(name)
        found = condition(body)
        return body if found is not None and found["reason"] == reason else None

    return wait_for(check, timeout, f"ManagedCertificate {name} with Ready reason {reason}")


def wait_issuer(
    cluster: Cluster,
    name: str,
    status: str,
    reason: str | None = None,
    cluster_scoped: bool = False,
    timeout: float = 30.0,
) -> Body:
    def check() -> Body | None:
        body = cluster.issuer(name, cluster_scoped)
        found = condition(body)
        if found is not None and found["status"] == status and (reason is None or found["reason"] == reason):
            return body
        return None

    return wait_for(check, timeout, f"issuer {name} Ready={status} ({reason})")


# --------------------------------------------------------------------------- manifests


def certificate(name: str, issuer: str, *, kind: str = "Issuer", **spec: Any) -> Body:
    body_spec: Body = {
        "secretName": f"{name}-tls",
        "dnsNames": [f"{name}.example.test"],
        "issuerRef": {"name": issuer, "kind": kind},
        "privateKey": {"algorithm": "ECDSA", "size": 256},
    }
    body_spec.update(spec)
    body_spec = {key: value for key, value in body_spec.items() if value is not None}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ManagedCertificate",
        "metadata": {"name": name},
        "spec": body_spec,
    }


def issuer(name: str, kind: str = "Issuer", **spec: Any) -> Body:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}


def tls_secret(name: str, crt: str, key: str, ca: str | None = None) -> Body:
    data = {"tls.crt": crt, "tls.key": key}
    if ca is not None:
        data["ca.crt"] = ca
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/tls",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


# --------------------------------------------------------------------------- openssl


def openssl(*args: str, input: bytes | None = None) -> str:
    result = subprocess.run(["openssl", *args], input=input, capture_output=True, check=False, timeout=30)
    assert result.returncode == 0, f"openssl {' '.join(args)} failed: {result.stderr.decode()}"
    return result.stdout.decode()


def verify_secret(cluster: Cluster, secret_name: str, tmp_path: Path) -> dict[str, str]:
    """``openssl verify -CAfile ca.crt`` of tls.crt; returns the leaf's text dump and serial."""
    data = cluster.secret_data(secret_name)
    folder = tmp_path / secret_name
    folder.mkdir(exist_ok=True)
    for key, value in data.items():
        (folder / key).write_bytes(value)
    leaf_and_chain = load_certificates(data["tls.crt"])
    chain = folder / "chain.pem"
    chain.write_bytes(b"".join(c.public_bytes(_pem()) for c in leaf_and_chain[1:]))
    args = ["verify", "-CAfile", str(folder / "ca.crt")]
    if len(leaf_and_chain) > 1:
        args += ["-untrusted", str(chain)]
    output = openssl(*args, str(folder / "tls.crt"))
    assert output.strip().endswith(": OK"), output
    text = openssl("x509", "-in", str(folder / "tls.crt"), "-noout", "-text")
    serial = openssl("x509", "-in", str(folder / "tls.crt"), "-noout", "-serial").strip().split("=", 1)[1]
    # The key in tls.key belongs to the certificate.
    cert_pub = openssl("x509", "-in", str(folder / "tls.crt"), "-noout", "-pubkey")
    key_pub = openssl("pkey", "-in", str(folder / "tls.key"), "-pubout")
    assert cert_pub == key_pub, "tls.key does not belong to tls.crt"
    return {"text": text, "serial": serial.lower(), "key": data["tls.key"].decode()}


def _pem() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def cluster(kube: Any, kubectl: Kubectl, namespace: str) -> Cluster:
    return Cluster(kube, kubectl, namespace)


@pytest.fixture
def cluster_issuers(kube: Any) -> Iterator[list[str]]:
    """Names of ClusterIssuers a test creates; deleted afterwards (other tests' operators see them)."""
    names: list[str] = []
    yield names
    objects = client.CustomObjectsApi(kube)
    for name in names:
        try:
            objects.delete_cluster_custom_object(GROUP, VERSION, CLUSTER_ISSUERS, name)
        except ApiException as error:
            if error.status != 404:
                raise


def start_operator(operator_factory: OperatorFactory, namespace: str, **env: str) -> OperatorProcess:
    return operator_factory(namespaces=[namespace], env={**ISSUANCE_ENV, **env})


# --------------------------------------------------------------------------- tests

KEY_CASES = [
    # name, privateKey, what `openssl x509 -text` shows, PEM header of tls.key
    (
        "rsa2048",
        {"algorithm": "RSA", "size": 2048, "encoding": "PKCS1"},
        "Public-Key: (2048 bit)",
        "RSA PRIVATE KEY",
    ),
    (
        "rsa3072",
        {"algorithm": "RSA", "size": 3072, "encoding": "PKCS8"},
        "Public-Key: (3072 bit)",
        "PRIVATE KEY",
    ),
    ("rsa4096", {"algorithm": "RSA", "size": 4096}, "Public-Key: (4096 bit)", "RSA PRIVATE KEY"),
    ("p256", {"algorithm": "ECDSA", "size": 256}, "ASN1 OID: prime256v1", "EC PRIVATE KEY"),
    ("p384", {"algorithm": "ECDSA", "size": 384, "encoding": "PKCS8"}, "ASN1 OID: secp384r1", "PRIVATE KEY"),
    ("p521", {"algorithm": "ECDSA", "size": 521}, "ASN1 OID: secp521r1", "EC PRIVATE KEY"),
    (
        "ed25519",
        {"algorithm": "Ed25519", "encoding": "PKCS8"},
        "Public Key Algorithm: ED25519",
        "PRIVATE KEY",
    ),
]


def test_every_key_type_is_issued_verified_and_carries_the_request(
    cluster: Cluster,
    operator_factory: OperatorFactory,
    cluster_issuers: list[str],
    tmp_path: Path,
) -> None:
    ns = cluster.namespace
    selfsigned, cluster_ca = f"selfsigned-{ns}", f"ca-{ns}"
    cluster_issuers += [selfsigned, cluster_ca]
    # ClusterIssuer CA Secrets live in the operator's namespace: the test namespace here.
    start_operator(operator_factory, ns, CERTCTL_OPERATOR_NAMESPACE=ns)
    base = "http://127.0.0.1:8080"

    # Specs that can never work: reported once, not retried.
    cluster.apply(
        certificate("bad-ca", "ca", isCA=True),
        certificate("bad-duration", "ca", duration="5s"),
    )
    cluster.apply(issuer(selfsigned, "ClusterIssuer", selfSigned={}))
    cluster.apply(
        certificate(
            "root-ca",
            selfsigned,
            kind="ClusterIssuer",
            secretName="root-ca-keypair",
            dnsNames=None,
            commonName="certctl test root",
            subject={"organizations": ["certctl tests"]},
            isCA=True,
            privateKey={"algorithm": "ECDSA", "size": 384},
        )
    )
    wait_issuer(cluster, selfsigned, "True", "SelfSigned", cluster_scoped=True)
    root = wait_ready(cluster, "root-ca")
    cluster.apply(
        issuer("ca", ca={"secretName": "root-ca-keypair"}, publicBaseURL=base),
        issuer(cluster_ca, "ClusterIssuer", ca={"secretName": "root-ca-keypair"}, publicBaseURL=base),
    )
    ready_issuer = wait_issuer(cluster, "ca", "True", "KeyPairVerified")
    assert ready_issuer["status"]["type"] == "CA"
    assert ready_issuer["status"]["caSerialNumber"] == root["status"]["serialNumber"]
    wait_issuer(cluster, cluster_ca, "True", cluster_scoped=True)

    invalid_versions = {}
    for name, fragment in (("bad-ca", "needs a subject"), ("bad-duration", "minimum certificate duration")):
        body = wait_reason(cluster, name, "InvalidSpec")
        assert fragment in condition(body)["message"]
        assert not body["status"].get("failedIssuanceAttempts")
        invalid_versions[name] = body["metadata"]["resourceVersion"]

    sans = {
        "ipAddresses": ["127.0.0.1", "::1"],
        "uris": ["spiffe://cluster.local/ns/test/sa/web"],
        "emailAddresses": ["ops@example.test"],
        "usages": ["digital signature", "key encipherment", "server auth", "client auth"],
    }
    cluster.apply(*(certificate(name, "ca", privateKey=key, **sans) for name, key, _, _ in KEY_CASES))
    cluster.apply(certificate("from-cluster-ca", cluster_ca, kind="ClusterIssuer"))

    text = verify_secret(cluster, "root-ca-keypair", tmp_path)["text"]
    assert "CA:TRUE" in text and "Certificate Sign, CRL Sign" in text and "secp384r1" in text
    for name, _, key_text, pem_header in KEY_CASES:
        body = wait_ready(cluster, name, timeout=60)
        facts = verify_secret(cluster, f"{name}-tls", tmp_path)
        text = facts["text"]
        assert facts["serial"] == body["status"]["serialNumber"]
        assert key_text in text, f"{name}: {key_text!r} not in the certificate"
        assert facts["key"].startswith(f"-----BEGIN {pem_header}-----"), (
            f"{name}: tls.key is not {pem_header}"
        )
        for san in (
            f"DNS:{name}.example.test",
            "IP Address:127.0.0.1",
            "IP Address:0:0:0:0:0:0:0:1",
            "URI:spiffe://cluster.local/ns/test/sa/web",
            "email:ops@example.test",
        ):
            assert san in text, f"{name}: {san} missing"
        assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
        assert f"URI:{base}/crl/{ns}/ca.crl" in text
        assert f"OCSP - URI:{base}/ocsp/{ns}/ca" in text
        issuer_line = next(line for line in text.splitlines() if line.strip().startswith("Issuer:"))
        assert "certctl test root" in issuer_line and "certctl tests" in issuer_line
        secret = cluster.secret(f"{name}-tls")
        assert secret is not None and secret.type == "kubernetes.io/tls"
        annotations = secret.metadata.annotations
        assert annotations["certctl.io/certificate-name"] == name
        assert annotations["certctl.io/issuer-name"] == "ca"
        assert annotations["certctl.io/issuer-kind"] == "Issuer"
        assert annotations["certctl.io/serial-number"] == body["status"]["serialNumber"]
        assert annotations["certctl.io/revision"] == "1"
        assert secret.metadata.labels["certctl.io/managed-by-certificate"] == name
        status = body["status"]
        assert status["revision"] == 1 and status["observedGeneration"] == body["metadata"]["generation"]
        assert status["fingerprintSHA256"] and status["renewalTime"] < status["notAfter"]
        assert condition(body, "Issuing")["reason"] == "UpToDate"
        issued = cluster.events(name, "Issued")
        assert len(issued) == 1 and status["serialNumber"] in issued[0].message

    wait_ready(cluster, "from-cluster-ca")
    text = verify_secret(cluster, "from-cluster-ca-tls", tmp_path)["text"]
    assert f"URI:{base}/crl/_cluster/{cluster_ca}.crl" in text
    assert f"OCSP - URI:{base}/ocsp/_cluster/{cluster_ca}" in text

    # Much happened since the invalid specs were reported; they were never looked at again.
    for name, version in invalid_versions.items():
        body = cluster.cert(name)
        assert body["metadata"]["resourceVersion"] == version, f"{name} was retried"
        warnings = cluster.events(name, "InvalidSpec")
        assert len(warnings) == 1 and warnings[0].type == "Warning"
        assert cluster.secret(f"{name}-tls") is None


def test_renewal_happens_on_time_and_expiry_is_announced(
    cluster: Cluster, operator_factory: OperatorFactory, tmp_path: Path
) -> None:
    start_operator(operator_factory, cluster.namespace)
    cluster.apply(issuer("selfsigned", selfSigned={}))
    notifications = {
        "channels": ["ops-a", "ops-b"],
        "expiryThresholds": ["15s"],
        "events": ["Issued", "Renewed", "Expiring"],
    }
    cluster.apply(
        certificate("short", "selfsigned", duration="20s", renewBefore="10s", notifications=notifications)
    )
    first = wait_ready(cluster, "short")["status"]
    not_after = datetime.fromisoformat(first["notAfter"])
    renewal = datetime.fromisoformat(first["renewalTime"])
    assert renewal == not_after - timedelta(seconds=10)
    assert verify_secret(cluster, "short-tls", tmp_path)["serial"] == first["serialNumber"]

    second = wait_ready(cluster, "short", revision=2, timeout=30)["status"]
    seen = datetime.now(UTC)
    assert second["serialNumber"] != first["serialNumber"]
    # Issued at notBefore + 5 minutes of backdating: not before the renewal time, and promptly.
    issued_at = datetime.fromisoformat(second["notBefore"]) + timedelta(minutes=5)
    assert renewal <= issued_at <= renewal + timedelta(seconds=5), (renewal, issued_at)
    assert seen - renewal < timedelta(seconds=10)
    assert verify_secret(cluster, "short-tls", tmp_path)["serial"] != first["serialNumber"]
    renewed = cluster.events("short", "Renewed")
    assert any(first["serialNumber"] in e.message for e in renewed)

    # The expiry threshold (15 s before notAfter) of revision 1 came before its renewal.
    events = cluster.notification_events()
    for channel in ("ops-a", "ops-b"):
        issued = events[f"short-issued-r1-{channel}"]
        assert issued["spec"]["type"] == "Issued" and issued["spec"]["channelRef"]["name"] == channel
        expiring = events[f"short-expiring-15s-r1-{channel}"]
        assert expiring["spec"]["details"]["serialNumber"] == first["serialNumber"]
        assert events[f"short-renewed-r2-{channel}"]["spec"]["details"]["revision"] == "2"
    assert not any(name.startswith("short-issued-r2") for name in events)


def test_secret_deleted_tampered_or_relabelled_is_restored(
    cluster: Cluster, operator_factory: OperatorFactory, tmp_path: Path
) -> None:
    operator = start_operator(operator_factory, cluster.namespace)
    cluster.apply(issuer("selfsigned", selfSigned={}))
    template = {"labels": {"team": "payments"}, "annotations": {"owner": "payments@example.test"}}
    cluster.apply(
        certificate("app", "selfsigned", secretTemplate=template),
        certificate("ephemeral", "selfsigned", deleteSecretOnDeletion=True),
        certificate("keeper", "selfsigned"),
    )
    serials = [wait_ready(cluster, "app")["status"]["serialNumber"]]
    secret = cluster.secret("app-tls")
    assert secret is not None
    assert secret.metadata.labels["team"] == "payments"
    assert secret.metadata.annotations["owner"] == "payments@example.test"

    def restored(revision: int) -> str:
        body = wait_ready(cluster, "app", timeout=15, revision=revision)
        assert body["status"]["revision"] == revision
        serial = str(body["status"]["serialNumber"])
        assert verify_secret(cluster, "app-tls", tmp_path)["serial"] == serial
        assert serial not in serials
        serials.append(serial)
        return serial

    # Deleted: issued again.
    cluster.core.delete_namespaced_secret("app-tls", cluster.namespace)
    restored(2)

    # tls.crt replaced by another valid certificate and key: issued again.
    other = create_self_signed_ca(
        "intruder", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=1), datetime.now(UTC)
    )
    cluster.core.patch_namespaced_secret(
        "app-tls",
        cluster.namespace,
        {
            "data": {
                "tls.crt": base64.b64encode(other.certificate_pem.encode()).decode(),
                "tls.key": base64.b64encode(other.private_key_pem.encode()).decode(),
            }
        },
    )
    restored(3)

    # Only the key replaced: the pair no longer matches.
    stray_key = private_key_to_pem(generate_private_key(KeySpec(KeyAlgorithm.ECDSA)))
    cluster.core.patch_namespaced_secret(
        "app-tls", cluster.namespace, {"data": {"tls.key": base64.b64encode(stray_key.encode()).decode()}}
    )
    restored(4)

    # A label and an annotation removed: put back without a new certificate.
    cluster.core.patch_namespaced_secret(
        "app-tls", cluster.namespace, {"metadata": {"labels": {"team": None}, "annotations": {"owner": None}}}
    )

    def relabelled() -> bool:
        found = cluster.secret("app-tls")
        return bool(
            found
            and found.metadata.labels.get("team") == "payments"
            and found.metadata.annotations.get("owner") == "payments@example.test"
        )

    wait_for(relabelled, 15, "the Secret's template label and annotation back")
    assert cluster.cert("app")["status"]["revision"] == 4
    assert verify_secret(cluster, "app-tls", tmp_path)["serial"] == serials[-1]

    # Asked for by annotation: once per new value.
    cluster.annotate("app", {"certctl.io/renew": "please"})
    restored(5)
    assert cluster.cert("app")["status"]["lastRenewRequest"] == "please"

    # The spec changes: the certificate follows.
    cluster.objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        cluster.namespace,
        CERTS,
        "app",
        {"spec": {"dnsNames": ["app.example.test", "api.example.test"]}},
    )
    restored(6)
    assert "DNS:api.example.test" in verify_secret(cluster, "app-tls", tmp_path)["text"]
    reasons = [e.reason for e in cluster.events("app")]
    assert reasons.count("Issued") == 1 and reasons.count("Renewed") == 5

    # deleteSecretOnDeletion: the Secret goes with its certificate; by default it stays.
    wait_ready(cluster, "ephemeral")
    wait_ready(cluster, "keeper")
    assert "certctl.io/delete-secret" in cluster.cert("ephemeral")["metadata"]["finalizers"]
    for name in ("ephemeral", "keeper"):
        cluster.objects.delete_namespaced_custom_object(GROUP, VERSION, cluster.namespace, CERTS, name)
    wait_for(lambda: cluster.secret("ephemeral-tls") is None, 15, "Secret ephemeral-tls deleted")

    def gone(name: str) -> bool:
        try:
            cluster.cert(name)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(lambda: gone("keeper") and gone("ephemeral"), 15, "both certificates deleted")
    assert cluster.secret("keeper-tls") is not None

    # Per-certificate metric series go with their certificate.
    def samples(name: str) -> dict[tuple[str, str], float]:
        found = {}
        for family in text_string_to_metric_families(operator.metrics()):
            for sample in family.samples:
                labels = sample.labels
                ours = labels.get("name") == name and labels.get("namespace") == cluster.namespace
                if ours and sample.name.startswith("certctl_certificate_"):
                    found[(sample.name, labels.get("condition", ""))] = sample.value
        return found

    wait_for(
        lambda: not samples("keeper") and not samples("ephemeral"),
        15,
        "the deleted certificates' series gone",
    )
    app = samples("app")
    assert app[("certctl_certificate_ready_status", "True")] == 1.0
    assert app[("certctl_certificate_ready_status", "False")] == 0.0
    not_after = datetime.fromisoformat(cluster.cert("app")["status"]["notAfter"])
    assert app[("certctl_certificate_expiration_timestamp_seconds", "")] == not_after.timestamp()


def test_issuer_secret_broken_then_fixed_without_restart(
    cluster: Cluster, operator_factory: OperatorFactory, tmp_path: Path
) -> None:
    start_operator(operator_factory, cluster.namespace)
    now = datetime.now(UTC)
    ca = create_self_signed_ca("external CA", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=30), now)
    good = tls_secret("external-ca", ca.certificate_pem, ca.private_key_pem)
    cluster.apply(good, issuer("external", ca={"secretName": "external-ca"}))
    wait_issuer(cluster, "external", "True", "KeyPairVerified")
    cluster.apply(certificate("before", "external"))
    wait_ready(cluster, "before")

    # A leaf certificate instead of a CA.
    leaf_key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA))
    leaf = issue_certificate(CertificateRequest(common_name="not a CA"), leaf_key, ca.authority, now)
    cluster.apply(tls_secret("external-ca", leaf.certificate_pem, private_key_to_pem(leaf_key)))
    body = wait_issuer(cluster, "external", "False", "NotACA")
    assert "CA" in condition(body)["message"]
    cluster.apply(certificate("during", "external"))
    waiting = wait_reason(cluster, "during", "IssuerNotReady")
    assert waiting["status"]["failedIssuanceAttempts"] >= 1 and waiting["status"]["nextAttemptTime"]
    assert cluster.secret("during-tls") is None
    assert cluster.events("during", "IssuerNotReady")[0].type == "Warning"

    # The CA certificate with a key that is not its own.
    stray = private_key_to_pem(generate_private_key(KeySpec(KeyAlgorithm.ECDSA)))
    cluster.apply(tls_secret("external-ca", ca.certificate_pem, stray))
    wait_issuer(cluster, "external", "False", "KeyMismatch")

    # No Secret at all.
    cluster.core.delete_namespaced_secret("external-ca", cluster.namespace)
    wait_issuer(cluster, "external", "False", "SecretNotFound")

    # Fixed: the issuer turns Ready and the waiting certificate proceeds, no restart.
    cluster.apply(good)
    wait_issuer(cluster, "external", "True", "KeyPairVerified")
    fixed_at = time.monotonic()
    wait_ready(cluster, "during", timeout=15)
    assert time.monotonic() - fixed_at < 8
    verify_secret(cluster, "during-tls", tmp_path)
    assert cluster.cert("before")["status"]["revision"] == 1
    warnings = {e.reason for e in cluster.events("external") if e.type == "Warning"}
    assert {"NotACA", "KeyMismatch", "SecretNotFound"} <= warnings
    assert any(e.reason == "Ready" for e in cluster.events("external"))


def test_revoked_certificate_is_reissued_only_on_request_and_with_a_new_key(
    cluster: Cluster, operator_factory: OperatorFactory, tmp_path: Path
) -> None:
    operator = start_operator(operator_factory, cluster.namespace)
    cluster.apply(issuer("selfsigned", selfSigned={}))
    never = {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Never"}
    cluster.apply(certificate("rev", "selfsigned", privateKey=never))
    first = wait_ready(cluster, "rev")
    serial = first["status"]["serialNumber"]
    first_key = verify_secret(cluster, "rev-tls", tmp_path)["key"]

    # What the revocation side writes.
    conditions = [c for c in first["status"]["conditions"] if c["type"] != "Ready"]
    conditions.append(
        {
            "type": "Ready",
            "status": "False",
            "reason": "Revoked",
            "message": "revoked: keyCompromise",
            "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    cluster.patch_status("rev", {"revoked": True, "revokedSerialNumbers": [serial], "conditions": conditions})
    wait_for(
        lambda: (condition(cluster.cert("rev"), "Issuing") or {}).get("reason") == "Revoked",
        15,
        "the Issuing condition to say Revoked",
    )

    # Secret gone while revoked: not reissued automatically.
    cluster.core.delete_namespaced_secret("rev-tls", cluster.namespace)
    cluster.apply(certificate("barrier", "selfsigned"))
    wait_ready(cluster, "barrier")
    body = cluster.cert("rev")
    assert cluster.secret("rev-tls") is None
    assert body["status"]["revision"] == 1 and condition(body)["reason"] == "Revoked"
    assert condition(body)["message"] == "revoked: keyCompromise"

    # Reissue requested as the revocation side requests it: a new key despite rotationPolicy Never.
    cluster.annotate("rev", {"certctl.io/renew": f"revoked-{serial}"})
    second = wait_ready(cluster, "rev", revision=2)["status"]
    assert second["revoked"] is False and second["serialNumber"] != serial
    assert second["revokedSerialNumbers"] == [serial]
    assert second["lastRenewRequest"] == f"revoked-{serial}"
    second_key = verify_secret(cluster, "rev-tls", tmp_path)["key"]
    assert second_key != first_key

    # The handled request survives a restart: no third certificate.
    operator.kill()
    operator.start()
    cluster.apply(certificate("barrier-2", "selfsigned"))
    wait_ready(cluster, "barrier-2")
    assert cluster.cert("rev")["status"]["revision"] == 2

    # Not revoked any more, rotationPolicy Never: a renewal keeps the key.
    cluster.annotate("rev", {"certctl.io/renew": "rotate-cert-only"})
    wait_ready(cluster, "rev", revision=3)
    assert verify_secret(cluster, "rev-tls", tmp_path)["key"] == second_key


class History:
    """Every version of the namespace's Secrets and ManagedCertificates, as watches deliver them.

    The watches start from the resourceVersion of a list taken before the
    test acts, and resume from the last version seen when a stream breaks, so
    no version in between is missed (a 410 Gone would be reported as an error).
    """

    def __init__(self, kube: Any, namespace: str) -> None:
        self.namespace = namespace
        self.core = client.CoreV1Api(kube)
        self.objects = client.CustomObjectsApi(kube)
        # name -> revision -> serials seen with that revision
        self.secrets: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.statuses: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.errors: list[BaseException] = []
        self._stopped = threading.Event()

    def start(self) -> None:
        secrets_rv = self.core.list_namespaced_secret(self.namespace).metadata.resource_version
        listed = self.objects.list_namespaced_custom_object(GROUP, VERSION, self.namespace, CERTS)
        self._follow(self._record_secret, secrets_rv, self.core.list_namespaced_secret, self.namespace)
        self._follow(
            self._record_cert,
            listed["metadata"]["resourceVersion"],
            self.objects.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            CERTS,
        )

    def _follow(self, record: Callable[[Any], str], rv: str, list_fn: Callable[..., Any], *args: str) -> None:
        def run() -> None:
            version = rv
            while not self._stopped.is_set():
                stream = watch.Watch()
                try:
                    for event in stream.stream(list_fn, *args, resource_version=version, timeout_seconds=30):
                        version = record(event["object"])
                        if self._stopped.is_set():
                            stream.stop()
                except ApiException as error:
                    self.errors.append(error)  # 410 Gone: versions were missed
                    return
                except HTTPError:  # a broken stream: resume after the last version seen
                    continue

        threading.Thread(target=run, daemon=True).start()

    def _record_secret(self, secret: Any) -> str:
        annotations = secret.metadata.annotations or {}
        if "certctl.io/revision" in annotations:
            serials = self.secrets[secret.metadata.name][annotations["certctl.io/revision"]]
            serials.add(annotations["certctl.io/serial-number"])
        return str(secret.metadata.resource_version)

    def _record_cert(self, body: Body) -> str:
        status = body.get("status") or {}
        if status.get("revision"):
            self.statuses[body["metadata"]["name"]][status["revision"]].add(status["serialNumber"])
        return str(body["metadata"]["resourceVersion"])

    def stop(self) -> None:
        self._stopped.set()


def verify_many(secrets: dict[str, client.V1Secret], tmp_path: Path) -> dict[str, str]:
    """One ``openssl verify`` for Secrets that share a CA; ``openssl x509`` reads back each serial and SAN."""
    folder = tmp_path / "many"
    folder.mkdir(exist_ok=True)
    files = []
    ca_files = set()
    for name, secret in secrets.items():
        data = {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}
        (folder / f"{name}.crt").write_bytes(data["tls.crt"])
        files.append(str(folder / f"{name}.crt"))
        ca_files.add(data["ca.crt"])
        # tls.key belongs to the certificate.
        leaf = load_certificates(data["tls.crt"])[0]
        assert leaf.public_key() == load_private_key(data["tls.key"]).public_key(), name
    assert len(ca_files) == 1, "the Secrets do not share one CA"
    (folder / "ca.crt").write_bytes(ca_files.pop())
    output = openssl("verify", "-CAfile", str(folder / "ca.crt"), *files)
    assert output.count(": OK") == len(files), output
    serials = {}
    for name in secrets:
        text = openssl(
            "x509", "-in", str(folder / f"{name}.crt"), "-noout", "-serial", "-ext", "subjectAltName"
        )
        assert f"DNS:{name.removesuffix('-tls')}.example.test" in text, text
        serials[name] = text.split("serial=", 1)[1].split()[0].lower()
    return serials


def test_sigkill_during_a_burst_issues_no_revision_twice(
    cluster: Cluster, operator_factory: OperatorFactory, kube: Any, tmp_path: Path
) -> None:
    count = 50
    names = [f"burst-{index:02d}" for index in range(count)]
    operator = start_operator(operator_factory, cluster.namespace)
    ca = create_self_signed_ca("burst CA", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=30), datetime.now(UTC))
    cluster.apply(
        tls_secret("burst-ca", ca.certificate_pem, ca.private_key_pem),
        issuer("ca", ca={"secretName": "burst-ca"}),
    )
    wait_issuer(cluster, "ca", "True")
    history = History(kube, cluster.namespace)
    history.start()

    cluster.apply(*(certificate(name, "ca") for name in names))

    def secrets_written() -> int:
        listed = cluster.core.list_namespaced_secret(
            cluster.namespace, label_selector="certctl.io/managed-by-certificate"
        )
        return len(listed.items)

    # Killed in the middle of the burst: some Secrets written, not all.
    wait_for(lambda: secrets_written() >= 5, 30, "the first Secrets", interval=0.05)
    operator.kill()
    written_at_kill = secrets_written()
    ready_at_kill = sum(is_ready(cluster.cert(name)) for name in names)
    operator.start()

    def all_ready() -> bool:
        items = cluster.objects.list_namespaced_custom_object(GROUP, VERSION, cluster.namespace, CERTS)
        return sum(is_ready(item) for item in items["items"]) == count

    wait_for(all_ready, 90, f"all {count} certificates Ready")
    final = {name: cluster.cert(name)["status"]["serialNumber"] for name in names}

    def caught_up() -> bool:
        def seen(versions: dict[Any, set[str]], serial: str) -> bool:
            return any(serial in serials for serials in versions.values())

        return all(
            seen(history.statuses[name], final[name]) and seen(history.secrets[f"{name}-tls"], final[name])
            for name in names
        )

    wait_for(caught_up, 30, "the watches to see the final versions")
    history.stop()
    print(f"at the kill: {written_at_kill} Secrets written, {ready_at_kill} certificates Ready")
    print("recorded from a Secret after the restart:", operator.logs().count("found in Secret"))
    assert not history.errors, history.errors
    assert written_at_kill < count or ready_at_kill < count, "the kill came after the burst"

    secrets = {
        secret.metadata.name: secret
        for secret in cluster.core.list_namespaced_secret(
            cluster.namespace, label_selector="certctl.io/managed-by-certificate"
        ).items
    }
    serials = verify_many(secrets, tmp_path)
    certs = {
        item["metadata"]["name"]: item
        for item in cluster.objects.list_namespaced_custom_object(GROUP, VERSION, cluster.namespace, CERTS)[
            "items"
        ]
    }
    events: dict[str, list[Any]] = defaultdict(list)
    for event in cluster.core.list_namespaced_event(cluster.namespace).items:
        events[event.involved_object.name].append(event)
    for name in names:
        status = certs[name]["status"]
        serial = status["serialNumber"]
        # One issuance per certificate: revision 1, the same serial in status, annotations and certificate.
        assert status["revision"] == 1, f"{name} was issued {status['revision']} times"
        annotations = secrets[f"{name}-tls"].metadata.annotations
        assert annotations["certctl.io/revision"] == "1"
        assert annotations["certctl.io/serial-number"] == serial == serials[f"{name}-tls"]
        # No Secret version ever held another certificate, no status ever recorded another one.
        assert dict(history.secrets[f"{name}-tls"]) == {"1": {serial}}, name
        assert dict(history.statuses[name]) == {1: {serial}}, name
        # Exactly one Issued event, naming that serial; no renewal.
        assert [e.reason for e in events[name]] == ["Issued"], (name, [e.reason for e in events[name]])
        assert serial in events[name][0].message


def test_secret_written_before_a_crash_is_adopted_not_issued_again(
    cluster: Cluster, operator_factory: OperatorFactory, tmp_path: Path
) -> None:
    """The state a SIGKILL between the Secret write and the status write leaves, made on purpose."""
    operator = start_operator(operator_factory, cluster.namespace)
    now = datetime.now(UTC)
    ca = create_self_signed_ca("adoption CA", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=30), now)
    cluster.apply(
        tls_secret("adoption-ca", ca.certificate_pem, ca.private_key_pem),
        issuer("ca", ca={"secretName": "adoption-ca"}),
    )
    cluster.apply(certificate("adopt", "ca"))
    first = wait_ready(cluster, "adopt")

    def crash_state(revision: int, dns_names: list[str]) -> str:
        """The Secret an operator writes for ``revision`` before it records it; returns the serial."""
        cert = ManagedCertificate.from_body(cluster.cert("adopt"))
        spec = Issuer.from_body(cluster.issuer("ca")).spec
        check = evaluate_issuer(
            spec,
            SecretSnapshot(
                cluster.namespace,
                "adoption-ca",
                "kubernetes.io/tls",
                data={"tls.crt": ca.certificate_pem.encode(), "tls.key": ca.private_key_pem.encode()},
            ),
            datetime.now(UTC),
        )
        view = IssuerView(cert.spec.issuer_ref, spec, check)
        request = build_request(cert.spec, cluster.namespace, view)
        key = generate_private_key(key_spec_for(cert.spec))
        issued = issue_certificate(
            CertificateRequest(**{**request.__dict__, "dns_names": dns_names}),
            key,
            ca.authority,
            datetime.now(UTC),
        )
        serial = serial_hex(issued.serial)
        hash_ = request_hash(
            request, key_spec_for(cert.spec), key_encoding_for(cert.spec), cert.spec.issuer_ref
        )
        body = tls_secret("adopt-tls", issued.full_chain_pem, private_key_to_pem(key), issued.ca_pem)
        body["metadata"]["labels"] = desired_labels(cert)
        body["metadata"]["annotations"] = desired_annotations(
            cert, revision=revision, serial=serial, hash_=hash_, renew_request=None
        )
        cluster.core.replace_namespaced_secret("adopt-tls", cluster.namespace, body)
        return serial

    # Revision 2 in the Secret, revision 1 in the status: recorded, not issued again.
    operator.kill()
    serial = crash_state(2, ["adopt.example.test"])
    operator.start()
    adopted = wait_ready(cluster, "adopt", revision=2)["status"]
    assert adopted["serialNumber"] == serial and adopted["serialNumber"] != first["status"]["serialNumber"]
    assert [e.reason for e in cluster.events("adopt")] == ["Issued", "Renewed"]
    cluster.apply(certificate("barrier", "ca"))
    wait_ready(cluster, "barrier")
    assert cluster.cert("adopt")["status"]["revision"] == 2
    assert verify_secret(cluster, "adopt-tls", tmp_path)["serial"] == serial

    # A Secret ahead of the status that does not match the spec is not adopted: revision 4 replaces it,
    # and revision 3 (taken by that Secret) is never reused.
    operator.kill()
    stale = crash_state(3, ["somewhere-else.example.test"])
    operator.start()
    replaced = wait_ready(cluster, "adopt", revision=4)["status"]
    assert replaced["revision"] == 4 and replaced["serialNumber"] not in (serial, stale)
    text = verify_secret(cluster, "adopt-tls", tmp_path)["text"]
    assert "DNS:adopt.example.test" in text and "somewhere-else" not in text


def test_a_revocation_with_reissue_gets_a_new_certificate_and_key(
    cluster: Cluster, operator_factory: OperatorFactory, tmp_path: Path
) -> None:
    """The other side of the revocation contract, with a real Revocation."""
    start_operator(operator_factory, cluster.namespace)
    ca = create_self_signed_ca(
        "revoking CA", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=30), datetime.now(UTC)
    )
    cluster.apply(
        tls_secret("rev-ca", ca.certificate_pem, ca.private_key_pem),
        issuer("ca", ca={"secretName": "rev-ca"}),
    )
    never = {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Never"}
    cluster.apply(certificate("web", "ca", privateKey=never))
    first = wait_ready(cluster, "web")["status"]
    first_key = verify_secret(cluster, "web-tls", tmp_path)["key"]
    cluster.apply(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Revocation",
            "metadata": {"name": "web-compromised"},
            "spec": {"certificateRef": {"name": "web"}, "reason": "keyCompromise", "reissue": True},
        }
    )
    second = wait_ready(cluster, "web", revision=2, timeout=30)["status"]
    assert second["serialNumber"] != first["serialNumber"]
    assert first["serialNumber"] in second["revokedSerialNumbers"]
    assert second.get("revoked") is False
    assert second["lastRenewRequest"] == f"revoked-{first['serialNumber']}"
    facts = verify_secret(cluster, "web-tls", tmp_path)
    assert facts["serial"] == second["serialNumber"] and facts["key"] != first_key


def test_a_new_renew_value_cuts_an_active_back_off_short(
    cluster: Cluster, operator_factory: OperatorFactory, tmp_path: Path
) -> None:
    """``kubectl certctl renew`` (a new ``certctl.io/renew`` value) means "try now", even after a failure."""
    start_operator(
        operator_factory,
        cluster.namespace,
        CERTCTL_ISSUANCE_RETRY_BASE="10m",
        CERTCTL_ISSUANCE_RETRY_CAP="1h",
    )
    now = datetime.now(UTC)
    ca = create_self_signed_ca("renew CA", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=30), now)
    good = tls_secret("renew-ca", ca.certificate_pem, ca.private_key_pem)
    cluster.apply(good, issuer("ca", ca={"secretName": "renew-ca"}))
    cluster.apply(certificate("web", "ca"))
    wait_ready(cluster, "web")

    # The CA Secret now holds a leaf: the issuer cannot sign, and stays so.
    leaf_key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA))
    leaf = issue_certificate(CertificateRequest(common_name="not a CA"), leaf_key, ca.authority, now)
    cluster.apply(tls_secret("renew-ca", leaf.certificate_pem, private_key_to_pem(leaf_key)))
    wait_issuer(cluster, "ca", "False", "NotACA")

    def attempts(count: int) -> Body | None:
        body = cluster.cert("web")
        return body if (body.get("status") or {}).get("failedIssuanceAttempts") == count else None

    cluster.annotate("web", {"certctl.io/renew": "first"})
    failed = wait_for(lambda: attempts(1), 30, "the first renewal attempt to fail")["status"]
    next_attempt = datetime.fromisoformat(failed["nextAttemptTime"])
    assert next_attempt - datetime.now(UTC) > timedelta(minutes=8)
    assert failed["failedRenewRequest"] == "first"

    # A new value: tried at once, not in ten minutes.
    cluster.annotate("web", {"certctl.io/renew": "second"})
    failed = wait_for(lambda: attempts(2), 30, "a second attempt right after the new renew value")["status"]
    assert failed["failedRenewRequest"] == "second"
    assert failed["revision"] == 1

    # The same value again is no new request: the back-off holds.
    cluster.annotate("web", {"certctl.io/renew": "second"})
    cluster.apply(issuer("barrier", selfSigned={}), certificate("barrier", "barrier"))
    wait_ready(cluster, "barrier")
    assert cluster.cert("web")["status"]["failedIssuanceAttempts"] == 2

    # The issuer fixed: issued at once, answering the last request.
    cluster.apply(good)
    renewed = wait_ready(cluster, "web", revision=2, timeout=30)["status"]
    assert renewed["lastRenewRequest"] == "second" and "failedRenewRequest" not in renewed
    assert verify_secret(cluster, "web-tls", tmp_path)["serial"] == renewed["serialNumber"]


def test_cluster_issuer_events_are_shown_by_kubectl_describe(
    cluster: Cluster, operator_factory: OperatorFactory, cluster_issuers: list[str]
) -> None:
    """Events about a cluster-scoped object: where ``kubectl describe clusterissuer`` finds them."""
    start_operator(operator_factory, cluster.namespace)
    name = f"missing-ca-{cluster.namespace[-6:]}"
    cluster_issuers.append(name)
    cluster.apply(issuer(name, "ClusterIssuer", ca={"secretName": f"{name}-keypair"}))
    wait_issuer(cluster, name, "False", "SecretNotFound", cluster_scoped=True)

    def described() -> str | None:
        output = cluster.kubectl("describe", "clusterissuer.certctl.io", name).stdout
        events = output.split("\nEvents:", 1)[-1]
        return output if "Warning" in events and "SecretNotFound" in events else None

    output = wait_for(described, 30, f"kubectl describe clusterissuer {name} to show the Warning")
    assert f"{name}-keypair" in output.split("\nEvents:", 1)[1]
    # As the API server requires for a cluster-scoped object: no namespace in the reference.
    uid = cluster.issuer(name, cluster=True)["metadata"]["uid"]
    found = cluster.core.list_event_for_all_namespaces(
        field_selector=f"involvedObject.uid={uid},reason=SecretNotFound"
    ).items
    assert len(found) == 1 and not found[0].involved_object.namespace
    assert found[0].involved_object.kind == "ClusterIssuer"
    assert found[0].metadata.namespace == "default"
    # No other namespace is possible: the API server refuses an Event about a cluster-scoped object
    # anywhere but in "default" (or "kube-system" for the newer Event form).
    probe = {
        "metadata": {"name": f"{name}.probe"},
        "involvedObject": {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ClusterIssuer",
            "name": name,
            "uid": uid,
        },
        "reason": "Probe",
        "message": "probe",
        "type": "Normal",
    }
    with pytest.raises(ApiException) as refused:
        cluster.core.create_namespaced_event(cluster.namespace, probe)
    assert refused.value.status == 422 and "does not match event.namespace" in str(refused.value.body)
