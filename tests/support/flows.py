"""End-to-end flows of the operator, written once for every place that runs an operator.

Each flow drives the operator as a user does (creating objects through the
API server) and checks what the outside world sees. They take a synchronous
``kubernetes.client.ApiClient`` and a namespace, so the same code runs

* against the local control plane with the operator as a local process
  (tests/integration: under the chart's RBAC, with leader election), and
* against a kind cluster with the operator installed by the chart
  (tests/e2e).

What differs between the two is passed in: the URL the test reaches the
operator's HTTP endpoints at, the URL certificates embed, and where a
webhook can be received.
"""

from __future__ import annotations

import base64
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.pki_cluster import (
    ask_ocsp,
    certificate_body,
    condition,
    create,
    crl_reasons,
    get,
    issuer_body,
    make_ca_secret,
    revocation_body,
    wait_for,
    wait_issued,
)

GROUP, VERSION = "certctl.io", "v1alpha1"
LABEL_PHASE = "certctl.io/phase"
RENEW_ANNOTATION = "certctl.io/renew"


@dataclass
class Flows:
    """The flows for one operator and one namespace."""

    kube: Any
    """A synchronous ``kubernetes.client.ApiClient`` with the rights of the person using the operator."""
    namespace: str
    base_url: str
    """Where this test reaches the operator's HTTP endpoints (CRL, OCSP)."""
    public_base_url: str | None = None
    """The URL certificates embed (as relying parties reach the operator); default: ``base_url``."""
    operator_namespace: str | None = None
    """Where the operator reads ClusterIssuer CA Secrets; None: ClusterIssuers are self-signed."""
    timeout: float = 60.0
    names: list[str] = field(default_factory=list)
    cluster_issuers: list[str] = field(default_factory=list)

    def name(self, stem: str) -> str:
        """A fresh object name, so a flow can run several times in one namespace."""
        unique = f"{stem}-{uuid.uuid4().hex[:5]}"
        self.names.append(unique)
        return unique

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.kube)

    @property
    def objects(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.kube)

    # ------------------------------------------------------------------ issuance and renewal

    def self_signed_issuer(self) -> str:
        name = self.name("selfsigned")
        create(self.kube, self.namespace, "issuers", issuer_body(name, ca_secret=None, base_url=None))
        return name

    def issuance(self, issuer: str | None = None) -> dict[str, Any]:
        """A certificate is issued into a ``kubernetes.io/tls`` Secret; returns its status."""
        issuer = issuer or self.self_signed_issuer()
        name = self.name("web")
        create(self.kube, self.namespace, "managedcertificates", certificate_body(name, issuer))
        issued = wait_issued(self.kube, self.namespace, name, timeout=self.timeout)
        assert issued.revision == 1
        secret = self.core.read_namespaced_secret(f"{name}-tls", self.namespace)
        assert secret.type == "kubernetes.io/tls"
        assert secret.data["tls.crt"] and secret.data["tls.key"]
        body = get(self.kube, self.namespace, "managedcertificates", name)
        return {"name": name, **body["status"]}

    def renewal(self, issuer: str | None = None) -> tuple[str, str]:
        """Asked to renew, the operator issues revision 2 with a new serial; returns both serials."""
        first = self.issuance(issuer)
        name = first["name"]
        self.objects.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            "managedcertificates",
            name,
            {"metadata": {"annotations": {RENEW_ANNOTATION: uuid.uuid4().hex}}},
        )
        second = wait_issued(
            self.kube, self.namespace, name, after=first["serialNumber"], timeout=self.timeout
        )
        assert second.revision == 2, second.revision
        return first["serialNumber"], second.serial

    def cluster_issued(self) -> dict[str, Any]:
        """A ClusterIssuer signs a certificate in the namespace; returns its status.

        With ``operator_namespace`` it is a CA whose key pair is there (so the
        operator also publishes its CRL), else a self-signed one.
        """
        issuer = self.name("cluster-ca" if self.operator_namespace else "cluster-selfsigned")
        ca_secret = None
        if self.operator_namespace:
            ca_secret = f"{issuer}-keypair"
            make_ca_secret(self.kube, self.operator_namespace, ca_secret, "Flow cluster CA")
        body = issuer_body(issuer, "ClusterIssuer", ca_secret=ca_secret, base_url=self.public_base_url)
        create(self.kube, None, "clusterissuers", body)
        self.cluster_issuers.append(issuer)
        name = self.name("cluster-web")
        create(
            self.kube, self.namespace, "managedcertificates", certificate_body(name, issuer, "ClusterIssuer")
        )
        issued = wait_issued(self.kube, self.namespace, name, timeout=self.timeout)
        assert issued.revision == 1
        return {"name": name, **get(self.kube, self.namespace, "managedcertificates", name)["status"]}

    def deletion(self, issuer: str | None = None) -> None:
        """A certificate deleted with ``deleteSecretOnDeletion`` takes its Secret along."""
        issuer = issuer or self.self_signed_issuer()
        name = self.name("short-lived")
        body = certificate_body(name, issuer, deleteSecretOnDeletion=True)
        create(self.kube, self.namespace, "managedcertificates", body)
        wait_issued(self.kube, self.namespace, name, timeout=self.timeout)
        self.objects.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "managedcertificates", name
        )

        def gone() -> bool:
            for read in (
                lambda: get(self.kube, self.namespace, "managedcertificates", name),
                lambda: self.core.read_namespaced_secret(f"{name}-tls", self.namespace),
            ):
                try:
                    read()
                except ApiException as error:
                    if error.status != 404:
                        raise
                    continue
                return False
            return True

        wait_for(f"ManagedCertificate {name} and its Secret deleted", gone, self.timeout)

    def announced(self, channel: str, issuer: str | None = None) -> dict[str, Any]:
        """A certificate asking for it gets a NotificationEvent for its issuance, delivered on ``channel``."""
        issuer = issuer or self.self_signed_issuer()
        name = self.name("announced")
        notifications = {"channels": [channel], "events": ["Issued"]}
        create(
            self.kube,
            self.namespace,
            "managedcertificates",
            certificate_body(name, issuer, notifications=notifications),
        )
        wait_issued(self.kube, self.namespace, name, timeout=self.timeout)

        def created() -> dict[str, Any] | None:
            listed = self.objects.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "notificationevents"
            )
            for item in listed["items"]:
                if item["spec"].get("type") == "Issued" and name in item["metadata"]["name"]:
                    return dict(item)
            return None

        event = wait_for(f"the Issued NotificationEvent of {name}", created, self.timeout)
        return self.wait_event_phase(event["metadata"]["name"], "Sent")

    def delete_cluster_issuers(self, timeout: float) -> bool:
        """Delete the ClusterIssuers this flow created; whether they were gone within ``timeout``."""
        for name in self.cluster_issuers:
            with contextlib.suppress(ApiException):
                self.objects.delete_cluster_custom_object(GROUP, VERSION, "clusterissuers", name)

        def gone() -> bool:
            for name in self.cluster_issuers:
                try:
                    get(self.kube, None, "clusterissuers", name)
                except ApiException as error:
                    if error.status == 404:
                        continue
                    raise
                return False
            return True

        try:
            wait_for("the flow's ClusterIssuers deleted", gone, timeout)
        except AssertionError:
            return False
        return True

    # ------------------------------------------------------------------ revocation

    def revocation(self) -> str:
        """A revoked certificate is in the CRL ConfigMap and OCSP says revoked; returns its serial."""
        ca_secret, issuer, certificate = self.name("ca-keypair"), self.name("team-ca"), self.name("revoked")
        make_ca_secret(self.kube, self.namespace, ca_secret, "Flow CA")
        create(
            self.kube,
            self.namespace,
            "issuers",
            issuer_body(issuer, ca_secret=ca_secret, base_url=self.public_base_url or self.base_url),
        )
        create(self.kube, self.namespace, "managedcertificates", certificate_body(certificate, issuer))
        issued = wait_issued(self.kube, self.namespace, certificate, timeout=self.timeout)
        # The issuer's first (empty) CRL is published before anything is revoked...
        wait_for(
            f"the first CRL ConfigMap of {issuer}",
            lambda: self.core.read_namespaced_config_map(f"{issuer}-crl", self.namespace),
            self.timeout,
        )
        revocation = self.name("compromised")
        create(
            self.kube,
            self.namespace,
            "revocations",
            revocation_body(revocation, certificate, "keyCompromise", reissue=False),
        )

        def revoked() -> dict[str, Any] | None:
            body = get(self.kube, self.namespace, "revocations", revocation)
            return body if (body.get("status") or {}).get("phase") == "Revoked" else None

        done = wait_for(f"Revocation {revocation} Revoked", revoked, self.timeout)
        assert done["status"]["serialNumber"] == issued.serial
        assert condition(done)["status"] == "True"

        # ...and replaced by one listing the serial.
        def published() -> bytes | None:
            config_map = self.core.read_namespaced_config_map(f"{issuer}-crl", self.namespace)
            pem = (config_map.data or {}).get("ca.crl", "")
            if not pem:
                return None
            der = x509.load_pem_x509_crl(pem.encode()).public_bytes(serialization.Encoding.DER)
            return der if issued.certificate.serial_number in crl_reasons(der) else None

        crl = wait_for(f"the CRL ConfigMap of {issuer} listing {issued.serial}", published, self.timeout)
        assert crl_reasons(crl)[issued.certificate.serial_number] == "keyCompromise"

        # The responder, asked the way clients ask, says revoked.
        url = f"{self.base_url}/ocsp/{self.namespace}/{issuer}"

        def answered_revoked() -> ocsp.OCSPResponse | None:
            answer = ask_ocsp(url, issued.certificate, issued.ca)
            if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
                return None
            return answer if answer.certificate_status == ocsp.OCSPCertStatus.REVOKED else None

        answer = wait_for("OCSP revoked", answered_revoked, self.timeout)
        assert answer.revocation_reason == x509.ReasonFlags.key_compromise
        return issued.serial

    # ------------------------------------------------------------------ notifications

    def webhook_channel(self, url: str) -> str:
        name = self.name("hook")
        signing = f"{name}-signing"
        self.core.create_namespaced_secret(
            self.namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=signing),
                data={"key": base64.b64encode(b"signing-key-of-the-flow").decode()},
            ),
        )
        spec = {"webhook": {"url": url, "timeout": "5s", "signingSecretRef": {"name": signing, "key": "key"}}}
        create(
            self.kube,
            self.namespace,
            "notificationchannels",
            {"kind": "NotificationChannel", "metadata": {"name": name}, "spec": spec},
        )
        return name

    def event(self, channel: str, stem: str = "hello") -> dict[str, Any]:
        name = self.name(stem)
        body = {
            "kind": "NotificationEvent",
            "metadata": {"name": name},
            "spec": {
                "type": "Test",
                "channelRef": {"name": channel},
                "subject": f"flow notification {name}",
                "message": f"Sent by the {stem} flow.",
            },
        }
        return create(self.kube, self.namespace, "notificationevents", body)

    def wait_event_phase(self, name: str, phase: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            body = get(self.kube, self.namespace, "notificationevents", name)
            return body if (body.get("status") or {}).get("phase") == phase else None

        return wait_for(f"NotificationEvent {name} {phase}", probe, self.timeout)

    def notification(self, url: str, received: Callable[[], Sequence[bytes]]) -> dict[str, Any]:
        """A NotificationEvent is delivered to the webhook at ``url``; ``received`` lists request bodies."""
        channel = self.webhook_channel(url)
        event = self.event(channel)
        name = event["metadata"]["name"]
        sent = self.wait_event_phase(name, "Sent")
        subject = f"flow notification {name}".encode()
        wait_for(
            f"the webhook to receive {name}",
            lambda: any(subject in body for body in received()),
            self.timeout,
        )
        return sent

    def dead_letter(self, failing_url: str) -> dict[str, Any]:
        """Undeliverable after its attempts, an event is Dead and labelled for the dead-letter queue.

        Expects an operator with few attempts and short retries (``CERTCTL_NOTIFICATION_MAX_ATTEMPTS``).
        """
        channel = self.webhook_channel(failing_url)
        event = self.event(channel, "undeliverable")
        name = event["metadata"]["name"]
        dead = self.wait_event_phase(name, "Dead")

        def labelled() -> dict[str, Any] | None:
            body = get(self.kube, self.namespace, "notificationevents", name)
            return body if (body["metadata"].get("labels") or {}).get(LABEL_PHASE) == "dead" else None

        wait_for(f"{name} labelled {LABEL_PHASE}=dead", labelled, self.timeout)
        listed = self.objects.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "notificationevents", label_selector=f"{LABEL_PHASE}=dead"
        )
        assert name in {item["metadata"]["name"] for item in listed["items"]}
        return dead

    def retention(self, url: str, received: Callable[[], Sequence[bytes]]) -> float:
        """A delivered event is deleted once its retention passed; returns seconds from Sent to gone.

        Expects an operator with a short ``CERTCTL_NOTIFICATION_SENT_RETENTION``.
        """
        sent = self.notification(url, received)
        name = sent["metadata"]["name"]
        seen_sent = time.monotonic()

        def gone() -> bool:
            try:
                get(self.kube, self.namespace, "notificationevents", name)
            except ApiException as error:
                if error.status == 404:
                    return True
                raise
            return False

        wait_for(f"NotificationEvent {name} deleted after its retention", gone, self.timeout)
        return time.monotonic() - seen_sent


def every_flow(
    flows: Flows,
    receiver_url: str,
    received: Callable[[], Sequence[bytes]],
    failing_url: str,
    *,
    cluster: bool = True,
) -> None:
    """Every flow once, in an order that touches each permission of the operator early.

    Needs an operator with ``CERTCTL_NOTIFICATION_MAX_ATTEMPTS=1`` and a short
    ``CERTCTL_NOTIFICATION_SENT_RETENTION`` (see :data:`EVERY_FLOW_SETTINGS`).
    """
    if cluster:
        flows.cluster_issued()
    issuer = flows.self_signed_issuer()
    flows.notification(receiver_url, received)
    channel = flows.webhook_channel(receiver_url)
    flows.announced(channel, issuer)
    flows.renewal(issuer)
    flows.revocation()
    flows.dead_letter(failing_url)
    flows.retention(receiver_url, received)
    flows.deletion(issuer)


EVERY_FLOW_SETTINGS = {
    "CERTCTL_NOTIFICATION_MAX_ATTEMPTS": "1",
    "CERTCTL_NOTIFICATION_SENT_RETENTION": "3s",
}
"""Operator settings :func:`every_flow` needs (on top of the fast test timings)."""


__all__ = ["EVERY_FLOW_SETTINGS", "Flows", "every_flow"]
