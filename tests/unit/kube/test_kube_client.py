"""Every request of the operator's own API client has a deadline."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from certctl_operator.kube.client import DEFAULT_REQUEST_TIMEOUT, TimeoutApiClient


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
