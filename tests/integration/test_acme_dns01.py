"""DNS-01 through RFC 2136 (TSIG-signed updates to a loopback DNS server that Pebble
queries), and an order resumed by a restarted operator after SIGKILL."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.support.dns_server import DNSServer, running_dns_server
from tests.support.pebble import Pebble, running_pebble
from tests.support.pki_cluster import (
    certificate_body,
    condition,
    create,
    get,
    openssl,
    wait_for,
    wait_issued,
    wait_ready,
)

from certctl_operator.dev.operator_process import OperatorFactory, OperatorProcess

TSIG_KEY_NAME = "certctl-acme."
PEBBLE_LIFETIME = "2160h"


@dataclass
class DNSWorld:
    pebble: Pebble
    dns: DNSServer
    operator: OperatorProcess
    namespace: str
    tsig_secret: str


@pytest.fixture
def dns_world(
    kube: Any, operator_factory: OperatorFactory, namespace: str, tmp_path: Path
) -> Iterator[DNSWorld]:
    tsig_secret = base64.b64encode(os.urandom(32)).decode("ascii")
    client.CoreV1Api(kube).create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="tsig"), string_data={"secret": tsig_secret}),
    )
    operator = operator_factory(namespaces=[namespace], start=False)
    with (
        running_dns_server({TSIG_KEY_NAME: tsig_secret}) as dns,
        running_pebble(tmp_path / "pebble", http_port=operator.port, dns_server=dns.address) as pebble,
    ):
        operator.start()
        yield DNSWorld(pebble, dns, operator, namespace, tsig_secret)
        print(f"--- pebble log\n{pebble.log_text()[-6000:]}")


def dns01_issuer(world: DNSWorld) -> dict[str, Any]:
    rfc2136 = {
        "nameserver": world.dns.address,
        "tsigKeyName": TSIG_KEY_NAME,
        "tsigAlgorithm": "HMACSHA256",
        "tsigSecretSecretRef": {"name": "tsig", "key": "secret"},
    }
    return {
        "kind": "Issuer",
        "metadata": {"name": "pebble-dns"},
        "spec": {
            "acme": {
                "server": world.pebble.directory_url,
                "caBundle": world.pebble.ca_bundle,
                "privateKeySecretRef": {"name": "pebble-dns-account"},
                "solvers": [{"dns01": {"rfc2136": rfc2136}}],
            }
        },
    }


def verify_chain(world: DNSWorld, kube: Any, name: str, leaf_pem: str, tmp_path: Path) -> None:
    secret = client.CoreV1Api(kube).read_namespaced_secret(f"{name}-tls", world.namespace)
    (tmp_path / "chain.pem").write_text(base64.b64decode(secret.data["tls.crt"]).decode())
    (tmp_path / "leaf.pem").write_text(leaf_pem)
    (tmp_path / "root.pem").write_text(world.pebble.root_pem())
    result = openssl(
        "verify",
        "-CAfile",
        tmp_path / "root.pem",
        "-untrusted",
        tmp_path / "chain.pem",
        tmp_path / "leaf.pem",
    )
    assert result.returncode == 0, result.stderr


def test_dns01_issuance_over_rfc2136(kube: Any, dns_world: DNSWorld, tmp_path: Path) -> None:
    ns = dns_world.namespace
    create(kube, ns, "issuers", dns01_issuer(dns_world))
    wait_ready(kube, ns, "issuers", "pebble-dns", timeout=60)
    names = ["mail.acme.test", "*.apps.acme.test"]
    create(
        kube,
        ns,
        "managedcertificates",
        certificate_body("mail", "pebble-dns", dnsNames=names, duration=PEBBLE_LIFETIME),
    )
    issued = wait_issued(kube, ns, "mail", timeout=120)
    verify_chain(dns_world, kube, "mail", issued.leaf_pem, tmp_path)

    order = get(kube, ns, "managedcertificates", "mail")["status"]["acmeOrder"]
    assert {a["challengeType"] for a in order["authorizations"]} == {"dns-01"}
    zone = dns_world.dns.zone
    # Each record was added by a signed update and withdrawn again after validation.
    assert zone.updates_applied >= 4, zone.updates_applied
    assert zone.txt_values("_acme-challenge.mail.acme.test") == set()
    assert zone.txt_values("_acme-challenge.apps.acme.test") == set()
    # The TSIG secret and the account key stay in their Secrets.
    account = client.CoreV1Api(kube).read_namespaced_secret("pebble-dns-account", ns).data["tls.key"]
    account_pem = base64.b64decode(account).decode()
    key_body = "".join(account_pem.splitlines()[1:-1])
    logs = dns_world.operator.logs()
    events = str(client.CoreV1Api(kube).list_namespaced_event(ns).items)
    status = str(get(kube, ns, "managedcertificates", "mail")["status"])
    for text in (logs, events, status):
        assert dns_world.tsig_secret not in text
        assert key_body[:40] not in text


def test_order_resumed_after_sigkill(kube: Any, dns_world: DNSWorld, tmp_path: Path) -> None:
    ns = dns_world.namespace
    zone = dns_world.dns.zone
    zone.refuse_updates = True
    create(kube, ns, "issuers", dns01_issuer(dns_world))
    wait_ready(kube, ns, "issuers", "pebble-dns", timeout=60)
    create(
        kube,
        ns,
        "managedcertificates",
        certificate_body("resume", "pebble-dns", dnsNames=["resume.acme.test"], duration=PEBBLE_LIFETIME),
    )

    def stuck() -> dict[str, Any] | None:
        body = get(kube, ns, "managedcertificates", "resume")
        order = (body.get("status") or {}).get("acmeOrder")
        ready = condition(body)
        return body if order and ready.get("reason") == "ACMEDnsUpdate" else None

    # The order exists at the CA and in the status, but its challenge cannot be answered yet.
    body = wait_for("the order stuck on a refused DNS update", stuck, timeout=90)
    order_url = body["status"]["acmeOrder"]["url"]
    assert body["status"]["acmeOrder"]["state"] == "pending"
    assert body["status"]["failedIssuanceAttempts"] >= 1
    assert zone.updates_refused >= 1

    dns_world.operator.kill()
    zone.refuse_updates = False
    dns_world.operator.start()

    issued = wait_issued(kube, ns, "resume", timeout=120)
    verify_chain(dns_world, kube, "resume", issued.leaf_pem, tmp_path)
    order = get(kube, ns, "managedcertificates", "resume")["status"]["acmeOrder"]
    assert order["url"] == order_url, "the restarted operator ordered anew instead of resuming"
    assert order["state"] == "valid"


def test_failed_validation_names_the_problem_then_a_new_order_succeeds(
    kube: Any, dns_world: DNSWorld, tmp_path: Path
) -> None:
    ns = dns_world.namespace
    zone = dns_world.dns.zone
    zone.hide_txt = True
    create(kube, ns, "issuers", dns01_issuer(dns_world))
    wait_ready(kube, ns, "issuers", "pebble-dns", timeout=60)
    create(
        kube,
        ns,
        "managedcertificates",
        certificate_body("hidden", "pebble-dns", dnsNames=["hidden.acme.test"], duration=PEBBLE_LIFETIME),
    )

    def invalid() -> dict[str, Any] | None:
        # The order's state and the condition are two writes: wait for both.
        body = get(kube, ns, "managedcertificates", "hidden")
        order = (body.get("status") or {}).get("acmeOrder") or {}
        failed = order.get("state") == "invalid" and condition(body).get("reason") == "ACMEUnauthorized"
        return body if failed else None

    body = wait_for("the order failing validation", invalid, timeout=90)
    failed_order = body["status"]["acmeOrder"]
    assert failed_order["problem"] == "urn:ietf:params:acme:error:unauthorized"
    ready = condition(body)
    assert (ready["status"], ready["reason"]) == ("False", "ACMEUnauthorized")
    assert "urn:ietf:params:acme:error:unauthorized" in ready["message"]

    zone.hide_txt = False
    issued = wait_issued(kube, ns, "hidden", timeout=120)
    verify_chain(dns_world, kube, "hidden", issued.leaf_pem, tmp_path)
    order = get(kube, ns, "managedcertificates", "hidden")["status"]["acmeOrder"]
    assert order["url"] != failed_order["url"]
    assert order["state"] == "valid"
    assert "problem" not in order
