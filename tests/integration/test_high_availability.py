"""Two operator replicas with leader election against one API server: one acts, the other stands by.

Both run as real ``certctl-operator run`` processes sharing a Lease in the
test namespace, with short timings (Lease 4 s, renew deadline 3 s, a look
every 0.5 s) so a handover takes seconds, except where the chart's own
settings are the point. Both replicas are Ready (``/readyz`` 200): who leads
is read from the ``certctl_leader`` metric and the Lease. The webhook
receiver is a real HTTP server on 127.0.0.1 that records every request with
its Idempotency-Key.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.x509 import ocsp
from kubernetes import client
from tests.support.pki_cluster import (
    ask_ocsp,
    certificate_body,
    create,
    crl_number,
    crl_reasons,
    fetch_crl,
    get,
    issuer_body,
    make_ca_secret,
    metric,
    openssl,
    revocation_body,
    wait_crl,
    wait_for,
    wait_issued,
    wait_ready,
)
from tests.support.receivers import HTTPReceiver, ScriptedResponse

from certctl_operator.dev import render_manifests
from certctl_operator.dev.helm import Helm
from certctl_operator.dev.operator_process import OperatorFactory, OperatorProcess
from certctl_operator.durations import parse_duration
from certctl_operator.leadership_runner import EXIT_LOST_LEADERSHIP

CHART = Path(__file__).resolve().parents[2] / render_manifests.CHART
LEASE = "certctl-operator"
LEASE_DURATION = 4.0
RETRY_PERIOD = 0.5
FAST_ELECTION = {
    "CERTCTL_LEADER_ELECTION": "true",
    "CERTCTL_LEADER_ELECTION_LEASE_DURATION": f"{LEASE_DURATION:g}s",
    "CERTCTL_LEADER_ELECTION_RENEW_DEADLINE": "3s",
    "CERTCTL_LEADER_ELECTION_RETRY_PERIOD": f"{RETRY_PERIOD * 1000:g}ms",
}
# Failover after a crash: the standby waits a full lease duration after the last renewal it
# saw (up to a retry period late), then starts the operator (Kopf start-up, the startup handlers).
FAILOVER_MARGIN = 3.0


@pytest.fixture
def receiver() -> Iterator[HTTPReceiver]:
    with HTTPReceiver(default=ScriptedResponse(status=200)) as server:
        yield server


def replica(
    factory: OperatorFactory, namespace: str, name: str, *, leader: bool, **env: str
) -> OperatorProcess:
    """A replica named ``name`` (its identity in the Lease), Ready; waits until it leads, or stands by."""
    settings = {**FAST_ELECTION, "CERTCTL_OPERATOR_NAMESPACE": namespace, "POD_NAME": name, **env}
    process = factory(namespaces=[namespace], env=settings, ready=True)
    if leader:
        wait_until_leader(process, 30)
    else:
        assert leader_metric(process) == 0
    return process


def lease(kube: Any, namespace: str) -> Any:
    return client.CoordinationV1Api(kube).read_namespaced_lease(LEASE, namespace)


def holder(kube: Any, namespace: str) -> str | None:
    found: str | None = lease(kube, namespace).spec.holder_identity
    return found


def leader_metric(process: OperatorProcess) -> float | None:
    """``certctl_leader`` of ``process``: 1 while it runs the operator, 0 while it stands by."""
    return metric(process.metrics(), "certctl_leader")


def wait_until_leader(process: OperatorProcess, timeout: float) -> float:
    """Seconds until ``process`` reports ``certctl_leader 1``; it stays Ready all the while."""
    started = time.monotonic()

    def leading() -> bool:
        assert process.readyz() == (200, "ready"), "a replica was not Ready while it took over"
        return leader_metric(process) == 1

    wait_for("certctl_leader 1", leading, timeout, interval=0.05)
    return time.monotonic() - started


def make_webhook_channel(kube: Any, namespace: str, url: str) -> None:
    spec = {"webhook": {"url": url, "timeout": "5s"}}
    create(
        kube,
        namespace,
        "notificationchannels",
        {"kind": "NotificationChannel", "metadata": {"name": "hook"}, "spec": spec},
    )


def make_event(kube: Any, namespace: str, name: str) -> str:
    body = {
        "kind": "NotificationEvent",
        "metadata": {"name": name},
        "spec": {"type": "Test", "channelRef": {"name": "hook"}, "subject": f"event {name}", "message": name},
    }
    uid: str = create(kube, namespace, "notificationevents", body)["metadata"]["uid"]
    return uid


def wait_sent(kube: Any, namespace: str, names: list[str], timeout: float = 30.0) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        bodies = {name: get(kube, namespace, "notificationevents", name) for name in names}
        done = all((body.get("status") or {}).get("phase") == "Sent" for body in bodies.values())
        return bodies if done else None

    return wait_for(f"{len(names)} events Sent", probe, timeout)


def issued_events(kube: Any, namespace: str) -> Counter[tuple[str, str]]:
    """(certificate, reason) -> how many Kubernetes Events say so."""
    events = client.CoreV1Api(kube).list_namespaced_event(namespace).items
    return Counter(
        (e.involved_object.name, e.reason)
        for e in events
        if e.involved_object.kind == "ManagedCertificate" and e.reason in ("Issued", "Renewed")
    )


def mentions(process: OperatorProcess, names: list[str]) -> set[str]:
    """Which of ``names`` appear in the log of ``process``."""
    text = process.logs()
    return {name for name in names if name in text}


def test_only_the_leader_acts_and_a_crash_hands_over_without_duplicates(
    kube: Any, namespace: str, operator_factory: OperatorFactory, receiver: HTTPReceiver
) -> None:
    first = replica(operator_factory, namespace, "replica-a", leader=True)
    second = replica(operator_factory, namespace, "replica-b", leader=False)
    assert holder(kube, namespace) == "replica-a"
    assert first.readyz() == (200, "ready")
    assert second.readyz() == (200, "ready")
    assert (leader_metric(first), leader_metric(second)) == (1, 0)

    make_ca_secret(kube, namespace, "ha-ca-keypair", "HA CA")
    create(kube, namespace, "issuers", issuer_body("ha-ca", ca_secret="ha-ca-keypair", base_url=None))
    make_webhook_channel(kube, namespace, receiver.url_for("/hook"))

    # While both run, only the leader acts.
    before = [f"before-{index}" for index in range(3)]
    uids = {name: make_event(kube, namespace, name) for name in before}
    for name in before:
        create(kube, namespace, "managedcertificates", certificate_body(f"cert-{name}", "ha-ca"))
    wait_sent(kube, namespace, before)
    for name in before:
        wait_ready(kube, namespace, "managedcertificates", f"cert-{name}")
    acted_on = before + [f"cert-{name}" for name in before]
    assert mentions(first, acted_on) == set(acted_on)
    assert mentions(second, acted_on) == set(), "the standby acted"
    assert second.readyz() == (200, "ready")
    assert leader_metric(second) == 0
    assert "standing by: replica-a holds the Lease" in second.logs()
    renewed = lease(kube, namespace).spec.renew_time
    wait_for("a renewal of the Lease", lambda: lease(kube, namespace).spec.renew_time != renewed, 5)

    # Certificates in the middle of being issued when the leader dies...
    during = [f"during-{index}" for index in range(6)]
    for name in during:
        create(kube, namespace, "managedcertificates", certificate_body(name, "ha-ca"))
    wait_for(
        "the leader to start on them",
        lambda: any(name in first.logs() for name in during),
        10,
        interval=0.01,
    )
    # ...and notifications created just before it dies. Frozen first, the leader has no
    # delivery in flight: a delivery cut short by a crash may be repeated (at least once,
    # with the same Idempotency-Key), which is not the handover's doing. Freezing also
    # stops its renewals: from here on it is as good as dead.
    frozen_at = time.monotonic()
    first.signal(signal.SIGSTOP)
    late = [f"late-{index}" for index in range(5)]
    uids |= {name: make_event(kube, namespace, name) for name in late}
    first.kill()
    killed_at = time.monotonic()

    # The standby takes over within the lease duration (plus its own start-up).
    wait_until_leader(second, LEASE_DURATION + FAILOVER_MARGIN + 5)
    failover = time.monotonic() - frozen_at
    print(
        f"failover: {failover:.2f}s from the leader's last moment "
        f"({time.monotonic() - killed_at:.2f}s from SIGKILL), lease {LEASE_DURATION}s"
    )
    assert failover <= LEASE_DURATION + FAILOVER_MARGIN
    assert failover >= LEASE_DURATION - RETRY_PERIOD - 0.1, "taken over before the Lease expired"
    assert holder(kube, namespace) == "replica-b"
    assert lease(kube, namespace).spec.lease_transitions == 1
    assert "became the leader" in second.logs()

    # Nothing was done twice: one revision and one Issued Event per certificate...
    certificates = [f"cert-{name}" for name in before] + during
    for name in certificates:
        status = wait_ready(kube, namespace, "managedcertificates", name, timeout=30)["status"]
        assert status["revision"] == 1, f"{name} was issued {status['revision']} times"
    wait_for(
        "an Issued Event for every certificate",
        lambda: all(issued_events(kube, namespace)[(name, "Issued")] >= 1 for name in certificates),
        15,
    )
    events = issued_events(kube, namespace)
    assert {key: count for key, count in events.items() if count != 1} == {}, events
    assert {name for name, _ in events} == set(certificates)
    # ...and one delivery per notification, before and after the handover.
    sent = wait_sent(kube, namespace, before + late)
    keys = Counter(request.header("Idempotency-Key") for request in receiver.requests)
    assert keys == Counter(set(uids.values())), keys
    for name in before + late:
        assert sent[name]["status"]["retryCount"] == 0
    # The new leader did the late work; the old one never saw it.
    assert mentions(second, late) == set(late)
    assert mentions(first, late) == set()


def test_sigterm_releases_the_lease_so_the_standby_takes_over_at_once(
    kube: Any, namespace: str, operator_factory: OperatorFactory
) -> None:
    # A long Lease: without the release, the standby would wait 30 s.
    long_lease = {
        "CERTCTL_LEADER_ELECTION_LEASE_DURATION": "30s",
        "CERTCTL_LEADER_ELECTION_RENEW_DEADLINE": "20s",
    }
    first = replica(operator_factory, namespace, "replica-a", leader=True, **long_lease)
    second = replica(operator_factory, namespace, "replica-b", leader=False, **long_lease)
    assert second.readyz() == (200, "ready")

    stopped: list[int | None] = []
    stopping = threading.Thread(target=lambda: stopped.append(first.stop(timeout=30)))
    started = time.monotonic()
    stopping.start()
    handover = wait_until_leader(second, 20)
    stopping.join(30)
    print(f"handover after SIGTERM: {handover:.2f}s (lease 30s)")
    assert stopped == [0]
    assert handover < 5.0, f"the standby waited {handover:.1f}s: the Lease was not released"
    logs = first.logs()
    assert "released Lease" in logs
    # Released only once the operator had stopped, so the two never overlapped.
    assert logs.index("certctl-operator stopped") < logs.index("released Lease")
    assert holder(kube, namespace) == "replica-b"
    assert time.monotonic() - started < 30

    # The new leader works.
    create(kube, namespace, "issuers", issuer_body("selfsigned", ca_secret=None, base_url=None))
    create(kube, namespace, "managedcertificates", certificate_body("after", "selfsigned"))
    assert wait_ready(kube, namespace, "managedcertificates", "after")["status"]["revision"] == 1
    assert mentions(second, ["after"]) == {"after"}


def test_a_leader_that_loses_the_lease_stops_acting_and_exits(
    kube: Any, namespace: str, operator_factory: OperatorFactory
) -> None:
    leader = replica(operator_factory, namespace, "replica-a", leader=True)
    # Someone else takes the Lease (as a standby would after this replica hung past the lease).
    body = lease(kube, namespace)
    body.spec.holder_identity = "replica-z"
    client.CoordinationV1Api(kube).replace_namespaced_lease(LEASE, namespace, body)

    process = leader.process
    assert process is not None
    deadline = time.monotonic() + 10
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # polling interval of a deadline-bounded wait for the exit
    assert process.returncode == EXIT_LOST_LEADERSHIP, leader.log_tail()
    logs = leader.logs()
    assert "lost leadership: replica-z holds Lease" in logs
    assert "certctl-operator stopped" in logs
    # It did not hand back a Lease it no longer held.
    assert holder(kube, namespace) == "replica-z"
    assert "released Lease" not in logs


def test_without_leader_election_the_one_process_reports_that_it_leads(
    kube: Any, namespace: str, operator_factory: OperatorFactory
) -> None:
    operator = operator_factory(namespaces=[namespace], env={"CERTCTL_LEADER_ELECTION": "false"})
    assert operator.readyz() == (200, "ready")
    assert leader_metric(operator) == 1
    # Nor does it answer PKI requests like a standby: an unknown issuer is simply not found.
    assert httpx.get(f"{operator.base_url}/crl/{namespace}/nothing.crl", timeout=5).status_code == 404
    with pytest.raises(client.ApiException) as missing:
        lease(kube, namespace)
    assert missing.value.status == 404


def test_timings_are_validated_before_anything_starts(
    operator_factory: OperatorFactory, namespace: str
) -> None:
    operator = operator_factory(
        namespaces=[namespace],
        env={**FAST_ELECTION, "CERTCTL_LEADER_ELECTION_RENEW_DEADLINE": "10s"},
        start=False,
    )
    with pytest.raises(RuntimeError, match="exited with"):
        operator.start(timeout=30, ready=False)
    assert "shorter than the lease duration" in operator.logs()


# --------------------------------------------------------------------------- the chart with 2 replicas


def chart_objects(helm: Helm, home: Path, namespace: str, *values: str) -> list[dict[str, Any]]:
    """``helm template`` of the chart into ``namespace`` as parsed objects."""
    result = helm.run(
        "template", "certctl-operator", str(CHART), "--namespace", namespace, *values, home=home
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def pod_environment(container: dict[str, Any], namespace: str, pod: str) -> dict[str, str]:
    """The container's environment as the kubelet would give it to Pod ``pod`` (downward API)."""
    downward = {"metadata.namespace": namespace, "metadata.name": pod}
    return {
        item["name"]: downward[item["valueFrom"]["fieldRef"]["fieldPath"]]
        if "valueFrom" in item
        else item["value"]
        for item in container["env"]
    }


def readiness_probe_passes(process: OperatorProcess, probe: dict[str, Any]) -> bool:
    """One run of the container's readinessProbe as the kubelet makes it: HTTP GET, 200-399 passes."""
    path = probe["httpGet"]["path"]
    try:
        response = httpx.get(f"{process.base_url}{path}", timeout=float(probe.get("timeoutSeconds", 1)))
    except httpx.HTTPError:
        return False
    return 200 <= response.status_code < 400


def test_two_replicas_of_the_chart_are_ready_so_the_rollout_completes_and_failover_stays_in_time(
    kube: Any,
    namespace: str,
    operator_factory: OperatorFactory,
    helm: Helm,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    """The Deployment of ``--set replicaCount=2``, with its Pods played by two real operator processes.

    There is no kubelet and no Deployment controller in the test control plane,
    so nothing would ever write the Deployment's status. What they would do is
    done here from real observations only: the kubelet's part is the Pod's own
    readinessProbe, run against each process; the Deployment controller's part
    is counting the Pods whose probe passes into the status fields
    ``kubectl rollout status`` reads. kubectl then decides, with its own rules.
    """
    objects = chart_objects(helm, tmp_path / "helm-home", namespace, "--set", "replicaCount=2")
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    probe = container["readinessProbe"]
    assert probe["httpGet"] == {"path": "/readyz", "port": "http"}
    name = deployment["metadata"]["name"]
    replicas = [
        operator_factory(namespaces=[namespace], env=pod_environment(container, namespace, f"{name}-{index}"))
        for index in range(deployment["spec"]["replicas"])
    ]
    assert len(replicas) == 2
    lease_name = pod_environment(container, namespace, "-")["CERTCTL_LEADER_ELECTION_LEASE_NAME"]
    lease_seconds = parse_duration(
        pod_environment(container, namespace, "-")["CERTCTL_LEADER_ELECTION_LEASE_DURATION"]
    )

    def leases() -> Any:
        return client.CoordinationV1Api(kube).read_namespaced_lease(lease_name, namespace)

    # Exactly one leads, by its metric and by the Lease; both are alive and Ready.
    leader = wait_for("one leader", lambda: next((r for r in replicas if leader_metric(r) == 1), None), 30)
    (standby,) = [r for r in replicas if r is not leader]
    assert leader_metric(standby) == 0
    assert leases().spec.holder_identity == leader.env["POD_NAME"]
    for process in replicas:
        assert process.readyz() == (200, "ready")
        assert httpx.get(f"{process.base_url}/healthz", timeout=5).status_code == 200

    # The standby is in the Service now. CRLs are durable (the leader publishes each to a
    # ConfigMap before serving it): the standby serves the same CRL, verified by openssl, and
    # follows a new one. OCSP needs the leader's index of issued serials: it answers tryLater.
    ca_pem = make_ca_secret(kube, namespace, "ha-ca-keypair", "HA CA")
    create(kube, namespace, "issuers", issuer_body("ha-ca", ca_secret="ha-ca-keypair", base_url=None))
    create(kube, namespace, "managedcertificates", certificate_body("web", "ha-ca"))
    web = wait_issued(kube, namespace, "web")
    first = wait_crl(leader.base_url, namespace, "ha-ca", lambda _: True)
    wait_crl(standby.base_url, namespace, "ha-ca", lambda der: der == first)
    from_leader = fetch_crl(leader.base_url, namespace, "ha-ca")
    from_standby = fetch_crl(standby.base_url, namespace, "ha-ca")
    for header in ("ETag", "Last-Modified", "Expires", "Content-Type"):
        assert from_standby.headers[header] == from_leader.headers[header], header
    (tmp_path / "ca.pem").write_text(ca_pem)
    (tmp_path / "standby.crl").write_bytes(from_standby.content)
    checked = openssl(
        "crl", "-inform", "DER", "-in", tmp_path / "standby.crl", "-CAfile", tmp_path / "ca.pem", "-noout"
    )
    assert checked.returncode == 0 and "verify OK" in checked.stderr + checked.stdout, checked.stderr
    create(kube, namespace, "revocations", revocation_body("web-gone", "web", "keyCompromise", reissue=False))
    revoked = wait_crl(
        standby.base_url, namespace, "ha-ca", lambda der: web.certificate.serial_number in crl_reasons(der)
    )
    assert crl_number(revoked) > crl_number(first)
    assert crl_reasons(revoked)[web.certificate.serial_number] == "keyCompromise"
    answer = ask_ocsp(f"{standby.base_url}/ocsp/{namespace}/ha-ca", web.certificate, web.ca)
    assert answer.response_status is ocsp.OCSPResponseStatus.TRY_LATER
    assert ask_ocsp(
        f"{leader.base_url}/ocsp/{namespace}/ha-ca", web.certificate, web.ca
    ).certificate_status is (ocsp.OCSPCertStatus.REVOKED)

    # The Deployment as the API server stores it, its status counted from the probes.
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(deployment))
    stored = client.AppsV1Api(kube).read_namespaced_deployment(name, namespace)
    ready = sum(readiness_probe_passes(process, probe) for process in replicas)
    status = {
        "observedGeneration": stored.metadata.generation,
        "replicas": len(replicas),
        "updatedReplicas": len(replicas),
        "readyReplicas": ready,
        "availableReplicas": ready,  # minReadySeconds is 0
    }
    # kubectl's own rule, shown to tell the two apart: with the standby not Ready it keeps waiting.
    not_ready = {**status, "readyReplicas": ready - 1, "availableReplicas": ready - 1}
    client.AppsV1Api(kube).patch_namespaced_deployment_status(name, namespace, {"status": not_ready})
    waiting = kubectl("rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=2s", check=False)
    assert waiting.returncode != 0 and "1 of 2 updated replicas are available" in waiting.stdout
    client.AppsV1Api(kube).patch_namespaced_deployment_status(name, namespace, {"status": status})
    rollout = kubectl(
        "rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=10s", check=False
    )
    assert rollout.returncode == 0, rollout.stderr + rollout.stdout
    assert "successfully rolled out" in rollout.stdout

    # A node lost under the leader: the standby takes over within the documented time for the
    # chart's timings (leaseDuration, give or take one retryPeriod, plus the operator's start),
    # and stays Ready all the while.
    leader.kill()
    killed_at = time.monotonic()
    wait_until_leader(standby, lease_seconds.total_seconds() + FAILOVER_MARGIN + 10)
    failover = time.monotonic() - killed_at
    print(f"failover with the chart's timings (lease {lease_seconds}): {failover:.2f}s")
    assert failover <= lease_seconds.total_seconds() + 2 + FAILOVER_MARGIN
    assert leases().spec.holder_identity == standby.env["POD_NAME"]
