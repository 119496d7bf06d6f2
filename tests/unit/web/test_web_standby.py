"""What the shared HTTP server answers on a standby replica: Ready by its own check, PKI from durable state.

The standby's reads of CRL ConfigMaps from a real API server are shown in
tests/integration/test_high_availability.py; here the registry is filled
directly, and an unreachable API server is a closed port on 127.0.0.1.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.x509 import ocsp
from kubernetes_asyncio import client as kube_client

from certctl_operator.api import IssuerKind
from certctl_operator.context import OperatorContext
from certctl_operator.policy.revocation import IssuerKey
from certctl_operator.settings import Settings
from certctl_operator.web import pki_endpoints  # noqa: F401  (registers the CRL and OCSP routes)
from certctl_operator.web.pki_state import PublishedCRL, registry_of
from certctl_operator.web.server import build_app
from certctl_operator.web.standby import Standby

KEY = IssuerKey(IssuerKind.ISSUER, "ca", "team-a")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def served() -> AsyncIterator[tuple[TestClient[Any, Any], OperatorContext]]:
    context = OperatorContext(settings=Settings(namespaces=("team-a",)))
    client = TestClient(TestServer(build_app(context), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, context
    finally:
        await client.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_readiness_follows_the_standby_check_while_there_is_one(
    served: tuple[TestClient[Any, Any], OperatorContext],
) -> None:
    client, context = served
    answer: list[tuple[bool, str]] = [(True, "standby")]
    context.standby_readiness = lambda: answer[0]
    response = await client.get("/readyz")
    assert (response.status, await response.text()) == (200, "ready\n")
    answer[0] = (False, "cannot reach the API server")
    response = await client.get("/readyz")
    assert (response.status, await response.text()) == (503, "cannot reach the API server\n")
    # Without one, the operator's own flag counts (the leader, or no leader election).
    context.standby_readiness = None
    context.ready, context.not_ready_reason = False, "starting"
    assert (await client.get("/readyz")).status == 503
    context.ready = True
    assert (await client.get("/readyz")).status == 200


async def test_a_standby_answers_ocsp_with_try_later(
    served: tuple[TestClient[Any, Any], OperatorContext],
) -> None:
    client, context = served
    context.standby = Standby(api=None)
    for response in (
        await client.post("/ocsp/team-a/ca", data=b"\x30\x00"),
        await client.get("/ocsp/team-a/ca/MAA="),
    ):
        assert response.status == 200
        assert response.content_type == "application/ocsp-response"
        parsed = ocsp.load_der_ocsp_response(await response.read())
        assert parsed.response_status is ocsp.OCSPResponseStatus.TRY_LATER
    # Health and metrics are the standby's own.
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/metrics")).status == 200


async def test_a_standby_serves_the_crl_it_holds_like_the_leader(
    served: tuple[TestClient[Any, Any], OperatorContext],
) -> None:
    client, context = served
    context.standby = Standby(api=None)
    crl = PublishedCRL(b"0\x03\x02\x01\x07", 7, NOW, NOW + timedelta(hours=24), "fingerprint")
    registry_of(context).set_crl(KEY, crl)
    response = await client.get("/crl/team-a/ca.crl")
    assert response.status == 200
    assert await response.read() == crl.der
    assert response.headers["ETag"] == crl.etag
    cached = await client.get("/crl/team-a/ca.crl", headers={"If-None-Match": crl.etag})
    assert cached.status == 304
    # A namespace this operator does not serve stays unknown, standby or not.
    assert (await client.get("/crl/team-b/ca.crl")).status == 404


async def test_a_standby_that_cannot_read_a_crl_it_does_not_hold_asks_to_retry(
    served: tuple[TestClient[Any, Any], OperatorContext],
) -> None:
    client, context = served
    configuration = kube_client.Configuration(host=f"http://127.0.0.1:{closed_port()}")
    api = kube_client.ApiClient(configuration=configuration)
    try:
        context.standby = Standby(api=api)
        response = await client.get("/crl/team-a/ca.crl")
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert response.headers["Cache-Control"] == "no-store"
    finally:
        await api.close()
