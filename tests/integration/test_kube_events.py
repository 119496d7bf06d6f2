"""Kubernetes Events as the operator posts them, against a real API server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kubernetes_asyncio import client as async_client
from kubernetes_asyncio.client.exceptions import ApiException
from tests.support.async_kube import async_api

from certctl_operator.kube.events import NORMAL, post_event


def test_a_named_event_is_posted_once_and_errors_are_raised(kubeconfig: Path, namespace: str) -> None:
    certificate = {
        "apiVersion": "certctl.io/v1alpha1",
        "kind": "ManagedCertificate",
        "metadata": {"name": "web", "namespace": namespace, "uid": "7d3c0f7e-0000-4000-8000-000000000001"},
    }

    async def scenario() -> None:
        api = await async_api(kubeconfig)
        try:
            posted = await post_event(
                api, certificate, event_type=NORMAL, reason="Issued", message="revision 1", name="web.rev-1"
            )
            # The same name again is the same Event: nothing new, and no error.
            again = await post_event(
                api, certificate, event_type=NORMAL, reason="Issued", message="revision 1", name="web.rev-1"
            )
            assert (posted, again) == (True, False)
            # Without a name every call is a new Event.
            assert await post_event(api, certificate, event_type=NORMAL, reason="Renewed", message="one")
            assert await post_event(api, certificate, event_type=NORMAL, reason="Renewed", message="two")

            events = await async_client.CoreV1Api(api).list_namespaced_event(namespace)
            by_reason = sorted((e.reason, e.message, e.involved_object.name) for e in events.items)
            assert by_reason == [
                ("Issued", "revision 1", "web"),
                ("Renewed", "one", "web"),
                ("Renewed", "two", "web"),
            ]
            (named,) = [e for e in events.items if e.metadata.name == "web.rev-1"]
            assert (named.count, named.involved_object.uid) == (1, certificate["metadata"]["uid"])

            # A refusal is raised with its status, not taken for "already there".
            elsewhere = {**certificate, "metadata": {**certificate["metadata"], "namespace": "no-such-ns"}}
            with pytest.raises(ApiException) as refused:
                await post_event(
                    api, elsewhere, event_type=NORMAL, reason="Issued", message="x", name="web.rev-1"
                )
            assert refused.value.status == 404
        finally:
            await api.close()

    asyncio.run(scenario())
