"""The operator as users run it: the image built, loaded into kind, installed with the chart.

Then one issuance, one revocation and one notification, through the same
flows the integration tests run against the local control plane
(:mod:`tests.support.flows`). The test reaches the operator's Service and an
in-cluster webhook receiver through ``kubectl port-forward`` on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client, config
from tests.support.flows import Flows

from certctl_operator.dev.helm import ensure_helm

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "certctl-operator"
IMAGE_REPOSITORY, IMAGE_TAG = "certctl-operator", "e2e"
RELEASE, SYSTEM, APPS = "certctl-operator", "certctl-system", "e2e-apps"
SERVICE_URL = f"http://{RELEASE}.{SYSTEM}.svc:8080"

# A webhook receiver inside the cluster (the operator's image has Python): it records
# every POST and lists them, base64-encoded, on GET /received.
RECEIVER_SCRIPT = """
import base64, json
from http.server import BaseHTTPRequestHandler, HTTPServer
received = []
class Handler(BaseHTTPRequestHandler):
    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        received.append(base64.b64encode(self.rfile.read(length)).decode())
        self.answer(b"ok")
    def do_GET(self):
        self.answer(json.dumps(received).encode())
HTTPServer(("", 8080), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def kind(request: pytest.FixtureRequest) -> Any:
    """pytest-kind's cluster (created once per test run, deleted afterwards unless --keep-cluster)."""
    return request.getfixturevalue("kind_cluster")


@pytest.fixture(scope="module")
def installed(kind: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The image built and loaded into kind, the chart installed with it; returns an admin ApiClient."""
    image = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
    subprocess.run(["docker", "build", "--tag", image, str(ROOT)], check=True, timeout=1800)
    kind.load_docker_image(image)
    helm = ensure_helm(lambda line: print(f"[helm] {line}"))
    helm.run(
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--namespace",
        SYSTEM,
        "--create-namespace",
        "--set",
        f"image.repository={IMAGE_REPOSITORY}",
        "--set",
        f"image.tag={IMAGE_TAG}",
        "--set",
        "image.pullPolicy=Never",
        "--set",
        f"config.publicBaseURL={SERVICE_URL}",
        "--set",
        "config.notifications.retryBase=1s",
        # The receiver is a Service: its ClusterIP (kind's 10.96.0.0/16) is private.
        "--set",
        "config.notifications.egressAllowedCIDRs={10.96.0.0/12}",
        "--wait",
        "--timeout",
        "5m",
        home=tmp_path_factory.mktemp("helm-home"),
        kubeconfig=Path(kind.kubeconfig_path),
        timeout=400,
    )
    kind.kubectl("rollout", "status", f"deployment/{RELEASE}", "-n", SYSTEM, "--timeout=120s")
    kind.kubectl("create", "namespace", APPS)
    return config.new_client_from_config(config_file=str(kind.kubeconfig_path))


@contextlib.contextmanager
def forwarded(kind: Any, target: str, namespace: str) -> Iterator[str]:
    """``kubectl port-forward`` to port 8080 of ``target``: yields http://127.0.0.1:<port>."""
    with kind.port_forward(target, 8080, "-n", namespace) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def operator_url(kind: Any, installed: Any) -> Iterator[str]:
    with forwarded(kind, f"service/{RELEASE}", SYSTEM) as url:
        yield url


@pytest.fixture(scope="module")
def receiver(kind: Any, installed: Any) -> Iterator[str]:
    """The in-cluster receiver; yields its URL as seen from this test."""
    manifest = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "receiver", "namespace": APPS, "labels": {"app": "receiver"}},
            "spec": {
                "containers": [
                    {
                        "name": "receiver",
                        "image": f"{IMAGE_REPOSITORY}:{IMAGE_TAG}",
                        "imagePullPolicy": "Never",
                        "command": ["python", "-c", RECEIVER_SCRIPT],
                        "ports": [{"containerPort": 8080}],
                    }
                ]
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "receiver", "namespace": APPS},
            "spec": {"selector": {"app": "receiver"}, "ports": [{"port": 8080, "targetPort": 8080}]},
        },
    ]
    kind.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(doc) for doc in manifest))
    kind.kubectl("wait", "-n", APPS, "pod/receiver", "--for=condition=Ready", "--timeout=120s")
    with forwarded(kind, "service/receiver", APPS) as url:
        yield url


def flows(installed: Any, operator_url: str) -> Flows:
    return Flows(installed, APPS, operator_url, public_base_url=SERVICE_URL, timeout=120)


def test_issuance(installed: Any, operator_url: str) -> None:
    status = flows(installed, operator_url).issuance()
    assert status["revision"] == 1


def test_revocation(installed: Any, operator_url: str) -> None:
    serial = flows(installed, operator_url).revocation()
    assert serial


def test_notification(installed: Any, operator_url: str, receiver: str) -> None:
    def received() -> list[bytes]:
        listed = json.loads(httpx.get(f"{receiver}/received", timeout=5.0).text)
        return [base64.b64decode(item) for item in listed]

    sent = flows(installed, operator_url).notification(f"http://receiver.{APPS}.svc:8080/hook", received)
    assert sent["status"]["phase"] == "Sent"


def test_only_one_replica_leads(installed: Any) -> None:
    """The chart's leader election in a real cluster: the Pod named in the Lease is the Ready one."""
    lease = client.CoordinationV1Api(installed).read_namespaced_lease(RELEASE, SYSTEM)
    pods = client.CoreV1Api(installed).list_namespaced_pod(
        SYSTEM, label_selector=f"app.kubernetes.io/instance={RELEASE}"
    )
    ready = [
        pod.metadata.name
        for pod in pods.items
        if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    ]
    assert ready == [lease.spec.holder_identity]
