"""Names, limits and batched writes of an issuer's revocation-list and issued-serials ConfigMaps,
without a cluster."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.api import IssuerKind
from certctl_operator.kube import revocation_store
from certctl_operator.kube.revocation_store import ArchiveFull, Shard, record_issued, shard_name, write_shard
from certctl_operator.policy.revocation import (
    ISSUED_SHARD_KEY,
    MAX_SHARD_BYTES,
    REVOKED_SHARD_KEY,
    IssuerKey,
    decode_issued,
    normalize_serial,
    shard_index,
)
from certctl_operator.settings import Settings

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def test_shards_are_named_after_their_issuer_and_store() -> None:
    issuer = IssuerKey(IssuerKind.ISSUER, "team-ca", "team-a")
    cluster = IssuerKey(IssuerKind.CLUSTER_ISSUER, "corp-ca")
    assert shard_name(issuer, REVOKED_SHARD_KEY, 0) == "team-ca-revoked-00"
    assert shard_name(issuer, ISSUED_SHARD_KEY, 15) == "team-ca-issued-15"
    assert shard_name(cluster, REVOKED_SHARD_KEY, 7) == "corp-ca-cluster-revoked-07"
    long = IssuerKey(IssuerKind.ISSUER, "x" * 250, "team-a")
    names = {shard_name(long, REVOKED_SHARD_KEY, index) for index in range(16)}
    assert len(names) == 16
    assert all(len(name) <= 253 and DNS_SUBDOMAIN.match(name) for name in names)


async def test_a_shard_beyond_the_configmap_limit_is_refused_before_it_is_sent() -> None:
    issuer = IssuerKey(IssuerKind.ISSUER, "team-ca", "team-a")
    shard = Shard("team-ca-revoked-03", "", None)
    with pytest.raises(ArchiveFull, match="team-ca-revoked-03"):
        # No API client: the size check comes before any request.
        await write_shard(None, Settings(), issuer, REVOKED_SHARD_KEY, shard, "0" * (MAX_SHARD_BYTES + 1), {})


async def test_issued_serials_that_wait_meanwhile_are_stored_together_and_each_caller_hears_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer = IssuerKey(IssuerKind.ISSUER, "team-ca", "team-a")
    not_after = datetime(2030, 1, 1, tzinfo=UTC)
    writes: list[dict[str, datetime]] = []
    first_write_started, release_first_write = asyncio.Event(), asyncio.Event()

    async def store(api: Any, settings: Any, key: Any, serials: Any, now: Any, **_: Any) -> set[str]:
        writes.append(dict(serials))
        if len(writes) == 1:
            first_write_started.set()
            await release_first_write.wait()
        return set(serials) - {"0c"}  # 0c was stored before

    monkeypatch.setattr(revocation_store, "_store_issued", store)
    api = StandInApi()
    first = asyncio.create_task(record_issued(api, Settings(), issuer, "0A", not_after, now))
    await first_write_started.wait()
    # While the first write is under way, three more arrive: they go in the next write, together.
    rest = [
        asyncio.create_task(record_issued(api, Settings(), issuer, serial, not_after, now))
        for serial in ("0b", "0c", "0d")
    ]
    # One turn of the loop runs each new task up to the lock the first write holds.
    await asyncio.sleep(0)
    assert sorted(revocation_store._issued_recorders[api][issuer].open.serials) == ["0b", "0c", "0d"]
    release_first_write.set()
    assert await first is True
    assert await asyncio.gather(*rest) == [True, False, True]
    assert [sorted(batch) for batch in writes] == [["0a"], ["0b", "0c", "0d"]]


async def test_a_lingering_first_serial_gathers_those_that_arrive_one_by_one_into_its_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer = IssuerKey(IssuerKind.ISSUER, "team-ca", "team-a")
    not_after = datetime(2030, 1, 1, tzinfo=UTC)
    writes = record_writes(monkeypatch)
    api = StandInApi()
    # No write is under way: without the linger the second serial would be written at once, alone.
    first = asyncio.create_task(record_issued(api, Settings(), issuer, "01", not_after, now, linger=0.2))
    await asyncio.sleep(0)
    second = asyncio.create_task(record_issued(api, Settings(), issuer, "02", not_after, now))
    await asyncio.sleep(0)
    third = asyncio.create_task(record_issued(api, Settings(), issuer, "03", not_after, now))
    await asyncio.sleep(0)
    assert writes == []
    assert list(await asyncio.gather(first, second, third)) == [True, True, True]
    assert writes == [["01", "02", "03"]]
    # Without a linger, serials that find no write under way are written at once, one by one.
    assert await record_issued(api, Settings(), issuer, "04", not_after, now) is True
    assert await record_issued(api, Settings(), issuer, "05", not_after, now) is True
    assert writes[1:] == [["04"], ["05"]]


async def test_a_lingering_serial_cancelled_leaves_its_batch_to_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer = IssuerKey(IssuerKind.ISSUER, "team-ca", "team-a")
    not_after = datetime(2030, 1, 1, tzinfo=UTC)
    writes = record_writes(monkeypatch)
    api = StandInApi()
    first = asyncio.create_task(record_issued(api, Settings(), issuer, "0a", not_after, now, linger=0.2))
    await asyncio.sleep(0)
    second = asyncio.create_task(record_issued(api, Settings(), issuer, "0b", not_after, now))
    await asyncio.sleep(0)
    first.cancel()  # its issuance failed while the key was generated
    assert await second is True
    assert first.cancelled()
    # The cancelled serial may be stored (a serial recorded but never used is harmless), the other must be.
    assert len(writes) == 1 and "0b" in writes[0]


async def test_a_failed_write_of_issued_serials_fails_every_caller_of_its_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer = IssuerKey(IssuerKind.ISSUER, "team-ca", "team-a")
    not_after = datetime(2030, 1, 1, tzinfo=UTC)

    async def store(api: Any, settings: Any, key: Any, serials: Any, now: Any, **_: Any) -> set[str]:
        raise ArchiveFull("no room")

    monkeypatch.setattr(revocation_store, "_store_issued", store)
    api = StandInApi()
    results = await asyncio.gather(
        record_issued(api, Settings(), issuer, "01", not_after, now),
        record_issued(api, Settings(), issuer, "02", not_after, now),
        return_exceptions=True,
    )
    assert all(isinstance(result, ArchiveFull) for result in results)


def record_writes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Replace the store with one that stores every serial; returns the batches it was given."""
    writes: list[list[str]] = []

    async def store(api: Any, settings: Any, key: Any, serials: Any, now: Any, **_: Any) -> set[str]:
        writes.append(sorted(serials))
        return set(serials)

    monkeypatch.setattr(revocation_store, "_store_issued", store)
    return writes


class StandInApi:
    """Stands for the API client the recorders are kept by; the store itself is replaced."""


def now() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


class ConfigMapStore:
    """ConfigMaps kept in memory with the API server's guards: a stale resourceVersion is 409, none is 404."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[int, dict[str, str]]] = {}
        self.version = 0
        self.reads = 0

    def _stored(self, name: str, data: dict[str, str]) -> SimpleNamespace:
        self.version += 1
        self.items[name] = (self.version, dict(data))
        return SimpleNamespace(
            metadata=SimpleNamespace(resource_version=str(self.version), owner_references=[])
        )

    async def read_namespaced_config_map(self, name: str, namespace: str) -> SimpleNamespace:
        self.reads += 1
        if name not in self.items:
            raise ApiException(status=404)
        version, data = self.items[name]
        return SimpleNamespace(
            metadata=SimpleNamespace(resource_version=str(version), owner_references=[]), data=dict(data)
        )

    async def create_namespaced_config_map(self, namespace: str, body: dict[str, Any]) -> SimpleNamespace:
        if body["metadata"]["name"] in self.items:
            raise ApiException(status=409)
        return self._stored(body["metadata"]["name"], body["data"])

    async def replace_namespaced_config_map(
        self, name: str, namespace: str, body: dict[str, Any]
    ) -> SimpleNamespace:
        if name not in self.items:
            raise ApiException(status=404)
        if str(self.items[name][0]) != body["metadata"]["resourceVersion"]:
            raise ApiException(status=409)
        return self._stored(name, body["data"])

    def serials(self, name: str) -> set[str]:
        return set(decode_issued(self.items[name][1][ISSUED_SHARD_KEY]))


async def test_issued_serials_are_written_from_what_was_last_written_and_read_again_after_a_conflict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer = IssuerKey(IssuerKind.CLUSTER_ISSUER, "corp-ca")
    body = {
        "kind": "ClusterIssuer",
        "metadata": {"name": "corp-ca", "uid": "u-1"},
        "spec": {"ca": {"secretName": "corp-ca"}},
    }
    store = ConfigMapStore()
    issuer_reads: list[str] = []

    async def get_issuer(api: Any, key: IssuerKey) -> dict[str, Any]:
        issuer_reads.append(key.name)
        return body

    monkeypatch.setattr(revocation_store, "_core", lambda api: store)
    monkeypatch.setattr(revocation_store, "get_issuer", get_issuer)
    # Serials of one shard, so that every batch below goes to the same ConfigMap.
    serials = [normalize_serial(f"{n:x}") for n in range(1, 4000) if shard_index(f"{n:x}") == 0][:5]
    name = shard_name(issuer, ISSUED_SHARD_KEY, 0)
    written = revocation_store.WrittenShards()
    not_after = {serial: datetime(2030, 1, 1, tzinfo=UTC) for serial in serials}

    async def store_one(serial: str) -> set[str]:
        return await revocation_store._store_issued(
            None, Settings(), issuer, {serial: not_after[serial]}, now, written=written, issuer_body=body
        )

    assert await store_one(serials[0]) == {serials[0]}
    assert (store.reads, issuer_reads) == (1, [])  # the shard did not exist: read once, created
    assert await store_one(serials[1]) == {serials[1]}
    assert (store.reads, issuer_reads) == (1, [])  # written from what was written, not read back
    assert store.serials(name) == set(serials[:2])

    # Someone else writes the shard: the guarded write conflicts, and the batch is read and tried again.
    text = store.items[name][1][ISSUED_SHARD_KEY]
    store._stored(name, {ISSUED_SHARD_KEY: text + f"{serials[2]},1893456000\n"})
    assert await store_one(serials[3]) == {serials[3]}
    assert store.reads == 2 and issuer_reads == ["corp-ca"]
    assert store.serials(name) == set(serials[:4])

    # Deleted since it was written: created again with the batch, nothing of the batch lost.
    del store.items[name]
    assert await store_one(serials[4]) == {serials[4]}
    assert store.serials(name) == {serials[4]}
    assert store.reads == 3


async def test_written_shards_start_over_for_a_recreated_issuer() -> None:
    written = revocation_store.WrittenShards()
    written.for_issuer("u-1")[3] = Shard("corp-ca-cluster-issued-03", "01,1\n", "7")
    assert 3 in written.for_issuer("u-1")
    assert written.for_issuer("u-2") == {}
