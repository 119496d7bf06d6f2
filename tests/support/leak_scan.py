"""Looking for secrets in what the operator produced: logs, Events, status, metrics.

Needles are the forms a secret can take once it escapes (a key's PEM, its
base64 as Secret data holds it, a slice of the PEM body that encodes only
private-key bytes, the private value in hex; a token as is and in base64);
haystacks are named texts. :func:`operator_output` collects the haystacks of
one namespace after a run.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client

GROUP, VERSION = "certctl.io", "v1alpha1"
NAMESPACED = ("issuers", "managedcertificates", "revocations", "notificationchannels", "notificationevents")


def key_needles(label: str, pem: str) -> dict[str, str]:
    """Forms of a private key to look for: the PEM, its base64 (as Secret data holds it), a slice
    of the PEM body that encodes only private-key bytes, and that private value in hex."""
    body = "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))
    der = base64.b64decode(body)
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey), f"{label} is not an EC key"
    size = (key.curve.key_size + 7) // 8
    scalar = key.private_numbers().private_value.to_bytes(size, "big")
    offset = der.index(scalar)
    # Base64 characters from here on encode bytes of the private value only.
    start = (offset * 4 + 2) // 3 + 1
    secret_slice = body[start : start + 32]
    assert len(secret_slice) == 32 and (start + 32) * 3 // 4 <= offset + size
    return {
        f"{label} (PEM)": pem.strip(),
        f"{label} (base64 of the PEM)": base64.b64encode(pem.encode()).decode(),
        f"{label} (base64 of the PEM, a slice)": base64.b64encode(pem.encode()).decode()[60:92],
        f"{label} (32 characters of the PEM body)": secret_slice,
        f"{label} (private value in hex)": scalar.hex(),
    }


def text_needles(label: str, value: str) -> dict[str, str]:
    return {f"{label}": value, f"{label} (base64)": base64.b64encode(value.encode()).decode()}


def variants(haystack: str) -> tuple[str, ...]:
    """The text as is, and with line breaks (raw or JSON-escaped) removed, so a PEM slice is found."""
    return haystack, haystack.replace("\n", ""), haystack.replace("\\n", "").replace("\n", "")


def leaks(needles: Mapping[str, str], haystacks: Mapping[str, str]) -> list[str]:
    found = []
    for where, haystack in haystacks.items():
        forms = variants(haystack)
        for what, needle in needles.items():
            flat = needle.replace("\n", "")
            if any(needle in form or flat in form for form in forms):
                found.append(f"{what} in {where}")
    return found


def operator_output(kube: Any, namespace: str, logs: str, metrics: str) -> dict[str, str]:
    """Everything the operator wrote or showed about ``namespace``: its log, /metrics, Events, status."""
    haystacks: dict[str, str] = {"the operator's log": logs, "/metrics": metrics}
    core = client.CoreV1Api(kube)
    for where in (namespace, "default"):
        for event in core.list_namespaced_event(where).items:
            haystacks[f"Event {where}/{event.metadata.name}"] = json.dumps(event.to_dict(), default=str)
    objects = client.CustomObjectsApi(kube)
    for plural in NAMESPACED:
        for item in objects.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]:
            name = f"{item['kind']} {item['metadata']['name']}"
            haystacks[f"status of {name}"] = json.dumps(item.get("status") or {})
            if plural == "notificationevents":
                haystacks[f"spec of {name}"] = json.dumps(item["spec"])
    for item in objects.list_cluster_custom_object(GROUP, VERSION, "clusterissuers")["items"]:
        haystacks[f"status of ClusterIssuer {item['metadata']['name']}"] = json.dumps(
            item.get("status") or {}
        )
    return haystacks
