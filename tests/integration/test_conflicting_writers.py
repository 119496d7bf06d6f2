"""Another client edits the same ManagedCertificates while the operator works on them.

A writer thread keeps changing labels, annotations and spec (``dnsNames``,
which forces a new certificate) of every certificate, with merge patches and
with full updates based on what it read, while the operator issues and
reissues. At the end no user edit is lost (every label and annotation the
writer set is there, the spec is the writer's last), the status describes the
certificate for the final spec (its Secret holds that SAN list, the serial
and revision match, observedGeneration is the current generation), and no
status field the operator wrote went missing.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

from cryptography import x509
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.support.pki_cluster import GROUP, VERSION, certificate_body, create, get, issuer_body, wait_for

from certctl_operator.dev.operator_process import OperatorFactory
from certctl_operator.policy.revocation import normalize_serial

CERTIFICATES = 8
ROUNDS = 6
SPEC_ROUNDS = (1, 3, 5)
"""Rounds in which the writer also changes dnsNames."""
STATUS_FIELDS = (
    "secretName",
    "notBefore",
    "notAfter",
    "renewalTime",
    "serialNumber",
    "revision",
    "conditions",
)


def dns_names(name: str, round_: int) -> list[str]:
    return [f"{name}.example.test", f"{name}-r{round_}.example.test"]


class Writer(threading.Thread):
    """Edits every certificate ROUNDS times; odd edits are merge patches, even ones full updates."""

    def __init__(self, kube: Any, namespace: str, names: list[str]) -> None:
        super().__init__(name="conflicting-writer", daemon=True)
        self.objects = client.CustomObjectsApi(kube)
        self.namespace = namespace
        self.names = names
        self.final_dns: dict[str, list[str]] = {}
        self.conflicts = 0
        self.rounds_met = 0
        self.edits = 0
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            for round_ in range(ROUNDS):
                for index, name in enumerate(self.names):
                    self.edit(name, round_, full=(round_ + index) % 2 == 0)
                self.wait_for_the_operator()
        except BaseException as error:  # reported by the test
            self.errors.append(error)

    def wait_for_the_operator(self) -> None:
        """Let the operator catch up on at least one certificate, so the next edits meet its work."""

        def caught_up() -> bool:
            listed = self.objects.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "managedcertificates"
            )
            return any(
                (item.get("status") or {}).get("observedGeneration") == item["metadata"]["generation"]
                for item in listed["items"]
            )

        wait_for("the operator to act on an edit", caught_up, 30, interval=0.05)
        self.rounds_met += 1

    def edit(self, name: str, round_: int, *, full: bool) -> None:
        labels = {"team": f"round-{round_}"}
        annotations = {f"user.example/round-{round_}": "kept"}
        dns = dns_names(name, round_) if round_ in SPEC_ROUNDS else None
        for _ in range(50):  # bounded: a conflict means the operator wrote in between; read again
            if not full:
                patch: dict[str, Any] = {"metadata": {"labels": labels, "annotations": annotations}}
                if dns is not None:
                    patch["spec"] = {"dnsNames": dns}
                self.objects.patch_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, "managedcertificates", name, patch
                )
                break
            body = self.objects.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "managedcertificates", name
            )
            body["metadata"].setdefault("labels", {}).update(labels)
            body["metadata"].setdefault("annotations", {}).update(annotations)
            if dns is not None:
                body["spec"]["dnsNames"] = dns
            try:
                self.objects.replace_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, "managedcertificates", name, body
                )
                break
            except ApiException as error:
                if error.status != 409:
                    raise
                self.conflicts += 1
        else:
            raise AssertionError(f"{name}: 50 conflicts in a row")
        self.edits += 1
        if dns is not None:
            self.final_dns[name] = dns


def test_edits_by_another_client_during_issuance_are_kept_and_status_follows_the_final_spec(
    operator_factory: OperatorFactory, kube: Any, namespace: str
) -> None:
    operator_factory(namespaces=[namespace])
    create(kube, namespace, "issuers", issuer_body("selfsigned", ca_secret=None, base_url=None))
    names = [f"shared-{index}" for index in range(CERTIFICATES)]
    for name in names:
        create(kube, namespace, "managedcertificates", certificate_body(name, "selfsigned"))
    writer = Writer(kube, namespace, names)
    started = time.monotonic()
    writer.start()
    writer.join(timeout=120)
    assert not writer.is_alive(), "the writer did not finish"
    assert not writer.errors, writer.errors
    print(f"{writer.edits} edits in {time.monotonic() - started:.1f}s, {writer.conflicts} conflicts re-read")

    core = client.CoreV1Api(kube)

    def settled(name: str) -> dict[str, Any] | None:
        body = get(kube, namespace, "managedcertificates", name)
        status = body.get("status") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
        if not ready or status.get("observedGeneration") != body["metadata"]["generation"]:
            return None
        secret = core.read_namespaced_secret(body["spec"]["secretName"], namespace)
        leaf = x509.load_pem_x509_certificates(base64.b64decode(secret.data["tls.crt"]))[0]
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if sorted(sans.get_values_for_type(x509.DNSName)) != sorted(body["spec"]["dnsNames"]):
            return None
        return {"body": body, "secret": secret, "leaf": leaf}

    for name in names:
        found = wait_for(f"{name} settled on its final spec", lambda n=name: settled(n), 90)
        body, secret, leaf = found["body"], found["secret"], found["leaf"]
        meta, status = body["metadata"], body["status"]
        # No user edit lost.
        assert body["spec"]["dnsNames"] == writer.final_dns[name], (name, body["spec"]["dnsNames"])
        assert meta["labels"].get("team") == f"round-{ROUNDS - 1}", (name, meta["labels"])
        for round_ in range(ROUNDS):
            assert meta["annotations"].get(f"user.example/round-{round_}") == "kept", (name, round_)
        # No status field lost; status, Secret and certificate agree.
        missing = [field for field in STATUS_FIELDS if not status.get(field)]
        assert not missing, (name, missing, status)
        annotations = secret.metadata.annotations
        assert annotations["certctl.io/serial-number"] == status["serialNumber"], name
        assert annotations["certctl.io/revision"] == str(status["revision"]), name
        assert normalize_serial(leaf.serial_number) == normalize_serial(status["serialNumber"]), name
        # Reissued for spec changes only: at most one revision per dnsNames change, plus the first.
        assert 1 <= status["revision"] <= 1 + len(SPEC_ROUNDS), (name, status["revision"])
