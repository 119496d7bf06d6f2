"""Notification channels under stress: bad headers, forbidden destinations, an API server outage.

Every test runs a real ``certctl-operator run`` process against the session's
kube-apiserver and real receivers on 127.0.0.1. The operator processes of
the test suite allow loopback egress (``CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS``
in the fast settings); tests that need the default policy override it with a
documentation range that matches nothing they use.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from tests.integration.conftest import CRD_DIR, REPO_ROOT
from tests.integration.test_notifications import (
    CHANNELS,
    condition,
    get_event,
    make_channel,
    make_event,
    phase,
    wait_phase,
    watch_object,
)
from tests.support.receivers import HTTPReceiver, ScriptedResponse, SMTPReceiver

from certctl_operator.dev.controlplane import ControlPlane, apply_crds
from certctl_operator.dev.helm import Helm
from certctl_operator.dev.operator_process import OperatorFactory, OperatorProcess
from certctl_operator.settings import Settings

Kubectl = Callable[..., Any]
CHART = REPO_ROOT / "helm" / "certctl-operator"
CHANNEL_CRD = "notificationchannels.certctl.io"
HEADERS_SCHEMA_PATH = ("properties", "spec", "properties", "webhook", "properties", "headers")


def wait_for_log(operator: OperatorProcess, text: str, timeout: float) -> None:
    """Block until the operator's log contains ``text`` (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while text not in operator.logs():
        assert time.monotonic() < deadline, f"{text!r} not logged within {timeout}s:\n{operator.log_tail()}"
        time.sleep(0.1)  # polling interval of a deadline-bounded wait


# --------------------------------------------------------------------------- API server outage


def test_a_delivery_answered_during_an_api_outage_is_recorded_afterwards_not_repeated(
    kube: Any,
    control_plane: ControlPlane,
    namespace: str,
    operator_factory: OperatorFactory,
) -> None:
    # The first request is held until the API server is down; every later one would succeed too.
    with HTTPReceiver([ScriptedResponse(status=200, hold=True)]) as receiver:
        operator = operator_factory(namespaces=[namespace])
        make_channel(
            kube, namespace, "hook", {"webhook": {"url": receiver.url_for("/hook"), "timeout": "20s"}}
        )
        event = make_event(kube, namespace, "during-outage", "hook")
        receiver.wait_until_held(1, seconds=30)

        control_plane.stop_apiserver()
        try:
            receiver.release()
            # The receiver said 200; the operator cannot write Sent while the API server is away.
            wait_for_log(operator, "notification delivery step failed", timeout=30)
        finally:
            control_plane.start_apiserver()

        sent = wait_phase(kube, namespace, "during-outage", "Sent", timeout=90)
        status = sent["status"]
        assert status["retryCount"] == 0
        assert [attempt["result"] for attempt in status["attempts"]] == ["Succeeded"]
        assert status["attempts"][0]["detail"] == "HTTP 200 OK"
        assert condition(sent, "Delivered")["status"] == "True"
        requests = receiver.requests
        assert len(requests) == 1, f"delivered {len(requests)} times"
        assert requests[0].header("Idempotency-Key") == event["metadata"]["uid"]
        # Sent events take no further attempts: the count is final.
        assert phase(get_event(kube, namespace, "during-outage")) == "Sent"
        assert "recorded attempt 1, made while the API server was unreachable" in operator.logs()


# --------------------------------------------------------------------------- webhook headers


def channel_manifest(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "certctl.io/v1alpha1",
        "kind": "NotificationChannel",
        "metadata": {"name": name},
        "spec": dict(spec),
    }


def ready_checked(body: Mapping[str, Any]) -> bool:
    status = body.get("status") or {}
    return status.get("observedGeneration") == body["metadata"]["generation"] and any(
        c["type"] == "Ready" for c in status.get("conditions") or []
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X Team": "ops"}, "header names must be HTTP tokens"),
        ({"X-Team:": "ops"}, "header names must be HTTP tokens"),
        ({"X-Team": "ops\r\nX-Injected: 1"}, "header values must not contain CR, LF, NUL"),
        ({"X-Team": "ops\u0000"}, "header values must not contain CR, LF, NUL"),
    ],
    ids=["space-in-name", "colon-in-name", "crlf-in-value", "nul-in-value"],
)
def test_the_api_server_refuses_invalid_webhook_headers(
    kubectl: Kubectl, namespace: str, headers: dict[str, str], expected: str
) -> None:
    manifest = channel_manifest(
        "bad-headers", {"webhook": {"url": "http://127.0.0.1:9/x", "headers": headers}}
    )
    result = kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest), check=False)
    assert result.returncode != 0, f"the API server accepted {headers!r}:\n{result.stdout}"
    assert expected in result.stderr, result.stderr
    # A tab inside a value and every token character in a name are fine.
    good = channel_manifest(
        "good-headers",
        {"webhook": {"url": "http://127.0.0.1:9/x", "headers": {"X-Team_1.a!#$%&'*+^`|~": "ops\tteam"}}},
    )
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(good))


def test_a_stored_channel_with_an_invalid_header_is_not_ready_and_sends_nothing(
    kube: Any,
    control_plane: ControlPlane,
    namespace: str,
    operator_factory: OperatorFactory,
) -> None:
    with HTTPReceiver() as receiver:
        api = client.ApiextensionsV1Api(kube)
        crd = kube.sanitize_for_serialization(api.read_custom_resource_definition(CHANNEL_CRD))
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for key in HEADERS_SCHEMA_PATH:
            schema = schema[key]
        schema.pop("x-kubernetes-validations", None)
        api.replace_custom_resource_definition(CHANNEL_CRD, crd)
        try:
            # The API server may take a moment to use the relaxed schema.
            deadline = time.monotonic() + 30
            while True:
                try:
                    make_channel(
                        kube,
                        namespace,
                        "legacy",
                        {
                            "webhook": {
                                "url": receiver.url_for("/legacy"),
                                "headers": {"X-Team": "ops\r\nX-Injected: 1"},
                            }
                        },
                    )
                    break
                except client.ApiException as error:
                    assert error.status == 422 and time.monotonic() < deadline, error.body
                    time.sleep(0.2)  # polling interval of a deadline-bounded wait
        finally:
            apply_crds(control_plane.kubeconfig, CRD_DIR)

        operator_factory(namespaces=[namespace])
        checked = watch_object(
            kube, namespace, CHANNELS, "legacy", lambda _, body: ready_checked(body), 30, "legacy checked"
        )
        ready = condition(checked, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "InvalidConfiguration"), ready
        assert "'X-Team'" in ready["message"] and "CR, LF, NUL" in ready["message"]
        assert "ops" not in ready["message"], "a header value may be a secret and is never quoted"

        make_event(kube, namespace, "via-legacy", "legacy")
        failed = wait_phase(kube, namespace, "via-legacy", "Failed")
        assert failed["status"]["lastErrorKind"] == "InvalidConfiguration"
        assert "X-Team" in failed["status"]["lastError"]
        assert receiver.requests == []


# --------------------------------------------------------------------------- egress policy

NOT_LOOPBACK = {"CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS": "198.51.100.0/24"}
"""An allow-list (a documentation range) that leaves loopback refused, as by default."""


def wait_checked(kube: Any, namespace: str, name: str, timeout: float = 30) -> dict[str, Any]:
    return watch_object(
        kube,
        namespace,
        CHANNELS,
        name,
        lambda _, body: ready_checked(body),
        timeout,
        f"channel {name} checked",
    )


def test_link_local_metadata_and_private_destinations_are_refused_without_connecting(
    kube: Any, namespace: str, operator_factory: OperatorFactory
) -> None:
    # Only channel checks here, no events: nothing is ever sent to these addresses.
    refused = {
        "aws-metadata": (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254, a cloud metadata address",
        ),
        "aws-metadata-v6": ("http://[fd00:ec2::254]/latest/", "fd00:ec2::254, a cloud metadata address"),
        "mapped-metadata": ("http://[::ffff:169.254.169.254]/", "a cloud metadata address"),
        "link-local": ("https://169.254.10.20:8443/hook", "169.254.10.20, a link-local address"),
        "private": (
            "http://10.20.30.40/hook",
            "10.20.30.40, a private address outside the egress allow-list",
        ),
        "cgnat": ("http://100.64.1.2/hook", "100.64.1.2, a private address outside the egress allow-list"),
    }
    operator_factory(namespaces=[namespace])  # loopback allowed, as in every test
    for name, (url, _) in refused.items():
        make_channel(kube, namespace, name, {"webhook": {"url": url}})
    make_channel(
        kube,
        namespace,
        "alibaba-smtp",
        {
            "email": {
                "host": "100.100.100.200",
                "port": 25,
                "security": "none",
                "from": "a@example.test",
                "to": ["b@example.test"],
            }
        },
    )
    refused["alibaba-smtp"] = ("", "100.100.100.200, a cloud metadata address")

    for name, (_, expected) in refused.items():
        ready = condition(wait_checked(kube, namespace, name), "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "EgressDenied"), (name, ready)
        assert ready["message"].startswith("egress policy refuses"), (name, ready)
        assert expected in ready["message"], (name, ready)


def test_loopback_is_refused_unless_allowed_also_when_a_name_resolves_to_it(
    kube: Any, namespace: str, operator_factory: OperatorFactory
) -> None:
    with HTTPReceiver() as receiver, SMTPReceiver(mode="plain") as smtp:
        operator_factory(namespaces=[namespace], env=NOT_LOOPBACK)
        make_channel(kube, namespace, "by-address", {"webhook": {"url": receiver.url_for("/a")}})
        by_name = f"http://localhost:{receiver.port}/by-name"
        make_channel(kube, namespace, "by-name", {"webhook": {"url": by_name, "timeout": "5s"}})
        mail = {"host": "localhost", "port": smtp.port, "security": "none"}
        make_channel(
            kube, namespace, "mail", {"email": {**mail, "from": "a@example.test", "to": ["b@example.test"]}}
        )

        ready = condition(wait_checked(kube, namespace, "by-address"), "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "EgressDenied"), ready
        assert "127.0.0.1, a loopback address outside the egress allow-list" in ready["message"]
        assert "CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS" in ready["message"]
        for name in ("by-name", "mail"):
            ready = condition(wait_checked(kube, namespace, name), "Ready")
            assert (ready["status"], ready["reason"]) == ("False", "EgressDenied"), (name, ready)
            assert "egress policy refuses localhost: it resolves to" in ready["message"], ready
            assert "a loopback address" in ready["message"], ready

        # Deliveries resolve the name again and judge the address they would connect to.
        for name in ("by-name", "mail"):
            make_event(kube, namespace, f"via-{name}", name)
        for name in ("by-name", "mail"):
            failed = wait_phase(kube, namespace, f"via-{name}", "Failed")
            status = failed["status"]
            assert status["lastErrorKind"] == "InvalidConfiguration", status
            assert "egress policy refuses localhost: it resolves to" in status["lastError"], status
            assert "(connecting to port" in status["lastError"], "refused when connecting, not by the check"
        assert receiver.requests == []
        assert smtp.messages == []


def test_the_chart_maps_the_allow_list_and_its_schema_refuses_what_is_not_a_cidr(
    helm: Helm, tmp_path: Path
) -> None:
    def template(*args: str, check: bool = True) -> Any:
        return helm.run(
            "template",
            "certctl-operator",
            str(CHART),
            "--namespace",
            "certctl-system",
            *args,
            home=tmp_path / "helm-home",
            check=check,
        )

    def operator_env(*args: str) -> dict[str, str]:
        documents = [doc for doc in yaml.safe_load_all(template(*args).stdout) if doc]
        (deployment,) = [doc for doc in documents if doc["kind"] == "Deployment"]
        (operator,) = deployment["spec"]["template"]["spec"]["containers"]
        return {item["name"]: item["value"] for item in operator["env"] if "value" in item}

    assert "CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS" not in operator_env(), (
        "empty by default: nothing allowed"
    )
    env = operator_env("--set", "config.notifications.egressAllowedCIDRs={10.96.0.0/12,fd00:10::/64}")
    assert env["CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS"] == "10.96.0.0/12,fd00:10::/64"
    policy = Settings.from_env(env).egress_policy()
    assert policy.permits(ipaddress.ip_address("10.96.0.10"))
    assert not policy.permits(ipaddress.ip_address("10.0.0.10"))
    assert not policy.permits(ipaddress.ip_address("169.254.169.254"))

    refused = template("--set", "config.notifications.egressAllowedCIDRs={cluster-services}", check=False)
    assert refused.returncode != 0
    assert "egressAllowedCIDRs" in refused.stderr
