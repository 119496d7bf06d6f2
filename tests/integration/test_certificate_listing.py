"""ManagedCertificates: listed at start-up after the operator's Secrets, then watched, without Kopf."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes_asyncio import client as async_client
from tests.support.async_kube import async_api

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.api import IssuerKind
from certctl_operator.api.metadata_keys import ANNOTATION_CERTIFICATE_NAME, LABEL_MANAGED_BY_CERTIFICATE
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.certificates import watch as certificates_watch
from certctl_operator.controllers.issuance import CERTIFICATE, IssuanceRuntime, Key, runtime
from certctl_operator.kube.list_watch import ListWatch, OnEvent, custom_objects_list_call
from certctl_operator.kube.objects import patch_status
from certctl_operator.policy.revocation import IssuerKey
from certctl_operator.settings import Settings
from certctl_operator.web.pki_state import registry_of

NOTICED_WITHIN = 15.0
PLURAL = "managedcertificates"


def _certificate(name: str, *, dns_name: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "ManagedCertificate",
        "metadata": {"name": name},
        "spec": {
            "secretName": f"{name}-tls",
            "dnsNames": [dns_name or f"{name}.example.test"],
            "issuerRef": {"name": "team-ca", "kind": "Issuer"},
        },
    }


def _secret(name: str, certificate: str) -> async_client.V1Secret:
    return async_client.V1Secret(
        metadata=async_client.V1ObjectMeta(
            name=name,
            labels={LABEL_MANAGED_BY_CERTIFICATE: certificate},
            annotations={ANNOTATION_CERTIFICATE_NAME: certificate},
        ),
        data={"tls.crt": base64.b64encode(b"pem").decode()},
    )


def _certificate_watch(api: Any, namespace: str, on_event: OnEvent, **options: Any) -> ListWatch:
    return ListWatch(
        api,
        custom_objects_list_call(API_GROUP, API_VERSION, PLURAL),
        (namespace,),
        on_event,
        kind="ManagedCertificate",
        what="ManagedCertificates",
        **options,
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


def test_certificates_are_listed_page_by_page_then_watched(kubeconfig: Path, namespace: str) -> None:
    async def scenario() -> None:
        api = await async_api(kubeconfig)
        objects = async_client.CustomObjectsApi(api)
        names = [f"web-{index}" for index in range(5)]
        for name in names:
            await objects.create_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, PLURAL, _certificate(name)
            )
        changed = asyncio.Event()
        events: list[tuple[str, str]] = []
        bodies: dict[str, Mapping[str, Any]] = {}

        def on_event(kind: str, raw: Mapping[str, Any]) -> None:
            name = raw["metadata"]["name"]
            events.append((kind, name))
            if kind == "DELETED":
                bodies.pop(name, None)
            else:
                bodies[name] = raw
            changed.set()

        # Two per page, and a server timeout of one second: the watch resumes again and again.
        watch = _certificate_watch(api, namespace, on_event, known=lambda _: [], watch_seconds=1, page_size=2)
        try:
            assert await watch.start()
            assert watch.listed
            assert sorted(events) == sorted(("ADDED", name) for name in names)
            assert bodies["web-3"]["spec"]["secretName"] == "web-3-tls"

            await _until("three watch requests (two resumptions)", lambda: watch.watch_requests >= 3, changed)
            await objects.create_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, PLURAL, _certificate("web-5")
            )
            await objects.patch_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                namespace,
                PLURAL,
                "web-0",
                {"spec": {"dnsNames": ["www.example.test"]}},
                _content_type="application/merge-patch+json",
            )
            await objects.delete_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, "web-1")
            await _until(
                "the watch to deliver every change",
                lambda: (
                    "web-5" in bodies
                    and "web-1" not in bodies
                    and bodies["web-0"]["spec"]["dnsNames"] == ["www.example.test"]
                ),
                changed,
            )
            # Nothing invented: each change came once, and the unchanged certificates not again.
            assert sorted(events[len(names) :]) == [
                ("ADDED", "web-5"),
                ("DELETED", "web-1"),
                ("MODIFIED", "web-0"),
            ]
        finally:
            await watch.stop()
            await api.close()

    asyncio.run(scenario())


def _operator_memo(api: Any, namespace: str) -> Any:
    context = OperatorContext(settings=Settings(namespaces=(namespace,)))
    context.api = api
    return SimpleNamespace(context=context)


def test_the_operator_lists_its_secrets_then_its_certificates_queues_each_and_follows_them(
    kubeconfig: Path, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[tuple[str, str, str]] = []
    changed = asyncio.Event()
    secret_changed, certificate_changed = (
        certificates_watch.secret_changed,
        certificates_watch.certificate_changed,
    )

    def record_secret(rt: IssuanceRuntime, kind: str, raw: Mapping[str, Any], **options: Any) -> None:
        order.append(("Secret", kind, raw["metadata"]["name"]))
        secret_changed(rt, kind, raw, **options)
        changed.set()

    def record_certificate(rt: IssuanceRuntime, kind: str, raw: Mapping[str, Any]) -> None:
        order.append(("ManagedCertificate", kind, raw["metadata"]["name"]))
        certificate_changed(rt, kind, raw)
        changed.set()

    monkeypatch.setattr(certificates_watch, "secret_changed", record_secret)
    monkeypatch.setattr(certificates_watch, "certificate_changed", record_certificate)

    async def scenario() -> None:
        api = await async_api(kubeconfig)
        objects = async_client.CustomObjectsApi(api)
        for name in ("web", "api"):
            await objects.create_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, PLURAL, _certificate(name)
            )
            await async_client.CoreV1Api(api).create_namespaced_secret(
                namespace, _secret(f"{name}-tls", name)
            )
        memo = _operator_memo(api, namespace)
        rt = runtime(memo)
        web, api_key = Key(CERTIFICATE, namespace, "web"), Key(CERTIFICATE, namespace, "api")
        try:
            await certificates_watch.start_watches(memo=memo)
            # The Secrets first (nothing queued for them), then each certificate, queued with its body.
            assert [kind for kind, _, _ in order] == [
                "Secret",
                "Secret",
                "ManagedCertificate",
                "ManagedCertificate",
            ]
            assert {event for _, event, _ in order} == {"ADDED"}
            assert sorted(rt.secrets) == [(namespace, "api-tls"), (namespace, "web-tls")]
            assert sorted(rt.certificate_bodies) == sorted([web, api_key])
            assert rt.queue.pending == 2
            assert rt.secret_of_certificate[web] == (namespace, "web-tls")
            assert rt.certificate_watch is not None and rt.certificate_watch.listed

            # Later events keep the body, the PKI registry's index of issued serials and the queue.
            order.clear()
            issuer = IssuerKey(IssuerKind.ISSUER, "team-ca", namespace)
            await patch_status(api, PLURAL, namespace=namespace, name="web", status={"serialNumber": "0a1b"})
            await objects.delete_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, "api")
            await _until(
                "the status change and the deletion",
                lambda: (
                    ("ManagedCertificate", "DELETED", "api") in order
                    and registry_of(memo.context).index.is_issued(issuer, 0x0A1B, datetime.now(UTC))
                ),
                changed,
            )
            assert order == [
                ("ManagedCertificate", "MODIFIED", "web"),
                ("ManagedCertificate", "DELETED", "api"),
            ]
            assert rt.certificate_bodies[web].body()["status"] == {"serialNumber": "0a1b"}
            assert api_key not in rt.certificate_bodies and api_key in rt.read_afresh
        finally:
            await certificates_watch.stop_watches(memo=memo)
            assert rt.certificate_watch is None and rt.secret_watch is None
            await api.close()

    asyncio.run(scenario())


def test_a_list_that_replaces_a_watch_reports_certificates_gone_meanwhile(
    kubeconfig: Path, namespace: str
) -> None:
    # What a watch too old to resume (410 Gone) is replaced by; as for the operator's Secrets
    # (test_secret_listing.py), the list that follows is what is exercised here.
    async def scenario() -> None:
        api = await async_api(kubeconfig)
        objects = async_client.CustomObjectsApi(api)
        for name in ("web-0", "web-1", "web-2"):
            await objects.create_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, PLURAL, _certificate(name)
            )
        memo = _operator_memo(api, namespace)
        rt = runtime(memo)
        try:
            await certificates_watch.start_watches(memo=memo)
            watch = rt.certificate_watch
            assert watch is not None
            await watch.stop()  # as if the connection were lost for long
            await objects.delete_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, "web-1")
            await objects.patch_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                namespace,
                PLURAL,
                "web-2",
                {"spec": {"dnsNames": ["www.example.test"]}},
                _content_type="application/merge-patch+json",
            )
            events: list[tuple[str, str]] = []
            handed_over = watch.on_event

            def on_event(kind: str, raw: Mapping[str, Any]) -> None:
                events.append((kind, raw["metadata"]["name"]))
                handed_over(kind, raw)

            watch.on_event = on_event
            version = await watch._list(namespace, initial=False)
            assert version.isdigit()
            # Each listed certificate is handed over again; the one gone meanwhile (known to the
            # runtime, not listed any more) as deleted.
            assert sorted(events) == [("DELETED", "web-1"), ("MODIFIED", "web-0"), ("MODIFIED", "web-2")]
            assert sorted(key.name for key in rt.certificate_bodies) == ["web-0", "web-2"]
            body = rt.certificate_bodies[Key(CERTIFICATE, namespace, "web-2")].body()
            assert body["spec"]["dnsNames"] == ["www.example.test"]
        finally:
            await certificates_watch.stop_watches(memo=memo)
            await api.close()

    asyncio.run(scenario())
