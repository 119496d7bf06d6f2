"""HTTP-01 answered by solver Pods, against a real Pebble on loopback.

The test control plane has no nodes, so the test plays the kubelet's part:
it waits for the Pod the operator created, checks what the Pod would run,
runs exactly that container command on this machine (adding only the
listen address and the port Pebble validates HTTP-01 on, through which
challtestsrv resolves every name to 127.0.0.1), probes it as the Pod's
readiness probe says, reports the Pod Ready through its status, and stops
the process once the Pod is deleted, as a kubelet would.

The last test runs the operator on the chart's own ServiceAccount token and
RBAC: the flow works with exactly that, and fails without the pods rule or
without the services rule.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from josepy.json_util import encode_b64jose
from josepy.jwk import JWKEC
from kubernetes import client
from tests.integration.conftest import Kubectl
from tests.support.pebble import Pebble, running_pebble
from tests.support.pki_cluster import (
    certificate_body,
    condition,
    create,
    get,
    wait_for,
    wait_issued,
    wait_ready,
)

from certctl_operator.dev.controlplane import ControlPlane
from certctl_operator.dev.helm import Helm
from certctl_operator.dev.operator_process import OperatorFactory, OperatorProcess, free_port
from certctl_operator.dev.processes import spawn, terminate

PEBBLE_LIFETIME = "2160h"
SOLVER_IMAGE = "registry.example.test/certctl-operator:solver"
# Operator-wide defaults the issuer below does not override.
SOLVER_RESOURCES = {"requests": {"cpu": "5m", "memory": "48Mi"}, "limits": {"memory": "96Mi"}}
NODE_SELECTOR = {"kubernetes.io/os": "linux"}
TOLERATIONS = [{"key": "acme-solvers", "operator": "Exists", "effect": "NoSchedule"}]
APP_SELECTOR = "app.kubernetes.io/name=certctl-acme-http01-solver"
CERTIFICATE_LABEL = "certctl.io/managed-by-certificate"
SOLVER_LABEL = "certctl.io/acme-http01-solver"
CHART = Path(__file__).resolve().parents[2] / "helm" / "certctl-operator"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding")
PERMISSION_ERROR = re.compile(r"\b403\b|[Ff]orbidden")


@dataclass
class PodWorld:
    pebble: Pebble
    operator: OperatorProcess
    namespace: str
    solver_port: int
    """Where Pebble sends HTTP-01 validations, and so where the solver runs here."""
    workdir: Path


SOLVER_SETTINGS = {
    "CERTCTL_ACME_SOLVER_IMAGE": SOLVER_IMAGE,
    "CERTCTL_ACME_SOLVER_RESOURCES": json.dumps(SOLVER_RESOURCES),
}


@pytest.fixture
def pod_world(operator_factory: OperatorFactory, namespace: str, tmp_path: Path) -> Iterator[PodWorld]:
    solver_port = free_port()
    operator = operator_factory(namespaces=[namespace], start=False, env=SOLVER_SETTINGS)
    with running_pebble(tmp_path / "pebble", http_port=solver_port) as pebble:
        operator.start()
        yield PodWorld(pebble, operator, namespace, solver_port, tmp_path)
        print(f"--- pebble log\n{pebble.log_text()[-6000:]}")


def pod_issuer(world: PodWorld) -> dict[str, Any]:
    pod = {"nodeSelector": NODE_SELECTOR, "tolerations": TOLERATIONS}
    return {
        "kind": "Issuer",
        "metadata": {"name": "pebble-pods"},
        "spec": {
            "acme": {
                "server": world.pebble.directory_url,
                "caBundle": world.pebble.ca_bundle,
                "privateKeySecretRef": {"name": "pebble-pods-account"},
                "solvers": [{"http01": {"pod": pod}}],
            }
        },
    }


def solver_objects(kube: Any, namespace: str, certificate: str) -> tuple[list[Any], list[Any]]:
    core = client.CoreV1Api(kube)
    selector = f"{APP_SELECTOR},{CERTIFICATE_LABEL}={certificate}"
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    services = core.list_namespaced_service(namespace, label_selector=selector).items
    return pods, services


def wait_solver_pod(kube: Any, namespace: str, certificate: str) -> tuple[Any, Any]:
    def created() -> tuple[Any, Any] | None:
        pods, services = solver_objects(kube, namespace, certificate)
        return (pods[0], services[0]) if pods and services else None

    pod, service = wait_for("the solver Pod and its Service", created, timeout=60)
    pods, services = solver_objects(kube, namespace, certificate)
    assert len(pods) == 1 and len(services) == 1, (pods, services)
    return pod, service


def account_thumbprint(kube: Any, namespace: str, secret: str) -> str:
    data = client.CoreV1Api(kube).read_namespaced_secret(secret, namespace).data
    key = serialization.load_pem_private_key(base64.b64decode(data["tls.key"]), password=None)
    return encode_b64jose(JWKEC(key=key).thumbprint())


def option_value(args: list[str], option: str) -> str:
    """The value of ``--option=value`` in a container's arguments."""
    (value,) = [arg.removeprefix(f"{option}=") for arg in args if arg.startswith(f"{option}=")]
    return value


def check_solver_spec(
    kube: Any, world: PodWorld, pod: Any, service: Any, certificate: str
) -> tuple[str, str]:
    """The Pod and Service as the operator should have written them; returns (token, key authorization)."""
    ns = world.namespace
    body = get(kube, ns, "managedcertificates", certificate)
    owner = {
        "apiVersion": "certctl.io/v1alpha1",
        "kind": "ManagedCertificate",
        "name": certificate,
        "uid": body["metadata"]["uid"],
        "controller": True,
    }
    api = client.ApiClient()
    pod_json = api.sanitize_for_serialization(pod)
    service_json = api.sanitize_for_serialization(service)

    (container,) = pod.spec.containers
    assert container.image == SOLVER_IMAGE  # the operator's setting: the issuer names no image
    assert container.command == ["certctl-operator"]
    args = container.args
    assert args[:2] == ["acme-solver", "--port=8089"], args
    token = option_value(args, "--token")
    key_authorization = option_value(args, "--key-authorization")
    # The key authorization is the token and the account key's thumbprint, nothing more of the key.
    thumbprint = account_thumbprint(kube, ns, "pebble-pods-account")
    assert key_authorization == f"{token}.{thumbprint}"
    account_key = client.CoreV1Api(kube).read_namespaced_secret("pebble-pods-account", ns).data["tls.key"]
    assert account_key not in json.dumps(pod_json)
    assert "PRIVATE KEY" not in json.dumps(pod_json)
    assert not container.env and not container.env_from
    assert pod.spec.automount_service_account_token is False

    assert pod_json["spec"]["containers"][0]["resources"] == SOLVER_RESOURCES
    assert pod.spec.node_selector == NODE_SELECTOR
    # The API server adds its default not-ready/unreachable tolerations to every Pod.
    assert all(toleration in pod_json["spec"]["tolerations"] for toleration in TOLERATIONS)
    assert pod_json["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod_json["spec"]["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    assert pod_json["spec"]["containers"][0]["ports"] == [
        {"name": "http", "containerPort": 8089, "protocol": "TCP"}
    ]
    probe = pod_json["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    assert probe["path"] == f"/.well-known/acme-challenge/{token}" and probe["port"] == "http"

    for obj in (pod_json, service_json):
        assert obj["metadata"]["labels"][CERTIFICATE_LABEL] == certificate
        assert obj["metadata"]["ownerReferences"] == [owner]
        assert obj["metadata"]["annotations"]["certctl.io/acme-identifier"] == "site.acme.test"
    assert service.metadata.name.startswith("acme-site-acme-test-")
    assert service.spec.type == "ClusterIP"
    assert service.spec.selector == {SOLVER_LABEL: service.metadata.name}
    assert pod.metadata.labels[SOLVER_LABEL] == service.metadata.name
    (port,) = service_json["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["protocol"]) == (80, "http", "TCP")

    # The order waits for the Pod: the CA has not been told to look yet.
    (authorization,) = body["status"]["acmeOrder"]["authorizations"]
    assert authorization["challengeType"] == "http-01" and authorization["token"] == token
    assert authorization["state"] == "pending"
    return token, key_authorization


def solver_executable() -> str:
    """``certctl-operator`` as installed next to this interpreter (the image has it on PATH)."""
    beside = Path(sys.executable).parent / "certctl-operator"
    found = str(beside) if beside.exists() else shutil.which("certctl-operator")
    assert found, "certctl-operator is not installed"
    return found


class Kubelet:
    """What a kubelet does for one solver Pod, with the container run as a local process."""

    def __init__(self, kube: Any, world: PodWorld, pod: Any) -> None:
        self.kube, self.world, self.pod = kube, world, pod
        self.log_path = world.workdir / f"{pod.metadata.name}.log"
        self.process: subprocess.Popen[Any] | None = None

    def start(self) -> None:
        (container,) = self.pod.spec.containers
        assert container.command == ["certctl-operator"]
        listen = ["--address", "127.0.0.1", "--port", str(self.world.solver_port)]
        with self.log_path.open("w") as log:
            self.process = spawn(
                [solver_executable(), *container.args, *listen], stdout=log, stderr=subprocess.STDOUT
            )

    def wait_probe_passes(self, key_authorization: str) -> None:
        (container,) = self.pod.spec.containers
        url = f"http://127.0.0.1:{self.world.solver_port}{container.readiness_probe.http_get.path}"

        def answered() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log()
            try:
                response = httpx.get(url, timeout=2.0)
            except httpx.TransportError:
                return False
            return response.status_code == 200 and response.text == key_authorization

        wait_for("the solver's readiness probe", answered, timeout=30)

    def report_ready(self) -> None:
        status = {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
            ],
        }
        # The uid makes the patch fail if the Pod was replaced since it was started here.
        client.CoreV1Api(self.kube).patch_namespaced_pod_status(
            self.pod.metadata.name,
            self.world.namespace,
            {"metadata": {"uid": self.pod.metadata.uid}, "status": status},
        )

    def stop(self) -> int | None:
        """SIGTERM, as the kubelet sends when the Pod is deleted; the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                terminate(self.process, 5.0)
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_solver_objects_gone(kube: Any, namespace: str, certificate: str) -> None:
    def gone() -> bool:
        pods, services = solver_objects(kube, namespace, certificate)
        return not pods and not services

    wait_for("the solver Pod and Service to be deleted", gone, timeout=30)


def test_solver_pod_answers_and_is_deleted_once_valid(kube: Any, pod_world: PodWorld) -> None:
    ns = pod_world.namespace
    create(kube, ns, "issuers", pod_issuer(pod_world))
    wait_ready(kube, ns, "issuers", "pebble-pods", timeout=60)
    create(
        kube,
        ns,
        "managedcertificates",
        certificate_body("site", "pebble-pods", dnsNames=["site.acme.test"], duration=PEBBLE_LIFETIME),
    )
    pod, service = wait_solver_pod(kube, ns, "site")
    token, key_authorization = check_solver_spec(kube, pod_world, pod, service, "site")

    kubelet = Kubelet(kube, pod_world, pod)
    try:
        kubelet.start()
        kubelet.wait_probe_passes(key_authorization)
        kubelet.report_ready()
        issued = wait_issued(kube, ns, "site", timeout=120)
        wait_solver_objects_gone(kube, ns, "site")
    finally:
        exit_status = kubelet.stop()
    assert exit_status == 0, kubelet.log()
    # Pebble's validation reached the solver and got the answer.
    assert f'"GET /.well-known/acme-challenge/{token} HTTP/1.1" 200' in kubelet.log()
    assert pod_world.pebble.cert_status(issued.serial)["Status"] == "Valid"
    order = get(kube, ns, "managedcertificates", "site")["status"]["acmeOrder"]
    assert order["state"] == "valid"
    assert [a["state"] for a in order["authorizations"]] == ["valid"]


def test_restarted_operator_resumes_with_the_same_solver_pod(kube: Any, pod_world: PodWorld) -> None:
    ns = pod_world.namespace
    create(kube, ns, "issuers", pod_issuer(pod_world))
    wait_ready(kube, ns, "issuers", "pebble-pods", timeout=60)
    create(
        kube,
        ns,
        "managedcertificates",
        certificate_body("site", "pebble-pods", dnsNames=["site.acme.test"], duration=PEBBLE_LIFETIME),
    )
    pod, service = wait_solver_pod(kube, ns, "site")
    _, key_authorization = check_solver_spec(kube, pod_world, pod, service, "site")
    order_url = get(kube, ns, "managedcertificates", "site")["status"]["acmeOrder"]["url"]

    pod_world.operator.kill()
    pod_world.operator.start()

    def republished() -> bool:
        second_run = pod_world.operator.logs().partition("--- start #2")[2]
        return "HTTP-01 solver Pod" in second_run

    wait_for("the restarted operator to publish the answer again", republished, timeout=60)
    kubelet = Kubelet(kube, pod_world, pod)
    try:
        kubelet.start()
        kubelet.wait_probe_passes(key_authorization)
        # The restarted operator took the Pod it found (same object) for the same order.
        pods, services = solver_objects(kube, ns, "site")
        assert [p.metadata.uid for p in pods] == [pod.metadata.uid]
        assert [s.metadata.uid for s in services] == [service.metadata.uid]
        kubelet.report_ready()
        wait_issued(kube, ns, "site", timeout=120)
        wait_solver_objects_gone(kube, ns, "site")
    finally:
        exit_status = kubelet.stop()
    assert exit_status == 0, kubelet.log()
    assert get(kube, ns, "managedcertificates", "site")["status"]["acmeOrder"]["url"] == order_url


def chart_rbac(helm: Helm, home: Path, release: str, system: str, watched: str) -> list[dict[str, Any]]:
    """The chart's ServiceAccount, roles and bindings for a release watching ``watched``."""
    rendered = helm.run(
        "template",
        release,
        str(CHART),
        "--namespace",
        system,
        "--set",
        "crds.enabled=false",
        "--set",
        f"watchNamespaces={{{watched}}}",
        home=home,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] in RBAC_KINDS]


def without_resource(objects: list[dict[str, Any]], resource: str) -> list[dict[str, Any]]:
    """The objects with ``resource`` taken out of every rule of the roles."""
    changed = []
    for obj in objects:
        if obj["kind"] in ("ClusterRole", "Role"):
            rules = []
            for rule in obj["rules"]:
                kept = [r for r in rule["resources"] if not (rule["apiGroups"] == [""] and r == resource)]
                if kept:
                    rules.append({**rule, "resources": kept})
            obj = {**obj, "rules": rules}
        changed.append(obj)
    return changed


@pytest.mark.parametrize("removed", [None, "pods", "services"])
def test_the_charts_rbac_is_enough_for_solver_pods_and_each_rule_is_needed(
    kube: Any,
    kubectl: Kubectl,
    control_plane: ControlPlane,
    helm: Helm,
    namespace: str,
    tmp_path: Path,
    removed: str | None,
) -> None:
    release = f"acme-{uuid.uuid4().hex[:6]}"
    system = f"{namespace[:50]}-sys"
    client.CoreV1Api(kube).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=system)))
    objects = chart_rbac(helm, tmp_path / "helm-home", release, system, namespace)
    if removed is not None:
        objects = without_resource(objects, removed)
    manifest = "\n---\n".join(yaml.safe_dump(obj) for obj in objects)
    kubectl("apply", "-f", "-", input=manifest)
    (account,) = [obj["metadata"]["name"] for obj in objects if obj["kind"] == "ServiceAccount"]
    token_kubeconfig = control_plane.service_account_kubeconfig(system, account, tmp_path / "sa-kubeconfig")
    solver_port = free_port()
    operator = OperatorProcess(
        token_kubeconfig,
        tmp_path / "operator.log",
        namespaces=[namespace],
        env={**SOLVER_SETTINGS, "CERTCTL_OPERATOR_NAMESPACE": system},
    )
    try:
        with running_pebble(tmp_path / "pebble", http_port=solver_port) as pebble:
            operator.start()
            world = PodWorld(pebble, operator, namespace, solver_port, tmp_path)
            create(kube, namespace, "issuers", pod_issuer(world))
            wait_ready(kube, namespace, "issuers", "pebble-pods", timeout=60)
            create(
                kube,
                namespace,
                "managedcertificates",
                certificate_body(
                    "site", "pebble-pods", dnsNames=["site.acme.test"], duration=PEBBLE_LIFETIME
                ),
            )
            if removed is not None:

                def refused() -> dict[str, Any] | None:
                    body = get(kube, namespace, "managedcertificates", "site")
                    return body if condition(body).get("reason") == "ACMESolverPod" else None

                body = wait_for(f"the certificate to say {removed} are refused", refused, timeout=60)
                assert "403" in condition(body)["message"] and removed in condition(body)["message"]
                return
            pod, _ = wait_solver_pod(kube, namespace, "site")
            kubelet = Kubelet(kube, world, pod)
            try:
                kubelet.start()
                key_authorization = option_value(pod.spec.containers[0].args, "--key-authorization")
                kubelet.wait_probe_passes(key_authorization)
                kubelet.report_ready()
                wait_issued(kube, namespace, "site", timeout=120)
                wait_solver_objects_gone(kube, namespace, "site")
            finally:
                kubelet.stop()
            assert not PERMISSION_ERROR.search(operator.logs()), operator.log_tail()
    finally:
        operator.stop(timeout=10)
        kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=manifest, check=False)
