"""The Lease elector against an in-memory stand-in for the Lease API (optimistic concurrency included).

The real API server is exercised in tests/integration/test_high_availability.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.kube.leader_election import (
    LeaderElector,
    LeadershipLost,
    candidate_identity,
    lease_body,
    record_of,
)
from certctl_operator.policy.leadership import LeaseRecord, LeaseTimings

FAST = LeaseTimings(
    lease_duration=timedelta(seconds=1),
    renew_deadline=timedelta(seconds=0.4),
    retry_period=timedelta(seconds=0.1),
)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class FakeLeases:
    """``read/create/replace_namespaced_lease`` over one stored body, with resourceVersions and 409s."""

    def __init__(self) -> None:
        self.body: dict[str, Any] | None = None
        self.versions = itertools.count(1)
        self.writes: list[tuple[str, str | None]] = []  # (verb, holder)
        self.broken = False

    def _lease(self) -> Any:
        assert self.body is not None
        spec = self.body["spec"]
        return client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=self.body["metadata"]["name"],
                namespace=self.body["metadata"]["namespace"],
                resource_version=self.body["metadata"]["resourceVersion"],
            ),
            spec=client.V1LeaseSpec(
                holder_identity=spec.get("holderIdentity"),
                lease_duration_seconds=spec.get("leaseDurationSeconds"),
                acquire_time=_time(spec.get("acquireTime")),
                renew_time=_time(spec.get("renewTime")),
                lease_transitions=spec.get("leaseTransitions"),
            ),
        )

    def _check(self) -> None:
        if self.broken:
            raise ApiException(status=503, reason="Service Unavailable")

    async def read_namespaced_lease(self, name: str, namespace: str) -> Any:
        self._check()
        if self.body is None:
            raise ApiException(status=404, reason="Not Found")
        return self._lease()

    async def create_namespaced_lease(self, namespace: str, body: dict[str, Any]) -> Any:
        self._check()
        if self.body is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        assert "resourceVersion" not in body["metadata"]
        return self._store("create", body)

    async def replace_namespaced_lease(self, name: str, namespace: str, body: dict[str, Any]) -> Any:
        self._check()
        assert self.body is not None
        if body["metadata"].get("resourceVersion") != self.body["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        return self._store("replace", body)

    def _store(self, verb: str, body: dict[str, Any]) -> Any:
        self.body = {**body, "metadata": {**body["metadata"], "resourceVersion": str(next(self.versions))}}
        self.writes.append((verb, body["spec"]["holderIdentity"]))
        return self._lease()

    @property
    def holder(self) -> str | None:
        return None if self.body is None else self.body["spec"]["holderIdentity"]


def elector(leases: FakeLeases, identity: str, timings: LeaseTimings = FAST) -> LeaderElector:
    return LeaderElector(None, "certctl-system", "certctl-operator", identity, timings, leases=leases)


async def until(what: str, predicate: Any, seconds: float = 2.0) -> None:
    """Wait for ``predicate()`` with a deadline (polling, as nothing signals these states)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def acquire_within(candidate: LeaderElector, seconds: float) -> bool:
    stop = asyncio.Event()
    try:
        async with asyncio.timeout(seconds):
            return await candidate.acquire(stop)
    except TimeoutError:
        return False


# --------------------------------------------------------------------------- the Lease object


def test_the_lease_body_round_trips_with_micro_times() -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    record = LeaseRecord("pod-a", 15, now, now + timedelta(seconds=2, microseconds=5), 4)
    body = lease_body("certctl-system", "certctl-operator", record, "42")
    spec = body["spec"]
    assert spec["acquireTime"] == "2026-03-01T12:00:00.000000Z"
    assert spec["renewTime"] == "2026-03-01T12:00:02.000005Z"
    assert body["metadata"]["resourceVersion"] == "42"
    assert body["metadata"]["labels"]["app.kubernetes.io/part-of"] == "certctl"
    leases = FakeLeases()
    leases.body = body
    assert record_of(leases._lease()) == record
    # A released Lease has no holder at all.
    free = lease_body("ns", "l", LeaseRecord("", 1, now, now, 4), None)
    assert free["spec"]["holderIdentity"] is None
    assert "resourceVersion" not in free["metadata"]


def test_a_lease_without_spec_is_free() -> None:
    assert record_of(client.V1Lease(metadata=client.V1ObjectMeta(name="x"))) == LeaseRecord()


def test_identity_is_the_pod_name_else_host_and_pid() -> None:
    assert candidate_identity({"POD_NAME": "certctl-operator-7d9c-abcde"}) == "certctl-operator-7d9c-abcde"
    fallback = candidate_identity({})
    assert fallback.startswith(socket.gethostname() + "_")
    assert fallback.rsplit("_", 1)[1].isdigit()


# --------------------------------------------------------------------------- the election


async def test_the_first_candidate_creates_the_lease_and_the_second_stands_by() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a"), elector(leases, "b")
    assert await acquire_within(a, 1)
    assert leases.writes == [("create", "a")]
    assert a.is_leader
    assert not await acquire_within(b, 0.5)
    assert leases.holder == "a"
    assert not b.is_leader


async def test_the_holder_renews_and_a_standby_never_takes_a_renewed_lease() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a"), elector(leases, "b")
    assert await acquire_within(a, 1)
    holding = asyncio.create_task(a.hold())
    try:
        # Longer than the lease duration: only renewals keep the standby out.
        assert not await acquire_within(b, 1.5)
        assert leases.holder == "a"
        assert sum(1 for verb, _ in leases.writes if verb == "replace") >= 5
    finally:
        holding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holding


async def test_a_holder_that_stops_renewing_is_replaced_after_the_lease_duration() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a"), elector(leases, "b")
    assert await acquire_within(a, 1)
    # "a" dies without a word (SIGKILL): nobody renews any more.
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await acquire_within(b, 3)
    waited = loop.time() - started
    assert FAST.lease_duration.total_seconds() <= waited <= FAST.lease_duration.total_seconds() + 0.5
    assert leases.holder == "b"
    assert leases.body is not None
    assert leases.body["spec"]["leaseTransitions"] == 1


async def test_a_released_lease_is_taken_over_at_the_next_look() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a"), elector(leases, "b")
    assert await acquire_within(a, 1)
    standby = asyncio.create_task(acquire_within(b, 3))
    await until("the standby to see the held Lease", lambda: b.observation is not None)
    loop = asyncio.get_running_loop()
    released_at = loop.time()
    assert await a.release()
    assert await standby
    assert loop.time() - released_at <= FAST.retry_period.total_seconds() + 0.2
    assert leases.holder == "b"
    # Releasing what one no longer holds writes nothing.
    writes = len(leases.writes)
    assert not await a.release()
    assert len(leases.writes) == writes


async def test_the_holder_gives_up_when_it_cannot_renew_by_the_deadline() -> None:
    leases = FakeLeases()
    a = elector(leases, "a")
    assert await acquire_within(a, 1)
    leases.broken = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(LeadershipLost, match="could not renew"):
        async with asyncio.timeout(2):
            await a.hold()
    gave_up_after = loop.time() - started
    assert gave_up_after <= FAST.renew_deadline.total_seconds() + FAST.retry_period.total_seconds() + 0.1
    # It must stop acting before a standby could take over.
    assert a.stop_deadline() < (a.last_renewed or 0) + FAST.lease_duration.total_seconds()


async def test_the_holder_notices_at_once_when_someone_else_holds_the_lease() -> None:
    leases = FakeLeases()
    a = elector(leases, "a")
    assert await acquire_within(a, 1)
    # Someone (after "a" was paused past the lease duration) took it over.
    assert leases.body is not None
    leases.body["spec"]["holderIdentity"] = "b"
    leases.body["metadata"]["resourceVersion"] = "999"
    with pytest.raises(LeadershipLost, match="b holds"):
        async with asyncio.timeout(2):
            await a.hold()


async def test_two_candidates_racing_for_a_free_lease_get_one_leader() -> None:
    leases = FakeLeases()
    candidates = [elector(leases, name) for name in "abcd"]
    results = await asyncio.gather(*(acquire_within(c, 0.5) for c in candidates))
    assert results.count(True) == 1
    (winner,) = [c for c, won in zip(candidates, results, strict=True) if won]
    assert leases.holder == winner.identity
    assert [verb for verb, _ in leases.writes] == ["create"]


async def test_a_stop_request_ends_the_standby_promptly() -> None:
    leases = FakeLeases()
    a, b = elector(leases, "a"), elector(leases, "b")
    assert await acquire_within(a, 1)
    stop = asyncio.Event()
    waiting = asyncio.create_task(b.acquire(stop))
    await until("the standby to see the held Lease", lambda: b.observation is not None)
    stop.set()
    async with asyncio.timeout(0.5):
        assert await waiting is False


# --------------------------------------------------------------------------- standby readiness


async def test_a_standby_is_ready_from_its_first_look_and_not_after_a_lease_duration_without_the_api() -> (
    None
):
    leases = FakeLeases()
    holder, standby = elector(leases, "a"), elector(leases, "b")
    now = [0.0]
    standby.monotonic = lambda: now[0]
    assert await acquire_within(holder, 1.0)
    assert not standby.able_to_take_over(), "ready before it ever read the Lease"
    await standby.try_acquire_or_renew()
    assert standby.holder == "a"
    assert standby.able_to_take_over()
    leases.broken = True
    now[0] = 0.9
    with pytest.raises(ApiException):
        await standby.try_acquire_or_renew()
    assert standby.able_to_take_over(), "one failed look is no reason to leave the Service"
    now[0] = 1.0
    assert not standby.able_to_take_over()
    leases.broken = False
    await standby.try_acquire_or_renew()
    assert standby.able_to_take_over()
