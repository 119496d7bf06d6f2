"""Leader election on a ``coordination.k8s.io/v1`` Lease: reading and writing it.

The rules (when to take over, when to give up) are in
:mod:`certctl_operator.policy.leadership`; this module applies them to the
Lease in the operator's namespace. The RBAC it needs: ``get`` and ``update``
on that one Lease, ``create`` on Leases in the namespace (creation cannot be
restricted by name).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.policy import leadership as policy
from certctl_operator.policy.leadership import LeaseAction, LeaseRecord, LeaseTimings, Observation

logger = logging.getLogger("certctl.leader-election")

POD_NAME_ENV = "POD_NAME"
RELEASE_TIMEOUT = 5.0
"""Seconds a clean shutdown spends at most on handing the Lease back."""

# What a failed round of the election may raise; anything else is a bug and propagates.
_API_ERRORS = (ApiException, aiohttp.ClientError, TimeoutError, OSError)


def candidate_identity(environ: Mapping[str, str] | None = None) -> str:
    """This process's name in the Lease: the Pod's name (downward API), else ``<hostname>_<pid>``."""
    env = os.environ if environ is None else environ
    pod = env.get(POD_NAME_ENV, "").strip()
    if pod:
        return pod
    return f"{socket.gethostname()}_{os.getpid()}"


def _micro_time(value: datetime | None) -> str | None:
    """A Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def record_of(lease: Any) -> LeaseRecord:
    """The election's view of a ``V1Lease``."""
    spec = lease.spec
    if spec is None:
        return LeaseRecord()
    return LeaseRecord(
        holder=spec.holder_identity or "",
        lease_duration_seconds=spec.lease_duration_seconds,
        acquire_time=_aware(spec.acquire_time),
        renew_time=_aware(spec.renew_time),
        transitions=spec.lease_transitions or 0,
    )


def lease_body(
    namespace: str, name: str, record: LeaseRecord, resource_version: str | None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/part-of": "certctl", "app.kubernetes.io/component": "leader-election"},
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": record.holder or None,
            "leaseDurationSeconds": record.lease_duration_seconds,
            "acquireTime": _micro_time(record.acquire_time),
            "renewTime": _micro_time(record.renew_time),
            "leaseTransitions": record.transitions,
        },
    }


class LeadershipLost(Exception):
    """The Lease could not be renewed in time, or someone else holds it now."""


@dataclass
class LeaderElector:
    """One candidate for the operator's Lease."""

    api: Any
    namespace: str
    name: str
    identity: str
    timings: LeaseTimings
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    monotonic: Callable[[], float] = field(default=time.monotonic)
    leases: Any = None
    """The ``CoordinationV1Api`` calls (default: on ``api``)."""
    observation: Observation | None = field(default=None, init=False)
    last_renewed: float | None = field(default=None, init=False)
    """Monotonic instant of the last successful write of this candidate's holding record."""
    last_contact: float | None = field(default=None, init=False)
    """Monotonic instant of the last successful read or write of the Lease (a live API server)."""

    def __post_init__(self) -> None:
        if self.leases is None:
            self.leases = client.CoordinationV1Api(self.api)

    @property
    def is_leader(self) -> bool:
        return self.observation is not None and self.observation.record.holder == self.identity

    @property
    def holder(self) -> str:
        """Who holds the Lease as last read ("" when nobody, or not read yet)."""
        return self.observation.record.holder if self.observation is not None else ""

    def able_to_take_over(self) -> bool:
        """The readiness of a standby: it reached the API server within the last lease duration."""
        return policy.able_to_take_over(self.last_contact, self.monotonic(), self.timings)

    async def _read(self) -> Observation | None:
        try:
            lease = await self.leases.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                self.last_contact = self.monotonic()
                self.observation = None
                return None
            raise
        self.last_contact = self.monotonic()
        self.observation = policy.observe(
            self.observation, record_of(lease), lease.metadata.resource_version, self.wall_clock()
        )
        return self.observation

    async def _write(self, action: LeaseAction, record: LeaseRecord) -> None:
        if action is LeaseAction.CREATE:
            body = lease_body(self.namespace, self.name, record, None)
            written = await self.leases.create_namespaced_lease(self.namespace, body)
        else:
            version = self.observation.resource_version if self.observation else None
            body = lease_body(self.namespace, self.name, record, version)
            written = await self.leases.replace_namespaced_lease(self.name, self.namespace, body)
        self.observation = policy.observe(
            self.observation, record_of(written), written.metadata.resource_version, self.wall_clock()
        )

    async def try_acquire_or_renew(self) -> policy.LeaseDecision:
        """One round: read the Lease, decide, write. Raises on API errors; 409 means someone else won."""
        started = self.monotonic()
        observation = await self._read()
        decision = policy.decide(observation, self.identity, self.wall_clock(), self.timings)
        if decision.record is not None:
            try:
                await self._write(decision.action, decision.record)
            except ApiException as error:
                if error.status == 409:
                    # Another candidate wrote first: read again next round.
                    return policy.LeaseDecision(
                        LeaseAction.STANDBY, None, self.timings.retry_period, "another candidate wrote first"
                    )
                raise
            self.last_renewed = started
        return decision

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this candidate holds the Lease (True) or ``stop`` is set (False)."""
        announced = ""
        while not stop.is_set():
            wait = self.timings.retry_period.total_seconds()
            try:
                async with asyncio.timeout(wait + self.timings.renew_deadline.total_seconds()):
                    decision = await self.try_acquire_or_renew()
            except _API_ERRORS as error:
                logger.warning(
                    "cannot read or write Lease %s/%s: %s", self.namespace, self.name, _describe(error)
                )
            else:
                if decision.action is not LeaseAction.STANDBY:
                    logger.info(
                        "became the leader (Lease %s/%s, identity %s): %s",
                        self.namespace,
                        self.name,
                        self.identity,
                        decision.reason,
                    )
                    return True
                if decision.reason != announced:
                    logger.info("standing by: %s", decision.reason)
                    announced = decision.reason
                wait = decision.wait.total_seconds()
            # Wake up early when asked to stop; otherwise look again after the wait.
            try:
                async with asyncio.timeout(max(wait, 0.01)):
                    await stop.wait()
            except TimeoutError:
                pass
        return False

    async def hold(self) -> None:
        """Renew every retry period; raise :class:`LeadershipLost` when that is no longer possible.

        Never returns normally: cancel the task to stop renewing.
        """
        period = self.timings.retry_period.total_seconds()
        deadline = self.timings.renew_deadline.total_seconds()
        while True:
            await asyncio.sleep(period)  # the renewal cadence, not a synchronisation
            last = self.last_renewed if self.last_renewed is not None else self.monotonic()
            remaining = last + deadline - self.monotonic()
            try:
                async with asyncio.timeout(max(remaining, 0.0)):
                    decision = await self.try_acquire_or_renew()
            except _API_ERRORS as error:
                logger.warning("cannot renew Lease %s/%s: %s", self.namespace, self.name, _describe(error))
            else:
                if decision.action is not LeaseAction.STANDBY:
                    continue  # renewed (or, after someone deleted or freed it, taken again)
                holder = self.observation.record.holder if self.observation else ""
                if holder and holder != self.identity:
                    raise LeadershipLost(f"{holder} holds Lease {self.namespace}/{self.name} now")
            if policy.renew_deadline_passed(last, self.monotonic(), self.timings):
                raise LeadershipLost(
                    f"could not renew Lease {self.namespace}/{self.name} for {self.timings.renew_deadline}"
                )

    def stop_deadline(self) -> float:
        """The monotonic instant by which this former leader must have stopped acting."""
        last = self.last_renewed if self.last_renewed is not None else self.monotonic()
        return policy.stop_deadline(last, self.timings)

    async def release(self) -> bool:
        """Hand the Lease back, if this candidate still holds it, so a standby takes over at once."""
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT):
                observation = await self._read()
                if observation is None or observation.record.holder != self.identity:
                    return False
                record = policy.released(observation.record, self.wall_clock())
                body = lease_body(self.namespace, self.name, record, observation.resource_version)
                await self.leases.replace_namespaced_lease(self.name, self.namespace, body)
        except _API_ERRORS as error:
            logger.warning(
                "could not release Lease %s/%s (a standby takes over when it expires): %s",
                self.namespace,
                self.name,
                _describe(error),
            )
            return False
        logger.info("released Lease %s/%s", self.namespace, self.name)
        return True


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return f"API error {error.status} {error.reason or ''}".strip()
    if isinstance(error, TimeoutError):
        return "timed out"
    return f"{type(error).__name__}: {error}"


__all__ = ["LeaderElector", "LeadershipLost", "candidate_identity", "lease_body", "record_of"]
