"""Helpers for revocation tests against the local control plane and a real operator.

They create CA key pairs, issuers and ManagedCertificates, wait for conditions
with deadlines, and act as the outside world does: fetch CRLs over HTTP, ask
the OCSP responder, and run the ``openssl`` command line on the results.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certctl_operator.pki import KeyAlgorithm, KeySpec, create_self_signed_ca
from certctl_operator.policy.revocation import normalize_serial

GROUP, VERSION = "certctl.io", "v1alpha1"
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except (ApiException, httpx.HTTPError) as error:  # the next poll may succeed
            value, last = None, error
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)  # polling interval of a deadline-bounded wait


# --------------------------------------------------------------------------- objects


def custom(kube: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube)


def get(kube: Any, namespace: str | None, plural: str, name: str) -> dict[str, Any]:
    if namespace is None:
        return dict(custom(kube).get_cluster_custom_object(GROUP, VERSION, plural, name))
    return dict(custom(kube).get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name))


def create(kube: Any, namespace: str | None, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
    full = {"apiVersion": f"{GROUP}/{VERSION}", **body}
    if namespace is None:
        return dict(custom(kube).create_cluster_custom_object(GROUP, VERSION, plural, full))
    return dict(custom(kube).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, full))


def condition(body: Mapping[str, Any], type_: str = "Ready") -> Mapping[str, Any]:
    for item in (body.get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return {}


def make_ca_secret(kube: Any, namespace: str, name: str, common_name: str) -> str:
    """A kubernetes.io/tls Secret with a new ECDSA CA; returns the CA certificate PEM."""
    ca = create_self_signed_ca(
        common_name,
        KeySpec(KeyAlgorithm.ECDSA, 256),
        timedelta(days=30),
        datetime.now(UTC) - timedelta(hours=1),
    )
    client.CoreV1Api(kube).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name),
            type="kubernetes.io/tls",
            string_data={"tls.crt": ca.certificate_pem, "tls.key": ca.private_key_pem},
        ),
    )
    return ca.certificate_pem


def issuer_body(
    name: str, kind: str = "Issuer", *, ca_secret: str | None, base_url: str | None, **spec: Any
) -> dict[str, Any]:
    full: dict[str, Any] = {"ca": {"secretName": ca_secret}} if ca_secret else {"selfSigned": {}}
    if base_url:
        full["publicBaseURL"] = base_url
    full.update(spec)
    return {"kind": kind, "metadata": {"name": name}, "spec": full}


def certificate_body(name: str, issuer: str, kind: str = "Issuer", **spec: Any) -> dict[str, Any]:
    full: dict[str, Any] = {
        "secretName": f"{name}-tls",
        "dnsNames": [f"{name}.example.test"],
        "duration": "24h",
        "privateKey": {"algorithm": "ECDSA"},
        "issuerRef": {"name": issuer, "kind": kind},
    }
    full.update(spec)
    return {"kind": "ManagedCertificate", "metadata": {"name": name}, "spec": full}


def revocation_body(name: str, certificate: str, reason: str, reissue: bool = True) -> dict[str, Any]:
    return {
        "kind": "Revocation",
        "metadata": {"name": name},
        "spec": {"certificateRef": {"name": certificate}, "reason": reason, "reissue": reissue},
    }


def wait_ready(
    kube: Any, namespace: str | None, plural: str, name: str, timeout: float = 30.0
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = get(kube, namespace, plural, name)
        return body if condition(body).get("status") == "True" else None

    return wait_for(f"{plural}/{name} Ready", probe, timeout)


def wait_phase(kube: Any, namespace: str, name: str, phase: str, timeout: float = 30.0) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = get(kube, namespace, "revocations", name)
        return body if (body.get("status") or {}).get("phase") == phase else None

    return wait_for(f"Revocation {name} {phase}", probe, timeout)


@dataclass(frozen=True)
class Issued:
    """A certificate as its Secret holds it."""

    serial: str
    revision: int
    leaf_pem: str
    ca_pem: str

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.leaf_pem.encode())

    @property
    def ca(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.ca_pem.encode())


def issued(kube: Any, namespace: str, name: str) -> Issued:
    """The certificate now in ManagedCertificate ``name``'s Secret."""
    body = get(kube, namespace, "managedcertificates", name)
    secret = client.CoreV1Api(kube).read_namespaced_secret(body["spec"]["secretName"], namespace)
    chain = base64.b64decode(secret.data["tls.crt"]).decode()
    leaf = x509.load_pem_x509_certificates(chain.encode())[0]
    return Issued(
        serial=normalize_serial(leaf.serial_number),
        revision=int((body.get("status") or {}).get("revision") or 0),
        leaf_pem=leaf.public_bytes(serialization.Encoding.PEM).decode(),
        ca_pem=base64.b64decode(secret.data["ca.crt"]).decode(),
    )


def wait_issued(
    kube: Any, namespace: str, name: str, *, after: str | None = None, timeout: float = 30.0
) -> Issued:
    """Wait until ``name`` is Ready with a certificate other than serial ``after``."""

    def probe() -> Issued | None:
        body = get(kube, namespace, "managedcertificates", name)
        status = body.get("status") or {}
        if condition(body).get("status") != "True" or not status.get("serialNumber"):
            return None
        if after is not None and status["serialNumber"] == after:
            return None
        current = issued(kube, namespace, name)
        return current if current.serial == status["serialNumber"] else None

    return wait_for(f"ManagedCertificate {name} issued", probe, timeout)


def k8s_events(kube: Any, namespace: str, involved: str, reason: str) -> list[Any]:
    events = client.CoreV1Api(kube).list_namespaced_event(namespace).items
    return [e for e in events if e.involved_object.name == involved and e.reason == reason]


# --------------------------------------------------------------------------- CRL and OCSP, from outside


def fetch_crl(base_url: str, segment: str, issuer: str) -> httpx.Response:
    response = httpx.get(f"{base_url}/crl/{segment}/{issuer}.crl", timeout=5.0)
    response.raise_for_status()
    return response


def crl_number(der: bytes) -> int:
    crl = x509.load_der_x509_crl(der)
    return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)


def crl_reasons(der: bytes) -> dict[int, str]:
    """serial -> reason name as the CRL entry states it (``unspecified`` when it has no reasonCode)."""
    reasons: dict[int, str] = {}
    for revoked in x509.load_der_x509_crl(der):
        try:
            flag = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            flag = x509.ReasonFlags.unspecified
        reasons[revoked.serial_number] = flag.value
    return reasons


def wait_crl(
    base_url: str, segment: str, issuer: str, ready: Callable[[bytes], bool], timeout: float = 30.0
) -> bytes:
    def probe() -> bytes | None:
        response = httpx.get(f"{base_url}/crl/{segment}/{issuer}.crl", timeout=5.0)
        return response.content if response.status_code == 200 and ready(response.content) else None

    return wait_for(f"a CRL of {segment}/{issuer} that fits", probe, timeout)


def ask_ocsp(
    url: str, certificate: x509.Certificate, ca: x509.Certificate, nonce: bytes | None = None
) -> ocsp.OCSPResponse:
    """POST an OCSP request as clients do (SHA-1 CertID) and parse the answer."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, ca, hashes.SHA1())  # noqa: S303
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    der = builder.build().public_bytes(serialization.Encoding.DER)
    response = httpx.post(url, content=der, headers={"Content-Type": "application/ocsp-request"}, timeout=5.0)
    response.raise_for_status()
    return ocsp.load_der_ocsp_response(response.content)


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition, or None."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        metric_name, _, label_text = sample.partition("{")
        if metric_name != name:
            continue
        present = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if present == wanted:
            return float(value)
    return None


def json_log_lines(text: str, logger: str) -> list[dict[str, Any]]:
    """The JSON log records of ``logger`` in an operator's log."""
    records = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("logger") == logger:
            records.append(record)
    return records
