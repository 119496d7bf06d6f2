"""The operator's own API client: a deadline on every request, an optional rate limit, no per-request
look-ups of the environment."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client

from certctl_operator.kube.client import DEFAULT_REQUEST_TIMEOUT, TimeoutApiClient, TokenBucket


class RecordingRest:
    def __init__(self) -> None:
        self.timeouts: list[Any] = []

    async def GET(self, url: str, **kwargs: Any) -> None:
        self.timeouts.append(kwargs.get("_request_timeout"))


async def test_a_request_without_a_timeout_gets_the_default_and_an_explicit_one_is_kept() -> None:
    api = TimeoutApiClient(client.Configuration(host="https://127.0.0.1:1"), DEFAULT_REQUEST_TIMEOUT)
    real, rest = api.rest_client, RecordingRest()
    api.rest_client = rest
    try:
        await api.request("GET", "https://127.0.0.1:1/api", _request_timeout=None)
        await api.request("GET", "https://127.0.0.1:1/api", _request_timeout=330)
        await client.CoreV1Api(api).read_namespace("default", _preload_content=False)
    finally:
        api.rest_client = real
        await api.close()
    assert rest.timeouts[:2] == [DEFAULT_REQUEST_TIMEOUT, 330]
    assert rest.timeouts[2] == DEFAULT_REQUEST_TIMEOUT


async def test_the_session_looks_up_no_proxy_or_netrc_per_request_and_the_environment_proxy_is_kept(
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    monkeypatch.setenv("NO_PROXY", "")
    proxied = TimeoutApiClient(client.Configuration(host="https://10.0.0.1:6443"), DEFAULT_REQUEST_TIMEOUT)
    monkeypatch.setenv("NO_PROXY", "10.0.0.1")
    exempt = TimeoutApiClient(client.Configuration(host="https://10.0.0.1:6443"), DEFAULT_REQUEST_TIMEOUT)
    try:
        assert not proxied.rest_client.pool_manager.trust_env
        assert proxied.rest_client.proxy == "http://proxy.example.test:3128"
        assert exempt.rest_client.proxy is None
    finally:
        await proxied.close()
        await exempt.close()


def test_the_token_bucket_lets_a_burst_through_then_spaces_requests_at_the_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(rate=10.0, burst=3, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    # Empty: each further request reserves the next token, in the order they came.
    waits = [bucket.reserve() for _ in range(3)]
    assert waits == pytest.approx([0.1, 0.2, 0.3])
    # After the waits have passed, and a second more, the bucket holds a full burst again.
    now[0] += 0.3 + 1.0
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)
    with pytest.raises(ValueError):
        TokenBucket(rate=0.0, burst=1)


async def test_a_rate_limited_client_waits_for_its_token_before_sending() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=1000.0, burst=1, clock=lambda: now[0])
    api = TimeoutApiClient(client.Configuration(host="https://127.0.0.1:1"), DEFAULT_REQUEST_TIMEOUT, bucket)
    real, rest = api.rest_client, RecordingRest()
    api.rest_client = rest
    try:
        await api.request("GET", "https://127.0.0.1:1/api")
        await api.request("GET", "https://127.0.0.1:1/api")
    finally:
        api.rest_client = real
        await api.close()
    assert len(rest.timeouts) == 2
    # The second request found the bucket empty and reserved a token a millisecond ahead.
    assert bucket.reserve() == pytest.approx(0.002)
