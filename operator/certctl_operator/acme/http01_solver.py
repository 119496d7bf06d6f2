"""The Pod and Service that answer one HTTP-01 challenge (an issuer's ``http01: {pod: {...}}``).

Plain manifests (camelCase dicts as the API server takes them); creating and
deleting them is :mod:`certctl_operator.kube.acme_solver`'s part.

Per certificate and name there is one Service, named after both so it stays
the same from one order to the next (an Ingress or Gateway route can point
at it), selecting the Pod of the challenge being answered now. The Pod's
name also carries the token, so a Pod of an abandoned order is never taken
for the current one. Both are owned by the ManagedCertificate: deleting it
deletes them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.acme.http01_server import CHALLENGE_PREFIX, DEFAULT_PORT
from certctl_operator.api.issuer import ACMEHTTP01SolverPod
from certctl_operator.api.metadata_keys import (
    ANNOTATION_ACME_IDENTIFIER,
    ANNOTATION_ACME_TOKEN,
    LABEL_ACME_HTTP01_SOLVER,
    LABEL_MANAGED_BY_CERTIFICATE,
)

SOLVER_COMMAND = "certctl-operator"
SOLVER_SUBCOMMAND = "acme-solver"
CONTAINER_NAME = "solver"
CONTAINER_PORT = DEFAULT_PORT
SERVICE_PORT = 80
PORT_NAME = "http"
RUN_AS = 65532
"""The unprivileged UID/GID of the operator image."""

APP_LABEL = "app.kubernetes.io/name"
APP_NAME = "certctl-acme-http01-solver"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "certctl-operator"

_HASH_LENGTH = 10
_READABLE_LENGTH = 38
_NOT_NAME = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class SolverPodSettings:
    """What a solver Pod runs with: an issuer's http01.pod over the operator's defaults."""

    image: str
    service_type: str = "ClusterIP"
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()

    def overridden_by(self, pod: ACMEHTTP01SolverPod) -> SolverPodSettings:
        """These defaults with each field ``pod`` sets taking its place."""
        resources: Mapping[str, Mapping[str, str]] = self.resources
        if pod.resources is not None:
            resources = {k: v for k, v in pod.resources.dump().items() if v is not None}
        return SolverPodSettings(
            image=pod.image or self.image,
            service_type=pod.service_type.value if pod.service_type is not None else self.service_type,
            resources=resources,
            node_selector=pod.node_selector if pod.node_selector is not None else self.node_selector,
            tolerations=(
                [t.dump() for t in pod.tolerations] if pod.tolerations is not None else self.tolerations
            ),
        )


@dataclass(frozen=True)
class SolverOwner:
    """The ManagedCertificate the solver objects belong to."""

    namespace: str
    name: str
    uid: str

    @property
    def label_value(self) -> str:
        """The certificate's name as a label value (hashed when over 63 characters)."""
        if len(self.name) <= 63:
            return self.name
        return f"{self.name[:52]}-{_digest(self.name)}"

    @property
    def selector(self) -> str:
        """Label selector of every solver object of this certificate."""
        return f"{APP_LABEL}={APP_NAME},{LABEL_MANAGED_BY_CERTIFICATE}={self.label_value}"

    def reference(self) -> dict[str, Any]:
        # No blockOwnerDeletion: setting it needs update rights on the certificate's finalizers.
        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "ManagedCertificate",
            "name": self.name,
            "uid": self.uid,
            "controller": True,
        }


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_LENGTH]


def service_name(certificate: str, identifier: str) -> str:
    """``acme-<name with dashes>-<hash>``: a DNS label, the same for every order of this name."""
    readable = _NOT_NAME.sub("-", identifier.lower()).strip("-")[:_READABLE_LENGTH].strip("-")
    digest = _digest(f"{certificate}/{identifier}")
    return f"acme-{readable}-{digest}" if readable else f"acme-{digest}"


def pod_name(certificate: str, identifier: str, token: str) -> str:
    """The Service's name and a hash of the token: one Pod per challenge."""
    return f"{service_name(certificate, identifier)}-{_digest(token)[:8]}"


def _metadata(owner: SolverOwner, name: str, identifier: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": {
            APP_LABEL: APP_NAME,
            MANAGED_BY_LABEL: MANAGED_BY,
            LABEL_MANAGED_BY_CERTIFICATE: owner.label_value,
        },
        "annotations": {ANNOTATION_ACME_IDENTIFIER: identifier},
        "ownerReferences": [owner.reference()],
    }


def solver_args(token: str, key_authorization: str) -> list[str]:
    """The arguments of ``certctl-operator`` in the solver container.

    Values are joined to their option with ``=``: a token is base64url and may begin with ``-``,
    which a separate argument would have parsed as an option of its own.
    """
    return [
        SOLVER_SUBCOMMAND,
        f"--port={CONTAINER_PORT}",
        f"--token={token}",
        f"--key-authorization={key_authorization}",
    ]


def solver_pod(
    owner: SolverOwner, identifier: str, token: str, key_authorization: str, settings: SolverPodSettings
) -> dict[str, Any]:
    """The Pod answering ``token`` for ``identifier``; it meets the restricted Pod Security Standard."""
    service = service_name(owner.name, identifier)
    metadata = _metadata(owner, pod_name(owner.name, identifier, token), identifier)
    metadata["labels"][LABEL_ACME_HTTP01_SOLVER] = service
    metadata["annotations"][ANNOTATION_ACME_TOKEN] = token
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [SOLVER_COMMAND],
        "args": solver_args(token, key_authorization),
        "ports": [{"name": PORT_NAME, "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": CHALLENGE_PREFIX + token, "port": PORT_NAME},
            "periodSeconds": 2,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if settings.resources:
        container["resources"] = {k: dict(v) for k, v in settings.resources.items()}
    spec: dict[str, Any] = {
        "restartPolicy": "Always",
        # The solver talks to nobody: no API credentials, no Service environment variables.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 5,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        spec["tolerations"] = [dict(t) for t in settings.tolerations]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def solver_service(owner: SolverOwner, identifier: str, settings: SolverPodSettings) -> dict[str, Any]:
    """The Service of port 80 in front of the solver Pod of ``identifier``."""
    name = service_name(owner.name, identifier)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(owner, name, identifier),
        "spec": {
            "type": settings.service_type,
            "selector": {LABEL_ACME_HTTP01_SOLVER: name},
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }
