"""The operator's Secrets listed at start-up, so that a new certificate's Secret is created unread."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as async_client
from kubernetes_asyncio import config as async_config

from certctl_operator.api.metadata_keys import LABEL_MANAGED_BY_CERTIFICATE
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.issuance import IssuanceRuntime
from certctl_operator.kube import secrets
from certctl_operator.settings import Settings


async def _api(kubeconfig: Path) -> Any:
    configuration = async_client.Configuration()
    await async_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return async_client.ApiClient(configuration=configuration)


def _secret(name: str, *, ours: bool) -> async_client.V1Secret:
    labels = {LABEL_MANAGED_BY_CERTIFICATE: name} if ours else {"team": "a"}
    return async_client.V1Secret(
        metadata=async_client.V1ObjectMeta(name=name, labels=labels),
        data={"tls.crt": base64.b64encode(f"pem of {name}".encode()).decode()},
    )


def test_the_operators_secrets_are_listed_page_by_page_and_others_are_created_unread(
    kubeconfig: Path, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secrets, "LIST_PAGE", 2)

    async def scenario() -> None:
        api = await _api(kubeconfig)
        try:
            core = async_client.CoreV1Api(api)
            ours = [f"web-{index}-tls" for index in range(5)]
            for name in ours:
                await core.create_namespaced_secret(namespace, _secret(name, ours=True))
            await core.create_namespaced_secret(namespace, _secret("users-tls", ours=False))

            context = OperatorContext(settings=Settings(namespaces=(namespace,)))
            context.api = api
            rt = IssuanceRuntime(context)
            await rt.list_secrets()
            assert rt.secrets_listed
            # Five of the operator's Secrets over three pages; the user's is not among them.
            assert sorted(rt.secrets) == sorted((namespace, name) for name in ours)
            assert rt.secrets[(namespace, "web-3-tls")].data == {"tls.crt": b"pem of web-3-tls"}

            # Not the operator's: taken as absent (its create will fail with 409)...
            assert await rt.secret(namespace, "users-tls", fresh=False) is None
            # ...and read as it is once the certificate is reconciled with fresh reads.
            found = await rt.secret(namespace, "users-tls", fresh=True)
            assert found is not None and found.labels == {"team": "a"}

            # Namespaces given by pattern are not listed: every Secret is then read before it is written.
            patterned = OperatorContext(settings=Settings(namespaces=(f"{namespace[:3]}*",)))
            patterned.api = api
            rt = IssuanceRuntime(patterned)
            await rt.list_secrets()
            assert not rt.secrets_listed and rt.secrets == {}
            found = await rt.secret(namespace, "web-0-tls", fresh=False)
            assert found is not None and found.name == "web-0-tls"
        finally:
            await api.close()

    asyncio.run(scenario())
