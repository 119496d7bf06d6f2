"""The async Kubernetes client used for every call Kopf does not make itself."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException

DEFAULT_REQUEST_TIMEOUT = 30.0
"""Seconds one API request may take when the caller sets no ``_request_timeout`` of its own."""


class TimeoutApiClient(client.ApiClient):
    """An ``ApiClient`` whose every request has a deadline.

    kubernetes_asyncio sends requests without any timeout unless each call
    passes ``_request_timeout``; one request to an API server that accepts the
    connection and never answers would then hold its worker (and a clean
    shutdown) forever. Calls that pass their own timeout (watches) keep it.
    """

    def __init__(self, configuration: client.Configuration, request_timeout: float) -> None:
        super().__init__(configuration=configuration)
        self.request_timeout = request_timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        # The generated API classes pass every argument by keyword, _request_timeout among them.
        if kwargs.get("_request_timeout") is None and len(args) < 6:
            kwargs["_request_timeout"] = self.request_timeout
        return super().request(method, url, *args, **kwargs)


async def create_api_client(request_timeout: float = DEFAULT_REQUEST_TIMEOUT) -> Any:
    """An ApiClient for the in-cluster service account, else the current kubeconfig."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException:
        await config.load_kube_config(client_configuration=configuration)
    return TimeoutApiClient(configuration, request_timeout)
