"""The async Kubernetes client used for every call Kopf does not make itself."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

DEFAULT_REQUEST_TIMEOUT = 30.0
"""Seconds one API request may take when the caller sets no ``_request_timeout`` of its own."""

READ_BUFFER_BYTES = 2**21
"""aiohttp's read buffer per connection: watch events of large objects exceed its default."""


async def json_response(call: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The JSON body of an API call, as a dict; raises ApiException as the call would.

    The client's model objects (a parsed date in every managedFields entry, a
    class per nested field) cost more to build than the request itself, and
    every caller of this wants a dict or nothing of the response at all.
    """
    response = await call(*args, _preload_content=False, **kwargs)
    try:
        data = await response.read()
    finally:
        response.release()
    if not 200 <= response.status <= 299:
        error = ApiException(status=response.status, reason=response.reason)
        error.body, error.headers = data, response.headers
        raise error
    result: dict[str, Any] = json.loads(data)
    return result


class TokenBucket:
    """A client-side rate limit: ``rate`` requests per second, up to ``burst`` at once.

    Each request takes a token; tokens come back at ``rate`` per second up to
    ``burst``. A request that finds none reserves the next one (the count goes
    below zero), so waiting requests are served in the order they came and a
    long wait is computed once, not polled.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def reserve(self) -> float:
        """Take a token; returns how many seconds to wait before using it (0: at once)."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


def proxy_from_environment(url: str) -> str | None:
    """The proxy ``HTTPS_PROXY``/``HTTP_PROXY`` name for ``url``, unless ``NO_PROXY`` exempts its host."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or (parts.hostname and urllib.request.proxy_bypass(parts.hostname)):
        return None
    return proxy


class TimeoutApiClient(client.ApiClient):
    """An ``ApiClient`` whose every request has a deadline, and optionally a rate limit.

    kubernetes_asyncio sends requests without any timeout unless each call
    passes ``_request_timeout``; one request to an API server that accepts the
    connection and never answers would then hold its worker (and a clean
    shutdown) forever. Calls that pass their own timeout (watches) keep it.

    The library's HTTP session reads proxy variables and ``~/.netrc`` from the
    environment again for every request, each time on a thread; the
    environment does not change while the process runs, so the proxy is looked
    up once here and the session is told not to look again.
    """

    def __init__(
        self,
        configuration: client.Configuration,
        request_timeout: float,
        rate_limit: TokenBucket | None = None,
    ) -> None:
        if configuration.proxy is None and configuration.host:
            configuration.proxy = proxy_from_environment(configuration.host)
        super().__init__(configuration=configuration)
        self.request_timeout = request_timeout
        self.rate_limit = rate_limit
        rest = self.rest_client
        session = rest.pool_manager
        rest.pool_manager = aiohttp.ClientSession(
            connector=session.connector, trust_env=False, read_bufsize=READ_BUFFER_BYTES
        )
        session.detach()

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        # The generated API classes pass every argument by keyword, _request_timeout among them.
        if kwargs.get("_request_timeout") is None and len(args) < 6:
            kwargs["_request_timeout"] = self.request_timeout
        if self.rate_limit is not None:
            wait = self.rate_limit.reserve()
            if wait > 0:
                await asyncio.sleep(wait)  # the rate limit's wait for the reserved token
        return await super().request(method, url, *args, **kwargs)


async def create_api_client(
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT, qps: float = 0.0, burst: int = 1
) -> Any:
    """An ApiClient for the in-cluster service account, else the current kubeconfig.

    ``qps > 0`` limits its requests to ``qps`` a second with bursts of up to
    ``burst``; ``qps == 0`` leaves the pace to the API server's priority and
    fairness.
    """
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException:
        await config.load_kube_config(client_configuration=configuration)
    rate_limit = TokenBucket(qps, max(burst, 1)) if qps > 0 else None
    return TimeoutApiClient(configuration, request_timeout, rate_limit)
