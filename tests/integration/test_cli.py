"""``kubectl certctl`` against the real control plane: output and exit status of every command.

The objects' status is written here through the status subresource, the way
the operator writes it, so the plugin's own behaviour is tested whatever the
operator does with them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.support.cli_objects import (
    Result,
    annotations,
    certificate,
    condition,
    create,
    custom,
    event,
    issuer,
    mcert_not_found,
    stamp,
    write_status,
)
from tests.support.cli_pki import PKIWorld

from certctl_operator.cli.main import main
from certctl_operator.dev.operator_process import OperatorFactory
from certctl_operator.pki import crl_der_to_pem

CLI = Callable[..., Result]


@pytest.fixture
def cli(kubeconfig: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CLI:
    """Run ``kubectl certctl ARGS`` in this process with the test cluster's kubeconfig."""
    monkeypatch.delenv("COLUMNS", raising=False)
    capsys.readouterr()

    def run(*args: str) -> Result:
        code = main(["--kubeconfig", str(kubeconfig), *args])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return Result(code, out, err)

    return run


@pytest.fixture
def cluster_objects(kube: Any) -> Iterator[list[tuple[str, str]]]:
    """Cluster-scoped objects to delete after the test: (plural, name)."""
    made: list[tuple[str, str]] = []
    yield made
    for plural, name in made:
        custom(kube).delete_cluster_custom_object("certctl.io", "v1alpha1", plural, name)


READY = condition("Ready", "True", "Issued", "certificate is up to date")


# --------------------------------------------------------------------------- status


def _status_world(kube: Any, namespace: str) -> None:
    states: dict[str, dict[str, Any]] = {
        "ok": {"conditions": [READY], "notAfter": stamp(timedelta(days=60))},
        "soon": {"conditions": [READY], "notAfter": stamp(timedelta(days=5))},
        "gone": {"conditions": [READY], "notAfter": stamp(-timedelta(days=1))},
        "broken": {
            "conditions": [condition("Ready", "False", "IssuerNotReady", "Issuer ca-missing is not Ready")],
            "failedIssuanceAttempts": 2,
        },
        "new": {},
        "pulled": {
            "conditions": [READY],
            "notAfter": stamp(timedelta(days=60)),
            "revoked": True,
            "serialNumber": "0a1b2c",
        },
    }
    for name, status in states.items():
        create(kube, namespace, "managedcertificates", certificate(name))
        if status:
            write_status(kube, namespace, "managedcertificates", name, status)
    create(kube, namespace, "issuers", issuer("ca"))
    write_status(
        kube, namespace, "issuers", "ca", {"conditions": [condition("Ready", "True", "KeyPairLoaded")]}
    )
    create(kube, namespace, "issuers", issuer("ca-missing"))
    write_status(
        kube,
        namespace,
        "issuers",
        "ca-missing",
        {
            "conditions": [
                condition("Ready", "False", "SecretNotFound", "Secret ca-missing-keypair not found")
            ]
        },
    )
    events = {
        "dead-1": ({"phase": "Dead", "retryCount": 4, "lastError": "HTTP 500 from the receiver"}, True),
        "retrying": ({"phase": "Failed", "retryCount": 1, "nextRetryAt": stamp(timedelta(minutes=2))}, False),
        "done": ({"phase": "Sent", "sentAt": stamp()}, False),
        "queued": ({}, False),
    }
    for name, (status, dead) in events.items():
        create(kube, namespace, "notificationevents", event(name, dead=dead))
        if status:
            write_status(kube, namespace, "notificationevents", name, status)


def test_status_counts_certificates_issuers_and_notifications(
    cli: CLI, kube: Any, namespace: str, cluster_objects: list[tuple[str, str]]
) -> None:
    _status_world(kube, namespace)
    cluster_issuer = f"cli-corp-{uuid.uuid4().hex[:6]}"
    create(kube, None, "clusterissuers", issuer(cluster_issuer, kind="ClusterIssuer"))
    cluster_objects.append(("clusterissuers", cluster_issuer))
    write_status(
        kube,
        None,
        "clusterissuers",
        cluster_issuer,
        {"conditions": [condition("Ready", "False", "CANotValid")]},
    )

    result = cli("status", "-n", namespace, "-o", "json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["namespace"] == namespace
    assert document["certificates"] == {
        "total": 6,
        "ready": 1,
        "issuing": 1,
        "failing": 1,
        "expiring": 1,
        "expired": 1,
        "revoked": 1,
    }
    problems = {row["name"]: row["state"] for row in document["certificateProblems"]}
    assert problems == {
        "pulled": "revoked",
        "gone": "expired",
        "soon": "expiring",
        "broken": "failing",
        "new": "issuing",
    }
    not_ready = {(row["kind"], row["name"]): row["detail"] for row in document["issuers"]["notReady"]}
    assert not_ready[("Issuer", "ca-missing")] == "SecretNotFound: Secret ca-missing-keypair not found"
    assert not_ready[("ClusterIssuer", cluster_issuer)] == "CANotValid"
    assert ("Issuer", "ca") not in not_ready
    assert document["notifications"] == {"dead": 1, "failed": 1, "pending": 1, "sent": 1, "total": 4}
    assert document["deadLetters"] == [
        {
            "namespace": namespace,
            "name": "dead-1",
            "channel": "ops",
            "retryCount": 4,
            "lastError": "HTTP 500 from the receiver",
        }
    ]

    table = cli("status", "-n", namespace)
    assert table.code == 0
    assert f"certctl status: namespace {namespace}" in table.out
    assert table.out.index("Dead (dead letters)") < table.out.index("Failed") < table.out.index("Sent")
    assert "HTTP 500 from the receiver" in table.out
    assert f"kubectl certctl requeue --all-dead -n {namespace}" in table.out
    assert "IssuerNotReady: Issuer ca-missing is not Ready (2 failed attempts)" in table.out


def test_status_fail_on_exits_3_only_when_something_matches(
    cli: CLI, kube: Any, namespace: str, kubectl: Any
) -> None:
    _status_world(kube, namespace)
    tripped = cli("status", "-n", namespace, "--fail-on", "dead,failing")
    assert tripped.code == 3
    assert "error: --fail-on: dead-lettered notifications: 1; failing certificates: 1" in tripped.err
    assert "Certificates (6)" in tripped.out, "the summary is still printed"

    healthy = f"{namespace}-ok"[:63]
    kubectl("create", "namespace", healthy)
    create(kube, healthy, "managedcertificates", certificate("ok"))
    write_status(
        kube,
        healthy,
        "managedcertificates",
        "ok",
        {"conditions": [READY], "notAfter": stamp(timedelta(days=90))},
    )
    clean = cli("status", "-n", healthy, "--fail-on", "dead,failing,expired,revoked,expiring", "-o", "json")
    assert clean.code == 0, clean.err
    assert json.loads(clean.out)["certificates"]["ready"] == 1

    everywhere = cli("status", "-A", "-o", "json")
    assert everywhere.code == 0
    seen = {(row["namespace"], row["name"]) for row in json.loads(everywhere.out)["certificateProblems"]}
    assert {(namespace, "gone"), (namespace, "broken")} <= seen
    assert json.loads(everywhere.out)["namespace"] is None


def test_the_plugin_runs_through_kubectl(kubeconfig: Path, kube: Any, namespace: str) -> None:
    create(kube, namespace, "managedcertificates", certificate("web"))
    scripts = Path(sys.executable).parent
    assert (scripts / "kubectl-certctl").exists(), "pip install -e . installs the console script"
    env = dict(os.environ, PATH=f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}")
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    result = subprocess.run(
        [kubectl, "certctl", "status", "--kubeconfig", str(kubeconfig), "-n", namespace, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["certificates"]["issuing"] == 1

    missing = subprocess.run(
        [kubectl, "certctl", "inspect", "nope", "--kubeconfig", str(kubeconfig), "-n", namespace],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == mcert_not_found(namespace, "nope")


# --------------------------------------------------------------------------- inspect


def _store(kube: Any, namespace: str, name: str, world: PKIWorld, leaf: Any) -> None:
    create(kube, namespace, "managedcertificates", certificate(name))
    write_status(
        kube,
        namespace,
        "managedcertificates",
        name,
        {"conditions": [READY], "secretName": f"{name}-tls", "serialNumber": leaf.issued.serial_hex.lower()},
    )
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=f"{name}-tls",
            annotations={
                "certctl.io/serial-number": leaf.issued.serial_hex.lower(),
                "certctl.io/revision": "3",
                "certctl.io/issuer-name": "ca",
                "certctl.io/issuer-kind": "Issuer",
            },
        ),
        type="kubernetes.io/tls",
        string_data={
            "tls.crt": leaf.issued.certificate_pem,
            "tls.key": leaf.key_pem,
            "ca.crt": world.ca.certificate_pem,
        },
    )
    client.CoreV1Api(kube).create_namespaced_secret(namespace, secret)


def test_inspect_decodes_the_secret_and_asks_the_crl_and_ocsp_urls(
    cli: CLI, kube: Any, namespace: str
) -> None:
    world = PKIWorld()
    with world.serve():
        leaf = world.issue("web.example.test")
        world.revoke(leaf, "keyCompromise")
        _store(kube, namespace, "web", world, leaf)

        table = cli("inspect", "web", "-n", namespace)
        assert table.code == 0, table.err
        assert world.requests == [("GET", "/crl"), ("POST", "/ocsp")], (
            "exactly the URLs the certificate names"
        )
        serial = leaf.issued.serial_hex.lower()
        for text in (
            f"ManagedCertificate {namespace}/web (Secret web-tls)",
            "DNS:web.example.test",
            serial,
            leaf.issued.fingerprint_sha256.lower(),
            "ECDSA P-256",
            "CN=certctl test CA",
            f"{world.base_url}/crl",
            "Revocation: revoked",
            "listed on CRL #7",
            "(keyCompromise)",
            "certctl.io/revision",
        ):
            assert text in table.out, text

        world.requests.clear()
        document = json.loads(cli("inspect", "web", "-n", namespace, "-o", "json").out)
        assert document["x509"]["serial"] == serial
        assert document["x509"]["dns_names"] == ["web.example.test"]
        assert document["secret"]["keyMatchesCertificate"] is True
        assert document["secret"]["annotations"]["certctl.io/issuer-name"] == "ca"
        assert document["revocation"]["status"] == "revoked"
        assert [(s["source"], s["status"], s["reason"]) for s in document["revocation"]["sources"]] == [
            ("CRL", "revoked", "keyCompromise"),
            ("OCSP", "revoked", "keyCompromise"),
        ]

        world.requests.clear()
        skipped = cli("inspect", "web", "-n", namespace, "--no-revocation-check", "-o", "json")
        assert json.loads(skipped.out)["revocation"] == {
            "status": "not checked",
            "note": "not checked: --no-revocation-check",
            "sources": [],
        }
        assert world.requests == [], "--no-revocation-check fetches nothing"

        good = world.issue("api.example.test")
        _store(kube, namespace, "api", world, good)
        assert (
            json.loads(cli("inspect", "api", "-n", namespace, "-o", "json").out)["revocation"]["status"]
            == "good"
        )


def test_inspect_without_revocation_urls_says_so(cli: CLI, kube: Any, namespace: str) -> None:
    world = PKIWorld()
    leaf = world.issue("plain.example.test", urls=False)
    _store(kube, namespace, "plain", world, leaf)
    result = cli("inspect", "plain", "-n", namespace)
    assert result.code == 0, result.err
    assert "Revocation: not checked" in result.out
    assert "not checked: no CRL/OCSP URL in the certificate" in result.out


def test_inspect_explains_missing_objects(cli: CLI, kube: Any, namespace: str) -> None:
    missing = cli("inspect", "nope", "-n", namespace)
    assert missing.code == 1
    assert missing.err.strip() == mcert_not_found(namespace, "nope")
    create(kube, namespace, "managedcertificates", certificate("fresh"))
    unissued = cli("inspect", "fresh", "-n", namespace)
    assert unissued.code == 1
    assert f"Secret {namespace}/fresh-tls not found: ManagedCertificate {namespace}/fresh" in unissued.err
    assert "has not been issued yet" in unissued.err
    assert f"kubectl describe mcert -n {namespace} fresh" in unissued.err


# --------------------------------------------------------------------------- renew and requeue


def test_renew_sets_a_new_renew_annotation(cli: CLI, kube: Any, namespace: str) -> None:
    create(kube, namespace, "managedcertificates", certificate("a", labels={"app": "shop"}))
    create(kube, namespace, "managedcertificates", certificate("b"))
    create(kube, namespace, "managedcertificates", certificate("c"))

    def renew_value(name: str) -> str | None:
        return annotations(kube, namespace, "managedcertificates", name).get("certctl.io/renew")

    first = cli("renew", "a", "-n", namespace)
    assert first.code == 0, first.err
    assert f"renewal requested: ManagedCertificate {namespace}/a" in first.out
    value = renew_value("a")
    assert value is not None and datetime.fromisoformat(value) <= datetime.now(UTC)
    assert renew_value("b") is None and renew_value("c") is None

    assert cli("renew", "-l", "app=shop", "-n", namespace).code == 0
    second = renew_value("a")
    assert second is not None and second != value, "each request is a new value"
    assert renew_value("b") is None

    everything = cli("renew", "--all", "-n", namespace)
    assert everything.code == 0
    assert "3 certificates will be issued again" in everything.out
    values = {renew_value(name) for name in "abc"}
    assert len(values) == 1 and None not in values and second not in values

    nothing = cli("renew", "-l", "app=none", "-n", namespace)
    assert nothing.code == 1
    assert "no ManagedCertificates matching app=none in namespace" in nothing.err
    missing = cli("renew", "nope", "-n", namespace)
    assert missing.code == 1 and "ManagedCertificate" in missing.err and "not found" in missing.err


def test_requeue_sets_a_new_requeue_annotation(cli: CLI, kube: Any, namespace: str) -> None:
    for name, dead in (("dead-1", True), ("dead-2", True), ("sent-1", False)):
        create(kube, namespace, "notificationevents", event(name, dead=dead))
    write_status(
        kube,
        namespace,
        "notificationevents",
        "dead-1",
        {"phase": "Dead", "retryCount": 4, "lastError": "timeout"},
    )

    def requeue_value(name: str) -> str | None:
        return annotations(kube, namespace, "notificationevents", name).get("certctl.io/requeue")

    result = cli("requeue", "--all-dead", "-n", namespace)
    assert result.code == 0, result.err
    assert (
        f"requeued NotificationEvent {namespace}/dead-1 (was Dead; 4 failed attempts; last error: timeout)"
        in result.out
    )
    assert requeue_value("dead-1") and requeue_value("dead-2")
    assert requeue_value("sent-1") is None
    before = requeue_value("dead-1")

    named = cli("requeue", "dead-1", "sent-1", "-n", namespace)
    assert named.code == 0
    assert requeue_value("sent-1") is not None
    assert requeue_value("dead-1") != before

    assert cli("requeue", "nope", "-n", namespace).code == 1
    empty = f"{namespace}-e"[:63]
    client.CoreV1Api(kube).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=empty)))
    none = cli("requeue", "--all-dead", "-n", empty)
    assert none.code == 0
    assert f"no dead-lettered NotificationEvents in namespace {empty}; nothing to requeue" in none.out


# --------------------------------------------------------------------------- crl


def _publish(kube: Any, namespace: str, name: str, pem: str) -> None:
    configmap = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"{name}-crl"), data={"ca.crl": pem})
    client.CoreV1Api(kube).create_namespaced_config_map(namespace, configmap)


def test_crl_prints_the_published_crl(
    cli: CLI, kube: Any, namespace: str, cluster_objects: list[tuple[str, str]]
) -> None:
    world = PKIWorld()
    leaf = world.issue()
    world.revoke(leaf, "cessationOfOperation")
    pem = crl_der_to_pem(world.crl_der())
    create(kube, namespace, "issuers", issuer("ca"))
    _publish(kube, namespace, "ca", pem)

    table = cli("crl", "ca", "-n", namespace)
    assert table.code == 0, table.err
    assert f"CRL from ConfigMap {namespace}/ca-crl" in table.out
    assert "CRL number:   7" in table.out and "Revoked:      1" in table.out
    assert leaf.issued.serial_hex.lower() in table.out and "cessationOfOperation" in table.out
    assert "STALE" not in table.out

    assert cli("crl", "ca", "-n", namespace, "-o", "pem").out == pem
    document = json.loads(cli("crl", "ca", "-n", namespace, "-o", "json").out)
    assert document["crlNumber"] == 7 and document["stale"] is False
    assert document["entries"] == [
        {
            "serialNumber": leaf.issued.serial_hex.lower(),
            "revokedAt": document["entries"][0]["revokedAt"],
            "reason": "cessationOfOperation",
        }
    ]

    corp = f"cli-corp-{uuid.uuid4().hex[:6]}"
    create(kube, None, "clusterissuers", issuer(corp, kind="ClusterIssuer"))
    cluster_objects.append(("clusterissuers", corp))
    _publish(kube, namespace, corp, pem)
    clustered = cli("crl", corp, "--cluster", "--operator-namespace", namespace)
    assert clustered.code == 0, clustered.err
    assert f"CRL from ConfigMap {namespace}/{corp}-crl" in clustered.out


def test_crl_explains_what_is_missing(cli: CLI, kube: Any, namespace: str) -> None:
    assert cli("crl", "nope", "-n", namespace).err.strip() == (
        f"error: Issuer {namespace}/nope not found; list them with kubectl get ctlissuer -n {namespace}"
    )
    create(kube, namespace, "issuers", issuer("self", self_signed=True))
    self_signed = cli("crl", "self", "-n", namespace)
    assert self_signed.code == 1 and "is selfSigned: it has no CA key to sign a CRL with" in self_signed.err
    create(kube, namespace, "issuers", issuer("quiet"))
    unpublished = cli("crl", "quiet", "-n", namespace)
    assert unpublished.code == 1
    assert (
        f"ConfigMap {namespace}/quiet-crl not found: Issuer {namespace}/quiet has not published a CRL yet"
        in (unpublished.err)
    )


def test_crl_from_a_url_and_a_stale_one(cli: CLI) -> None:
    world = PKIWorld()
    world.crl_now = datetime.now(UTC) - timedelta(days=3)
    with world.serve():
        result = cli("crl", "--url", world.crl_url)
    assert result.code == 0, result.err
    assert f"CRL from {world.crl_url}" in result.out
    assert "STALE: relying parties reject this CRL" in result.out
    assert world.requests == [("GET", "/crl")]


# --------------------------------------------------------------------------- check


def test_check_passes_with_a_running_operator(
    cli: CLI, operator_factory: OperatorFactory, namespace: str
) -> None:
    operator = operator_factory(namespaces=[namespace])
    result = cli("check", "--operator-url", operator.base_url, "-o", "json")
    assert result.code == 0, result.out + result.err
    checks = {row["check"]: row for row in json.loads(result.out)["checks"]}
    assert checks["API server"]["result"] == "ok"
    for crd in (
        "issuers",
        "clusterissuers",
        "managedcertificates",
        "revocations",
        "notificationchannels",
        "notificationevents",
    ):
        assert checks[f"CRD {crd}.certctl.io"] == {
            "check": f"CRD {crd}.certctl.io",
            "result": "ok",
            "detail": "v1alpha1 installed and current",
        }
    assert checks["operator"]["detail"] == f"{operator.base_url} is healthy and ready"

    operator.stop()
    down = cli("check", "--operator-url", operator.base_url)
    assert down.code == 3
    assert "does not answer" in down.out
    assert "error: 1 check failed: operator" in down.err


def test_check_looks_for_ready_operator_pods(cli: CLI, kube: Any, namespace: str) -> None:
    absent = cli("check", "--operator-namespace", namespace)
    assert absent.code == 3
    assert f"no Pods labelled app.kubernetes.io/name=certctl-operator in namespace {namespace}" in absent.out

    core = client.CoreV1Api(kube)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(
            name="certctl-operator-0", labels={"app.kubernetes.io/name": "certctl-operator"}
        ),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="operator", image="certctl-operator:test")]
        ),
    )
    core.create_namespaced_pod(namespace, pod)
    unready = cli("check", "--operator-namespace", namespace)
    assert unready.code == 3 and "no Ready Pod among certctl-operator-0" in unready.out

    now = stamp()
    core.patch_namespaced_pod_status(
        "certctl-operator-0",
        namespace,
        {"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}},
    )
    ready = cli("check", "--operator-namespace", namespace, "-o", "json")
    assert ready.code == 0, ready.out
    operator = next(row for row in json.loads(ready.out)["checks"] if row["check"] == "operator")
    assert operator == {"check": "operator", "result": "ok", "detail": f"1 of 1 Pods Ready in {namespace}"}
