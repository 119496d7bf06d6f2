"""SIGTERM while deliveries hang at the receiver and certificates are being issued.

The operator must exit by itself, with status 0, well within a Pod's grace
period, leaving nothing half-written: every NotificationEvent is Sent (the
delivery finished and was recorded) or still Pending/Failed with a
consistent schedule, every certificate either has no certificate yet or a
Secret that matches its status. A restarted operator finishes the work
without issuing any revision twice; a delivery cut off by the shutdown is
sent again under the same idempotency key (the receiver deduplicates on it).
"""

from __future__ import annotations

import base64
import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from tests.support.pki_cluster import certificate_body, create, get, issuer_body, wait_for
from tests.support.receivers import HTTPReceiver, ScriptedResponse

from certctl_operator.dev.operator_process import OperatorFactory

GRACE = 30.0
"""Kubernetes' default terminationGracePeriodSeconds (the chart gives 60 s): gone by then."""
DELIVERIES = 4
CERTIFICATES = 20


@pytest.fixture
def hanging_receiver() -> Iterator[HTTPReceiver]:
    # Every request is held unanswered until the test releases the receiver.
    with HTTPReceiver(default=ScriptedResponse(status=200, hold=True)) as receiver:
        yield receiver


def secret_serial(kube: Any, namespace: str, name: str) -> str | None:
    try:
        secret = client.CoreV1Api(kube).read_namespaced_secret(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return (secret.metadata.annotations or {}).get("certctl.io/serial-number")


def test_sigterm_during_deliveries_and_issuances_exits_cleanly_and_a_restart_finishes_the_work(
    operator_factory: OperatorFactory, kube: Any, namespace: str, hanging_receiver: HTTPReceiver
) -> None:
    operator = operator_factory(namespaces=[namespace])
    create(kube, namespace, "issuers", issuer_body("selfsigned", ca_secret=None, base_url=None))
    client.CoreV1Api(kube).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="hook-signing"),
            data={"key": base64.b64encode(b"shutdown-signing-key").decode()},
        ),
    )
    # The channel's own timeout is longer than the grace period: shutdown must not wait for it.
    spec = {
        "webhook": {
            "url": hanging_receiver.url,
            "timeout": "60s",
            "signingSecretRef": {"name": "hook-signing", "key": "key"},
        }
    }
    create(
        kube,
        namespace,
        "notificationchannels",
        {"kind": "NotificationChannel", "metadata": {"name": "hook"}, "spec": spec},
    )
    events = [f"held-{index}" for index in range(DELIVERIES)]
    for name in events:
        body = {
            "kind": "NotificationEvent",
            "metadata": {"name": name},
            "spec": {"type": "Test", "channelRef": {"name": "hook"}, "subject": name, "message": name},
        }
        create(kube, namespace, "notificationevents", body)
    hanging_receiver.wait_until_held(DELIVERIES, seconds=60)
    certificates = [f"inflight-{index:02d}" for index in range(CERTIFICATES)]
    for name in certificates:
        create(kube, namespace, "managedcertificates", certificate_body(name, "selfsigned"))

    # SIGTERM while the deliveries hang and the burst of issuances runs.
    def issued_so_far() -> int:
        return sum(
            1
            for name in certificates
            if (get(kube, namespace, "managedcertificates", name).get("status") or {}).get("serialNumber")
        )

    wait_for("the first issuances", lambda: issued_so_far() >= 1, 60, interval=0.05)
    at_signal = issued_so_far()
    started = time.monotonic()
    status = operator.stop(timeout=GRACE + 30)
    took = time.monotonic() - started
    print(
        f"SIGTERM with {DELIVERIES} deliveries held and {CERTIFICATES - at_signal} issuances pending: "
        f"exit status {status} after {took:.1f}s"
    )
    assert status == 0, f"exit status {status}:\n{operator.log_tail(60)}"
    assert took < GRACE, f"took {took:.1f}s to stop"
    # Every task ended before the clients it uses were closed: none was left running behind the
    # shutdown, none failed on a closed client.
    records = [json.loads(line) for line in operator.logs().splitlines() if line.startswith("{")]
    signalled = next(i for i, r in enumerate(records) if "SIGTERM" in r["message"])
    unclean = [
        r["message"]
        for r in records[signalled:]
        if "did not exit in time" in r["message"] or r.get("severity") in ("error", "critical")
    ]
    assert not unclean, unclean

    # Nothing half-written: consistent notification statuses, Secrets matching statuses.
    for name in events:
        event_status = get(kube, namespace, "notificationevents", name).get("status") or {}
        phase = event_status.get("phase")
        assert phase in (None, "Pending", "Failed", "Sent"), (name, event_status)
        if phase == "Failed":
            assert event_status.get("nextRetryAt"), (name, event_status)
    secrets_ahead = 0
    for name in certificates:
        cert_status = get(kube, namespace, "managedcertificates", name).get("status") or {}
        serial = secret_serial(kube, namespace, f"{name}-tls")
        if cert_status.get("serialNumber"):
            assert serial == cert_status["serialNumber"], (name, serial, cert_status)
            assert cert_status.get("revision") == 1, (name, cert_status)
        elif serial is not None:
            secrets_ahead += 1  # written just before the stop: the next start adopts it
    print(f"after the stop: {issued_so_far()} certificates recorded, {secrets_ahead} Secrets ahead of status")

    # A restart finishes everything; the receiver answers at last.
    hanging_receiver.release()
    operator.start()
    wait_for(
        "every event Sent",
        lambda: all(
            (get(kube, namespace, "notificationevents", n).get("status") or {}).get("phase") == "Sent"
            for n in events
        ),
        90,
    )

    def all_issued() -> bool:
        for name in certificates:
            cert_status = get(kube, namespace, "managedcertificates", name).get("status") or {}
            if not cert_status.get("serialNumber"):
                return False
        return True

    wait_for("every certificate issued", all_issued, 90)
    for name in certificates:
        cert_status = get(kube, namespace, "managedcertificates", name)["status"]
        assert cert_status["revision"] == 1, (name, cert_status)
        assert secret_serial(kube, namespace, f"{name}-tls") == cert_status["serialNumber"], name
    keys = Counter(request.header("Idempotency-Key") for request in hanging_receiver.requests)
    # One request per event before the stop, at most one more after it, always under the same key.
    assert len(keys) == DELIVERIES and None not in keys, keys
    assert all(count <= 2 for count in keys.values()), keys


def test_a_delivery_answered_during_shutdown_is_recorded_sent_before_the_exit(
    operator_factory: OperatorFactory, kube: Any, namespace: str, hanging_receiver: HTTPReceiver
) -> None:
    operator = operator_factory(namespaces=[namespace])
    client.CoreV1Api(kube).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="hook-signing"),
            data={"key": base64.b64encode(b"shutdown-signing-key").decode()},
        ),
    )
    spec = {
        "webhook": {
            "url": hanging_receiver.url,
            "timeout": "60s",
            "signingSecretRef": {"name": "hook-signing", "key": "key"},
        }
    }
    create(
        kube,
        namespace,
        "notificationchannels",
        {"kind": "NotificationChannel", "metadata": {"name": "hook"}, "spec": spec},
    )
    events = [f"answered-{index}" for index in range(DELIVERIES)]
    for name in events:
        body = {
            "kind": "NotificationEvent",
            "metadata": {"name": name},
            "spec": {"type": "Test", "channelRef": {"name": "hook"}, "subject": name, "message": name},
        }
        create(kube, namespace, "notificationevents", body)
    hanging_receiver.wait_until_held(DELIVERIES, seconds=60)

    started = time.monotonic()
    operator.signal(signal.SIGTERM)
    wait_for("the operator to begin stopping", lambda: "Signal SIGTERM is received" in operator.logs(), 10)
    # The receiver answers while the operator is stopping: inside the delivery grace.
    hanging_receiver.release()
    assert operator.process is not None
    status = operator.process.wait(GRACE)
    took = time.monotonic() - started
    print(f"deliveries answered during shutdown: exit status {status} after {took:.1f}s")
    assert status == 0, operator.log_tail(60)
    for name in events:
        event_status = get(kube, namespace, "notificationevents", name)["status"]
        assert event_status["phase"] == "Sent", (name, event_status)
    assert len(hanging_receiver.requests) == DELIVERIES
