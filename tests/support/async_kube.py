"""An async API client on a test control plane's kubeconfig, for driving the operator's watches directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as async_client
from kubernetes_asyncio import config as async_config


async def async_api(kubeconfig: Path) -> Any:
    """A ``kubernetes_asyncio`` ApiClient for ``kubeconfig``; the caller closes it."""
    configuration = async_client.Configuration()
    await async_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return async_client.ApiClient(configuration=configuration)
