"""``certctl-operator run`` as a real process against the real API server."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable

import httpx
from tests.integration.conftest import Kubectl

from certctl_operator.dev.operator_process import OperatorFactory


def test_serves_health_readiness_and_metrics(operator_factory: OperatorFactory, namespace: str) -> None:
    operator = operator_factory(namespaces=[namespace])

    assert httpx.get(f"{operator.base_url}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{operator.base_url}/readyz", timeout=5).text == "ready\n"
    metrics = operator.metrics()
    assert "# TYPE certctl_notification_dead_total gauge" in metrics
    assert "# TYPE certctl_issuance_total counter" in metrics


def test_logs_are_json_lines_when_asked(operator_factory: OperatorFactory, namespace: str) -> None:
    operator = operator_factory(namespaces=[namespace])
    operator.stop()

    records = [json.loads(line) for line in operator.logs().splitlines() if line.startswith("{")]
    messages = [record["message"] for record in records]
    assert "certctl-operator started" in messages
    assert all({"message", "severity", "timestamp"} <= record.keys() for record in records)


def test_sigterm_shuts_down_cleanly(
    operator_factory: OperatorFactory, namespace: str, kubectl: Kubectl
) -> None:
    # A CA issuer keeps a CRL-publishing daemon running, waiting between
    # checks: the shutdown must stop it without an error exit.
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "certctl.io/v1alpha1",
                "kind": "Issuer",
                "metadata": {"name": "ca"},
                "spec": {"ca": {"secretName": "missing-ca"}},
            }
        ),
    )
    operator = operator_factory(namespaces=[namespace])
    assert operator.process is not None
    wait_until(
        lambda: (
            "SecretNotFound" in kubectl("get", "issuer.certctl.io/ca", "-n", namespace, "-o", "json").stdout
        ),
        timeout=60,
    )

    operator.process.send_signal(signal.SIGTERM)
    exit_code = operator.process.wait(timeout=30)

    assert exit_code == 0, operator.log_tail(60)
    assert "certctl-operator stopped" in operator.logs()


def wait_until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)  # polling interval of a deadline-bounded wait
