"""The async Kubernetes client used for every call Kopf does not make itself."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException


async def create_api_client(qps: float | None = None) -> Any:
    """An ApiClient for the in-cluster service account, else the current kubeconfig."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException:
        await config.load_kube_config(client_configuration=configuration)
    return client.ApiClient(configuration=configuration)
