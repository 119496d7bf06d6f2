"""Two operator replicas with leader election against one API server: one acts, the other stands by.

Both run as real ``certctl-operator run`` processes sharing a Lease in the
test namespace, with short timings (Lease 4 s, renew deadline 3 s, a look
every 0.5 s) so a handover takes seconds. The webhook receiver is a real
HTTP server on 127.0.0.1 that records every request with its
Idempotency-Key.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from tests.support.pki_cluster import (
    certificate_body,
    create,
    get,
    issuer_body,
    make_ca_secret,
    wait_for,
    wait_ready,
)
from tests.support.receivers import HTTPReceiver, ScriptedResponse

from certctl_operator.dev.operator_process import OperatorFactory, OperatorProcess
from certctl_operator.leadership_runner import EXIT_LOST_LEADERSHIP

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
    """A replica named ``name`` (its identity in the Lease); waits until it leads, or stands by."""
    settings = {**FAST_ELECTION, "CERTCTL_OPERATOR_NAMESPACE": namespace, "POD_NAME": name, **env}
    return factory(namespaces=[namespace], env=settings, ready=leader)


def lease(kube: Any, namespace: str) -> Any:
    return client.CoordinationV1Api(kube).read_namespaced_lease(LEASE, namespace)


def holder(kube: Any, namespace: str) -> str | None:
    found: str | None = lease(kube, namespace).spec.holder_identity
    return found


def wait_until_ready(process: OperatorProcess, timeout: float) -> float:
    """Seconds until ``/readyz`` of ``process`` answers 200 (polled every 50 ms)."""
    started = time.monotonic()
    process.wait_ready(timeout, interval=0.05)
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
    assert second.readyz() == (503, "standby")

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
    assert second.readyz() == (503, "standby")
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
    wait_until_ready(second, LEASE_DURATION + FAILOVER_MARGIN + 5)
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
    assert second.readyz() == (503, "standby")

    stopped: list[int | None] = []
    stopping = threading.Thread(target=lambda: stopped.append(first.stop(timeout=30)))
    started = time.monotonic()
    stopping.start()
    handover = wait_until_ready(second, 20)
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
