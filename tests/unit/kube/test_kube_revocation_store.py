"""Names and limits of an issuer's revocation-list and issued-serials ConfigMaps, without a cluster."""

from __future__ import annotations

import re

import pytest

from certctl_operator.api import IssuerKind
from certctl_operator.kube.revocation_store import ArchiveFull, Shard, shard_name, write_shard
from certctl_operator.policy.revocation import ISSUED_SHARD_KEY, MAX_SHARD_BYTES, REVOKED_SHARD_KEY, IssuerKey
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
