"""HTTP-01 solver Pods: their names, their manifests, the settings they take, and the program they run."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from certctl_operator.acme.http01_server import make_server
from certctl_operator.acme.http01_solver import (
    SolverOwner,
    SolverPodSettings,
    pod_name,
    service_name,
    solver_args,
    solver_pod,
    solver_service,
)
from certctl_operator.api.issuer import ACMEHTTP01SolverPod, ACMESolver
from certctl_operator.api.metadata_keys import LABEL_ACME_HTTP01_SOLVER
from certctl_operator.entrypoint import build_parser
from certctl_operator.settings import Settings

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
OWNER = SolverOwner(namespace="apps", name="web", uid="0d4c7a52-0000-4000-8000-000000000001")
DEFAULTS = SolverPodSettings(
    image="registry.example/certctl-operator:1.2.3",
    resources={"requests": {"cpu": "10m"}},
    node_selector={"kubernetes.io/os": "linux"},
)
TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHORIZATION = f"{TOKEN}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


@pytest.mark.parametrize(
    "identifier",
    ["www.example.com", "192.0.2.1", "2001:db8::1", "x" * 63 + ".example.com", "1.example.com"],
)
def test_names_are_dns_labels_and_stable_per_certificate_and_name(identifier: str) -> None:
    service = service_name("web", identifier)
    pod = pod_name("web", identifier, TOKEN)
    assert DNS_LABEL.match(service) and len(service) <= 63, service
    assert DNS_LABEL.match(pod) and len(pod) <= 63, pod
    assert service_name("web", identifier) == service
    assert pod.startswith(service + "-")
    # Another certificate, or another challenge, never shares the objects.
    assert service_name("api", identifier) != service
    assert pod_name("web", identifier, TOKEN + "x") != pod


def test_service_name_is_readable() -> None:
    assert service_name("web", "www.example.com").startswith("acme-www-example-com-")


def test_pod_runs_the_solver_with_the_answer_and_nothing_else() -> None:
    pod = solver_pod(OWNER, "www.example.com", TOKEN, KEY_AUTHORIZATION, DEFAULTS)
    (container,) = pod["spec"]["containers"]
    assert container["image"] == DEFAULTS.image
    assert container["command"] == ["certctl-operator"]
    assert container["args"] == [
        "acme-solver",
        "--port=8089",
        f"--token={TOKEN}",
        f"--key-authorization={KEY_AUTHORIZATION}",
    ]
    assert "env" not in container and "volumeMounts" not in container
    assert container["readinessProbe"]["httpGet"] == {
        "path": f"/.well-known/acme-challenge/{TOKEN}",
        "port": "http",
    }
    assert container["resources"] == {"requests": {"cpu": "10m"}}
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_pod_meets_the_restricted_pod_security_standard() -> None:
    spec = solver_pod(OWNER, "www.example.com", TOKEN, KEY_AUTHORIZATION, DEFAULTS)["spec"]
    (container,) = spec["containers"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["ports"][0]["containerPort"] > 1024


def test_service_selects_exactly_the_solver_pod_of_its_name() -> None:
    pod = solver_pod(OWNER, "www.example.com", TOKEN, KEY_AUTHORIZATION, DEFAULTS)
    service = solver_service(OWNER, "www.example.com", DEFAULTS)
    assert service["spec"]["selector"] == {LABEL_ACME_HTTP01_SOLVER: service["metadata"]["name"]}
    assert pod["metadata"]["labels"][LABEL_ACME_HTTP01_SOLVER] == service["metadata"]["name"]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["type"] == "ClusterIP"
    for obj in (pod, service):
        assert obj["metadata"]["namespace"] == "apps"
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "certctl.io/v1alpha1",
                "kind": "ManagedCertificate",
                "name": "web",
                "uid": OWNER.uid,
                "controller": True,
            }
        ]
        assert obj["metadata"]["labels"]["certctl.io/managed-by-certificate"] == "web"


def test_long_certificate_names_still_make_label_values() -> None:
    owner = SolverOwner("apps", "c" * 200, "uid")
    assert len(owner.label_value) <= 63
    assert owner.label_value != SolverOwner("apps", "c" * 199, "uid").label_value


def test_issuer_fields_override_the_operator_defaults_one_by_one() -> None:
    pod = ACMEHTTP01SolverPod.model_validate(
        {"serviceType": "NodePort", "tolerations": [{"key": "acme", "operator": "Exists"}]}
    )
    merged = DEFAULTS.overridden_by(pod)
    assert merged.image == DEFAULTS.image
    assert merged.resources == DEFAULTS.resources
    assert merged.node_selector == DEFAULTS.node_selector
    assert merged.service_type == "NodePort"
    assert merged.tolerations == [{"key": "acme", "operator": "Exists"}]
    emptied = DEFAULTS.overridden_by(ACMEHTTP01SolverPod.model_validate({"nodeSelector": {}}))
    assert emptied.node_selector == {}


def test_http01_without_pod_keeps_meaning_operator_served() -> None:
    solver = ACMESolver.model_validate({"http01": {}})
    assert solver.http01 is not None and solver.http01.pod is None
    with_pod = ACMESolver.model_validate({"http01": {"pod": {}}})
    assert with_pod.http01 is not None and with_pod.http01.pod == ACMEHTTP01SolverPod()


@pytest.mark.parametrize(
    "pod",
    [
        {"serviceType": "ExternalName"},
        {"resources": {"requests": {"cpu": "a lot"}}},
        {"image": "has space"},
        {"tolerations": [{"operator": "Sometimes"}]},
        {"port": 80},
    ],
)
def test_bad_solver_pod_fields_are_refused(pod: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ACMEHTTP01SolverPod.model_validate(pod)


def test_settings_take_solver_defaults_from_json_variables() -> None:
    settings = Settings.from_env(
        {
            "CERTCTL_ACME_SOLVER_IMAGE": "registry.example/solver:1",
            "CERTCTL_ACME_SOLVER_SERVICE_TYPE": "LoadBalancer",
            "CERTCTL_ACME_SOLVER_RESOURCES": '{"limits": {"memory": "64Mi"}}',
            "CERTCTL_ACME_SOLVER_NODE_SELECTOR": '{"pool": "edge"}',
            "CERTCTL_ACME_SOLVER_TOLERATIONS": '[{"key": "edge", "operator": "Exists"}]',
        }
    )
    assert settings.acme_solver_image == "registry.example/solver:1"
    assert settings.acme_solver_service_type == "LoadBalancer"
    assert settings.acme_solver_resources == {"limits": {"memory": "64Mi"}}
    assert settings.acme_solver_node_selector == {"pool": "edge"}
    assert settings.acme_solver_tolerations == ({"key": "edge", "operator": "Exists"},)
    with pytest.raises(ValidationError, match="acme_solver_resources"):
        Settings.from_env({"CERTCTL_ACME_SOLVER_RESOURCES": "{not json"})


def test_the_solver_command_line_of_the_pod_takes_a_token_that_begins_with_a_dash() -> None:
    token = "-" + TOKEN[1:]
    key_authorization = f"{token}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
    args = build_parser().parse_args(solver_args(token, key_authorization))
    assert (args.port, args.token, args.key_authorization) == (8089, token, key_authorization)


def test_solver_command_line() -> None:
    args = build_parser().parse_args(
        ["acme-solver", "--port", "8089", "--token", TOKEN, "--key-authorization", KEY_AUTHORIZATION]
    )
    assert (args.address, args.port, args.token, args.key_authorization) == (
        "0.0.0.0",  # noqa: S104 (a Pod listens on its own address)
        8089,
        TOKEN,
        KEY_AUTHORIZATION,
    )


@pytest.fixture
def solver_url() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, TOKEN, KEY_AUTHORIZATION)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_solver_answers_its_token_only(solver_url: str) -> None:
    answer = httpx.get(f"{solver_url}/.well-known/acme-challenge/{TOKEN}")
    assert answer.status_code == 200
    assert answer.text == KEY_AUTHORIZATION
    assert httpx.get(f"{solver_url}/.well-known/acme-challenge/other").status_code == 404
    assert httpx.get(f"{solver_url}/").status_code == 404
