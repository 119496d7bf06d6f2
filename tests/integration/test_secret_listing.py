"""The operator's own Secrets: listed at start-up, then watched through their label, without Kopf."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as async_client
from tests.support.async_kube import async_api

from certctl_operator.api.metadata_keys import LABEL_MANAGED_BY_CERTIFICATE
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.certificates.watch import secret_changed
from certctl_operator.controllers.issuance import IssuanceRuntime
from certctl_operator.kube.list_watch import Known, ListWatch, OnEvent, secrets_list_call
from certctl_operator.settings import Settings

NOTICED_WITHIN = 15.0


def secret_watch(api: Any, namespace: str, on_event: OnEvent, known: Known, **options: Any) -> ListWatch:
    """The operator's Secrets in ``namespace``, as the operator watches them."""
    return ListWatch(
        api,
        secrets_list_call,
        (namespace,),
        on_event,
        known,
        label_selector=LABEL_MANAGED_BY_CERTIFICATE,
        kind="Secret",
        what="the operator's Secrets",
        **options,
    )


def _secret(name: str, *, ours: bool, value: str = "v1") -> async_client.V1Secret:
    labels = {LABEL_MANAGED_BY_CERTIFICATE: name} if ours else {"team": "a"}
    return async_client.V1Secret(
        metadata=async_client.V1ObjectMeta(name=name, labels=labels),
        data={"tls.crt": base64.b64encode(f"{value} of {name}".encode()).decode()},
    )


async def _until(what: str, probe: Any, changed: asyncio.Event) -> None:
    """Wait until ``probe`` holds: looked at on every event, and every quarter second for the rest."""
    try:
        async with asyncio.timeout(NOTICED_WITHIN):
            while not probe():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 0.25)
                changed.clear()
    except TimeoutError:
        raise AssertionError(f"timed out after {NOTICED_WITHIN}s waiting for {what}") from None


def test_the_operators_secrets_are_listed_page_by_page_then_watched_and_others_are_created_unread(
    kubeconfig: Path, namespace: str
) -> None:
    async def scenario() -> None:
        api = await async_api(kubeconfig)
        core = async_client.CoreV1Api(api)
        ours = [f"web-{index}-tls" for index in range(5)]
        for name in ours:
            await core.create_namespaced_secret(namespace, _secret(name, ours=True))
        await core.create_namespaced_secret(namespace, _secret("users-tls", ours=False))

        context = OperatorContext(settings=Settings(namespaces=(namespace,)))
        context.api = api
        rt = IssuanceRuntime(context)
        changed = asyncio.Event()
        events: list[tuple[str, str]] = []

        def on_event(kind: str, raw: Mapping[str, Any]) -> None:
            events.append((kind, raw["metadata"]["name"]))
            secret_changed(rt, kind, raw)
            changed.set()

        # A server timeout of one second: the watch resumes again and again while this runs.
        watch = secret_watch(
            api, namespace, on_event, known=lambda _: list(rt.secrets), watch_seconds=1, page_size=2
        )
        try:
            assert await watch.start()
            # Five of the operator's Secrets over three pages; the user's is not among them.
            assert sorted(rt.secrets) == sorted((namespace, name) for name in ours)
            assert rt.secrets[(namespace, "web-3-tls")].data == {"tls.crt": b"v1 of web-3-tls"}
            assert sorted(events) == sorted(("ADDED", name) for name in ours)

            # Changes after the list arrive through the watch, after (and across) its resumptions.
            await _until("three watch requests (two resumptions)", lambda: watch.watch_requests >= 3, changed)
            await core.create_namespaced_secret(namespace, _secret("web-5-tls", ours=True))
            await core.replace_namespaced_secret(
                "web-0-tls", namespace, _secret("web-0-tls", ours=True, value="v2")
            )
            await core.delete_namespaced_secret("web-1-tls", namespace)
            # The label taken away: the Secret is not the operator's any more.
            await core.patch_namespaced_secret(
                "web-2-tls", namespace, {"metadata": {"labels": {LABEL_MANAGED_BY_CERTIFICATE: None}}}
            )
            await _until(
                "the watch to deliver every change",
                lambda: (
                    (namespace, "web-5-tls") in rt.secrets
                    and (namespace, "web-1-tls") not in rt.secrets
                    and (namespace, "web-2-tls") not in rt.secrets
                    and rt.secrets[(namespace, "web-0-tls")].data == {"tls.crt": b"v2 of web-0-tls"}
                ),
                changed,
            )
            assert sorted(rt.secrets) == sorted(
                (namespace, name) for name in ("web-0-tls", "web-3-tls", "web-4-tls", "web-5-tls")
            )
            # Nothing invented: each change came once, and the unchanged Secrets not again.
            after_list = events[len(ours) :]
            assert sorted(after_list) == sorted(
                [
                    ("ADDED", "web-5-tls"),
                    ("MODIFIED", "web-0-tls"),
                    ("DELETED", "web-1-tls"),
                    ("DELETED", "web-2-tls"),
                ]
            )

            # Not the operator's: taken as absent (its create would fail with 409)...
            rt.secret_watch = watch
            assert rt.secrets_listed
            assert await rt.secret(namespace, "users-tls", fresh=False) is None
            # ...and read as it is once the certificate is reconciled with fresh reads.
            found = await rt.secret(namespace, "users-tls", fresh=True)
            assert found is not None and found.labels == {"team": "a"}
        finally:
            await watch.stop()
            await api.close()

    asyncio.run(scenario())


def test_until_they_are_listed_secrets_are_read_before_they_are_written(
    kubeconfig: Path, namespace: str
) -> None:
    async def scenario() -> None:
        api = await async_api(kubeconfig)
        try:
            await async_client.CoreV1Api(api).create_namespaced_secret(
                namespace, _secret("web-tls", ours=True)
            )
            context = OperatorContext(settings=Settings(namespaces=(namespace,)))
            context.api = api
            rt = IssuanceRuntime(context)
            # Never listed: a Secret not on record is read rather than taken as absent.
            assert not rt.secrets_listed
            found = await rt.secret(namespace, "web-tls", fresh=False)
            assert found is not None and found.name == "web-tls"
        finally:
            await api.close()

    asyncio.run(scenario())


def test_a_list_that_replaces_a_watch_reports_what_went_meanwhile(kubeconfig: Path, namespace: str) -> None:
    # What a watch too old to resume (410 Gone) is replaced by. The API server answers 410 only once
    # etcd has been compacted past the version asked for, which the test cannot bring about on
    # demand; the list that follows is what is exercised here.
    async def scenario() -> None:
        api = await async_api(kubeconfig)
        core = async_client.CoreV1Api(api)
        for name in ("web-0-tls", "web-1-tls", "web-2-tls"):
            await core.create_namespaced_secret(namespace, _secret(name, ours=True))
        context = OperatorContext(settings=Settings(namespaces=(namespace,)))
        context.api = api
        rt = IssuanceRuntime(context)
        events: list[tuple[str, str]] = []

        def on_event(kind: str, raw: Mapping[str, Any]) -> None:
            events.append((kind, raw["metadata"]["name"]))
            secret_changed(rt, kind, raw)

        watch = secret_watch(api, namespace, on_event, known=lambda _: list(rt.secrets))
        try:
            assert await watch.start()
            await watch.stop()  # as if the connection were lost for long
            await core.delete_namespaced_secret("web-1-tls", namespace)
            await core.replace_namespaced_secret(
                "web-2-tls", namespace, _secret("web-2-tls", ours=True, value="v2")
            )
            events.clear()
            version = await watch._list(namespace, initial=False)
            assert version.isdigit()
            assert sorted(rt.secrets) == [(namespace, "web-0-tls"), (namespace, "web-2-tls")]
            assert rt.secrets[(namespace, "web-2-tls")].data == {"tls.crt": b"v2 of web-2-tls"}
            # Each listed Secret is handed over again; the one gone meanwhile as deleted.
            assert sorted(events) == [
                ("DELETED", "web-1-tls"),
                ("MODIFIED", "web-0-tls"),
                ("MODIFIED", "web-2-tls"),
            ]
        finally:
            await watch.stop()
            await api.close()

    asyncio.run(scenario())


def test_a_secret_its_consumer_fails_on_is_logged_and_the_watch_goes_on(
    kubeconfig: Path, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        api = await async_api(kubeconfig)
        core = async_client.CoreV1Api(api)
        seen: list[str] = []
        changed = asyncio.Event()

        def on_event(kind: str, raw: Mapping[str, Any]) -> None:
            name = raw["metadata"]["name"]
            if name == "broken-tls":
                raise ValueError(f"cannot take {raw['data']}")
            seen.append(name)
            changed.set()

        watch = secret_watch(api, namespace, on_event, known=lambda _: [])
        try:
            await core.create_namespaced_secret(
                namespace, _secret("broken-tls", ours=True, value="secret-material")
            )
            assert await watch.start()
            await core.create_namespaced_secret(namespace, _secret("broken2-tls", ours=True))
            await core.patch_namespaced_secret(
                "broken-tls", namespace, {"metadata": {"annotations": {"a": "b"}}}
            )
            await core.create_namespaced_secret(namespace, _secret("web-tls", ours=True))
            await _until("the Secrets after the failing one", lambda: "web-tls" in seen, changed)
            assert seen == ["broken2-tls", "web-tls"]
        finally:
            await watch.stop()
            await api.close()

    with caplog.at_level("ERROR", logger="certctl.list-watch"):
        asyncio.run(scenario())
    failures = [r.getMessage() for r in caplog.records if r.name == "certctl.list-watch"]
    assert failures == [
        f"handling ADDED of Secret {namespace}/broken-tls failed: ValueError",
        f"handling MODIFIED of Secret {namespace}/broken-tls failed: ValueError",
    ]
    encoded = base64.b64encode(b"secret-material of broken-tls").decode()
    assert all(
        encoded not in r.getMessage() and "secret-material" not in r.getMessage() for r in caplog.records
    )
