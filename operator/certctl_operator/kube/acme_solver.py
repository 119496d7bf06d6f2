"""Creating and deleting the Pods and Services that answer HTTP-01 challenges.

The manifests come from :mod:`certctl_operator.acme.http01_solver`. Creation
is idempotent, so a restarted operator resuming an order keeps the objects
it finds; whatever is left over (an order abandoned by a crash) is deleted
by :meth:`SolverPods.remove_all` once the certificate's order ends, or by
the garbage collector with the certificate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.acme.http01_solver import (
    SolverOwner,
    SolverPodSettings,
    pod_name,
    service_name,
    solver_pod,
    solver_service,
)
from certctl_operator.api.issuer import ACMEHTTP01SolverPod
from certctl_operator.api.metadata_keys import LABEL_ACME_HTTP01_SOLVER

logger = logging.getLogger("certctl.acme")


async def _create(create: Any, namespace: str, body: dict[str, Any]) -> None:
    try:
        await create(namespace, body)
    except ApiException as error:
        # The same name is the same challenge (the token is part of a Pod's name): keep it.
        if error.status != 409:
            raise


async def _delete(delete: Any, name: str, namespace: str) -> None:
    try:
        await delete(name, namespace)
    except ApiException as error:
        if error.status != 404:
            raise


class SolverNotReady(Exception):
    """A solver Pod did not become Ready in time."""


def _ready(pod: Any) -> bool:
    conditions = (pod.status.conditions if pod.status is not None else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _pod_situation(pod: Any) -> str:
    """What the Pod is stuck on, as far as its status says (a waiting container's reason)."""
    status = pod.status
    if status is None:
        return "no status yet"
    for container in status.container_statuses or []:
        waiting = container.state.waiting if container.state is not None else None
        if waiting is not None and waiting.reason:
            return f"{status.phase}, container {container.name} waiting: {waiting.reason}"
    return f"phase {status.phase or 'unknown'}{'' if status.node_name else ', not scheduled'}"


class SolverPods:
    """The solver objects of one certificate."""

    def __init__(
        self,
        api: Any,
        owner: SolverOwner,
        defaults: SolverPodSettings,
        *,
        ready_timeout: float = 120.0,
        poll_interval: float = 1.0,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.owner = owner
        self.defaults = defaults
        self.ready_timeout = ready_timeout
        self.poll_interval = poll_interval
        self.unready: list[str] = []
        """Pods published and not yet seen Ready."""

    async def publish(
        self, pod: ACMEHTTP01SolverPod, identifier: str, token: str, key_authorization: str
    ) -> None:
        """Create the Service and the Pod answering ``token`` for ``identifier``."""
        settings = self.defaults.overridden_by(pod)
        namespace = self.owner.namespace
        wanted = pod_name(self.owner.name, identifier, token)
        # A Pod of an earlier challenge for this name would answer through the same Service.
        selector = f"{LABEL_ACME_HTTP01_SOLVER}={service_name(self.owner.name, identifier)}"
        existing = await self.core.list_namespaced_pod(namespace, label_selector=selector)
        for item in existing.items:
            if item.metadata.name != wanted:
                await _delete(self.core.delete_namespaced_pod, item.metadata.name, namespace)
        await _create(
            self.core.create_namespaced_service, namespace, solver_service(self.owner, identifier, settings)
        )
        body = solver_pod(self.owner, identifier, token, key_authorization, settings)
        await _create(self.core.create_namespaced_pod, namespace, body)
        if wanted not in self.unready:
            self.unready.append(wanted)
        logger.info(
            "HTTP-01 solver Pod %s/%s for %s, behind Service %s",
            namespace,
            wanted,
            identifier,
            service_name(self.owner.name, identifier),
        )

    async def wait_ready(self) -> None:
        """Return once every Pod published is Ready (its probe gets the answer); SolverNotReady."""
        deadline = time.monotonic() + self.ready_timeout
        namespace = self.owner.namespace
        while self.unready:
            for name in list(self.unready):
                pod = await self.core.read_namespaced_pod(name, namespace)
                if _ready(pod):
                    self.unready.remove(name)
                elif time.monotonic() >= deadline:
                    raise SolverNotReady(
                        f"HTTP-01 solver Pod {namespace}/{name} is not Ready after "
                        f"{self.ready_timeout:.0f}s ({_pod_situation(pod)})"
                    )
            if self.unready:
                await asyncio.sleep(self.poll_interval)

    async def withdraw(self, identifier: str, token: str) -> None:
        """Delete the Pod and the Service of a settled challenge."""
        namespace = self.owner.namespace
        if pod_name(self.owner.name, identifier, token) in self.unready:
            self.unready.remove(pod_name(self.owner.name, identifier, token))
        await _delete(
            self.core.delete_namespaced_pod, pod_name(self.owner.name, identifier, token), namespace
        )
        await _delete(
            self.core.delete_namespaced_service, service_name(self.owner.name, identifier), namespace
        )

    async def remove_all(self) -> int:
        """Delete every solver Pod and Service of the certificate; how many there were."""
        namespace = self.owner.namespace
        removed = 0
        pods = await self.core.list_namespaced_pod(namespace, label_selector=self.owner.selector)
        for pod in pods.items:
            metadata: Any = pod.metadata  # the stubs do not know deletionTimestamp may be absent
            if metadata.deletion_timestamp is not None:
                continue  # withdrawn already, still shutting down
            await _delete(self.core.delete_namespaced_pod, metadata.name, namespace)
            removed += 1
        services = await self.core.list_namespaced_service(namespace, label_selector=self.owner.selector)
        for service in services.items:
            await _delete(self.core.delete_namespaced_service, service.metadata.name, namespace)
            removed += 1
        return removed
