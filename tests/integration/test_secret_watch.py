"""Secrets that change under the operator: noticed within seconds through per-Secret watches.

The operator runs as a real process against the test API server with every
periodic re-check set to ten minutes (``CERTCTL_ISSUER_CHECK_INTERVAL``, and
``CERTCTL_NOTIFICATION_RETRY_INTERVAL`` for the timer that re-checks a channel
that is not Ready), so whatever happens within the deadlines below was done by
the watches of :mod:`certctl_operator.kube.secret_watch`. The watcher itself
is also driven directly against the API server, to show that it receives the
events of the Secrets it watches and of no other Secret, and that it stays
within its limit.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from kubernetes import client
from kubernetes_asyncio import client as async_client
from tests.support.async_kube import async_api
from tests.support.pki_cluster import (
    certificate_body,
    condition,
    create,
    get,
    issuer_body,
    k8s_events,
    make_ca_secret,
    openssl,
    wait_for,
    wait_issued,
    wait_ready,
)
from tests.support.receivers import HTTPReceiver, ScriptedResponse

from certctl_operator.dev.operator_process import OperatorFactory
from certctl_operator.kube.secret_watch import SecretWatcher
from certctl_operator.pki import serial_to_hex

NOTICED_WITHIN = 15.0
"""Deadline for noticing a Secret change: far below the ten-minute re-checks configured here."""
LONG_CHECKS = {
    "CERTCTL_ISSUER_CHECK_INTERVAL": "10m",
    "CERTCTL_NOTIFICATION_RETRY_INTERVAL": "10m",
}
CA_SECRET = "user-ca-keypair"


@pytest.fixture
def receiver() -> Iterator[HTTPReceiver]:
    with HTTPReceiver(default=ScriptedResponse(status=200)) as server:
        yield server


def url_secret(url: str) -> client.V1Secret:
    return client.V1Secret(metadata=client.V1ObjectMeta(name="hook-url"), string_data={"url": url})


def ready_status(kube: Any, namespace: str, plural: str, name: str) -> str | None:
    found: str | None = condition(get(kube, namespace, plural, name)).get("status")
    return found


def timed(what: str, probe: Any, timeout: float = NOTICED_WITHIN) -> float:
    """Seconds until ``probe`` holds (failing after ``timeout``)."""
    started = time.monotonic()
    wait_for(what, probe, timeout, interval=0.05)
    return time.monotonic() - started


def test_a_ready_channel_notices_its_secret_deleted_and_recreated(
    kube: Any, namespace: str, operator_factory: OperatorFactory, receiver: HTTPReceiver
) -> None:
    operator_factory(namespaces=[namespace], env=LONG_CHECKS)
    core = client.CoreV1Api(kube)
    url = receiver.url_for("/hook")
    core.create_namespaced_secret(namespace, url_secret(url))
    spec = {"webhook": {"urlSecretRef": {"name": "hook-url", "key": "url"}, "timeout": "5s"}}
    create(
        kube,
        namespace,
        "notificationchannels",
        {"kind": "NotificationChannel", "metadata": {"name": "hook"}, "spec": spec},
    )
    wait_ready(kube, namespace, "notificationchannels", "hook")

    core.delete_namespaced_secret("hook-url", namespace)
    lost = timed(
        "the channel Ready=False",
        lambda: ready_status(kube, namespace, "notificationchannels", "hook") == "False",
    )
    body = get(kube, namespace, "notificationchannels", "hook")
    assert "hook-url" in condition(body)["message"]
    assert url not in str(body), "the webhook URL from the Secret leaked into the status"
    # Kopf posts Events in the background: wait for it, then there must be exactly one.
    warnings = wait_for(
        "a ChannelNotReady Event", lambda: k8s_events(kube, namespace, "hook", "ChannelNotReady")
    )
    assert len(warnings) == 1 and url not in (warnings[0].message or "")

    # Recreated with another URL (a rotated webhook token, say).
    rotated = receiver.url_for("/rotated")
    core.create_namespaced_secret(namespace, url_secret(rotated))
    back = timed(
        "the channel Ready again",
        lambda: ready_status(kube, namespace, "notificationchannels", "hook") == "True",
    )
    print(
        f"channel: Ready=False {lost:.2f}s after the Secret was deleted, Ready {back:.2f}s after it was back"
    )

    # Delivery follows the Secret as it is now.
    event = {
        "kind": "NotificationEvent",
        "metadata": {"name": "after"},
        "spec": {"type": "Test", "channelRef": {"name": "hook"}, "subject": "after", "message": "after"},
    }
    create(kube, namespace, "notificationevents", event)
    assert [request.path for request in receiver.wait_for_requests(1, 30)] == ["/rotated"]
    wait_for(
        "the event Sent",
        lambda: (
            (get(kube, namespace, "notificationevents", "after").get("status") or {}).get("phase") == "Sent"
        ),
    )


def test_a_user_replaced_ca_secret_is_noticed_and_certificates_follow(
    kube: Any, namespace: str, operator_factory: OperatorFactory, tmp_path: Path
) -> None:
    operator = operator_factory(namespaces=[namespace], env=LONG_CHECKS)
    core = client.CoreV1Api(kube)
    make_ca_secret(kube, namespace, CA_SECRET, "First CA")
    create(kube, namespace, "issuers", issuer_body("user-ca", ca_secret=CA_SECRET, base_url=None))
    first_serial = wait_ready(kube, namespace, "issuers", "user-ca")["status"]["caSerialNumber"]
    create(kube, namespace, "managedcertificates", certificate_body("web", "user-ca"))
    before = wait_issued(kube, namespace, "web")
    assert before.ca.subject.rfc4514_string() == "CN=First CA"

    # The user replaces the CA key pair (delete and create, as `kubectl create secret tls` after a
    # delete does): a missing Secret first, then one with another CA.
    core.delete_namespaced_secret(CA_SECRET, namespace)
    lost = timed(
        "the issuer Ready=False",
        lambda: condition(get(kube, namespace, "issuers", "user-ca")).get("reason") == "SecretNotFound",
    )
    second_pem = make_ca_secret(kube, namespace, CA_SECRET, "Second CA")
    second = x509.load_pem_x509_certificate(second_pem.encode())
    second_serial = serial_to_hex(second.serial_number).lower()

    def signing_with_second() -> bool:
        status = get(kube, namespace, "issuers", "user-ca").get("status") or {}
        return (
            status.get("caSerialNumber") == second_serial
            and ready_status(kube, namespace, "issuers", "user-ca") == "True"
        )

    noticed = timed("the issuer signing with the second CA", signing_with_second)
    assert second_serial != first_serial

    # Certificates follow: reissued under the new CA (reason IssuerChanged), valid by openssl.
    after = wait_issued(kube, namespace, "web", after=before.serial, timeout=NOTICED_WITHIN)
    assert after.ca.subject.rfc4514_string() == "CN=Second CA"
    assert after.revision == before.revision + 1
    (tmp_path / "ca.pem").write_text(second_pem)
    (tmp_path / "leaf.pem").write_text(after.leaf_pem)
    verified = openssl("verify", "-CAfile", tmp_path / "ca.pem", tmp_path / "leaf.pem")
    assert verified.returncode == 0, verified.stderr
    print(
        f"CA Secret: Ready=False {lost:.2f}s after the delete, second CA in use {noticed:.2f}s after create"
    )

    # Changing the data in place (same Secret, new resourceVersion) is noticed as well.
    third_pem = make_third_ca(kube, namespace)
    third_serial = serial_to_hex(x509.load_pem_x509_certificate(third_pem.encode()).serial_number).lower()
    timed(
        "the issuer signing with the third CA",
        lambda: (
            (get(kube, namespace, "issuers", "user-ca").get("status") or {}).get("caSerialNumber")
            == third_serial
        ),
    )
    logs = operator.logs()
    assert f"Secret {namespace}/{CA_SECRET} was deleted" in logs
    assert f"Secret {namespace}/{CA_SECRET} changed" in logs


def make_third_ca(kube: Any, namespace: str) -> str:
    """Replace the data of the CA Secret in place with a new CA; returns its certificate PEM."""
    scratch = f"{CA_SECRET}-scratch"
    pem = make_ca_secret(kube, namespace, scratch, "Third CA")
    core = client.CoreV1Api(kube)
    data = core.read_namespaced_secret(scratch, namespace).data
    core.patch_namespaced_secret(CA_SECRET, namespace, {"data": data})
    core.delete_namespaced_secret(scratch, namespace)
    return pem


# --------------------------------------------------------------------------- the watcher itself


async def _until(what: str, probe: Any, changed: asyncio.Event, seconds: float = NOTICED_WITHIN) -> None:
    """Wait until ``probe`` holds, looking again whenever ``changed`` is set."""
    try:
        async with asyncio.timeout(seconds):
            while not probe():
                await changed.wait()
                changed.clear()
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds}s waiting for {what}") from None


def _opaque(name: str, value: str) -> async_client.V1Secret:
    encoded = base64.b64encode(value.encode()).decode()
    return async_client.V1Secret(metadata=async_client.V1ObjectMeta(name=name), data={"k": encoded})


def test_the_watcher_sees_only_the_secrets_it_watches_and_stays_within_its_limit(
    kubeconfig: Path, namespace: str
) -> None:
    async def scenario() -> None:
        api = await async_api(kubeconfig)
        core = async_client.CoreV1Api(api)
        calls: Counter[str] = Counter()
        called = asyncio.Event()

        def owner(name: str) -> Any:
            async def on_change() -> None:
                calls[name] += 1
                called.set()

            return on_change

        watcher = SecretWatcher(api, limit=2)
        try:
            await core.create_namespaced_secret(namespace, _opaque("watched-a", "1"))
            watcher.watch("a", [(namespace, "watched-a")], owner("a"))
            watcher.watch("b", [(namespace, "watched-b")], owner("b"))  # does not exist yet
            watcher.watch("c", [(namespace, "watched-c")], owner("c"))  # over the limit
            assert watcher.watched() == {(namespace, "watched-a"), (namespace, "watched-b")}
            # Each watch starts with one look, which counts as a change.
            await _until("the first looks", lambda: calls["a"] == 1 and calls["b"] == 1, called)

            # Thirty other Secrets come and change: not a single event reaches the watcher.
            for index in range(30):
                await core.create_namespaced_secret(namespace, _opaque(f"other-{index}", "x"))
                await core.patch_namespaced_secret(f"other-{index}", namespace, {"data": {"k": "eQ=="}})
            await core.patch_namespaced_secret("watched-a", namespace, {"data": {"k": "Mg=="}})
            await _until("the change of watched-a", lambda: calls["a"] == 2, called)
            assert calls == Counter({"a": 2, "b": 1})

            await core.create_namespaced_secret(namespace, _opaque("watched-b", "1"))
            await _until("the creation of watched-b", lambda: calls["b"] == 2, called)
            await core.delete_namespaced_secret("watched-a", namespace)
            await _until("the deletion of watched-a", lambda: calls["a"] == 3, called)

            # Owner "a" goes: its watch stops, and the waiting Secret gets the free one.
            watcher.forget("a")
            assert watcher.watched() == {(namespace, "watched-b"), (namespace, "watched-c")}
            await _until("the first look at watched-c", lambda: calls["c"] == 1, called)
            await core.create_namespaced_secret(namespace, _opaque("watched-a", "again"))
            await core.create_namespaced_secret(namespace, _opaque("watched-c", "1"))
            await _until("the creation of watched-c", lambda: calls["c"] == 2, called)
            assert calls["a"] == 3, "a forgotten owner was called"
        finally:
            await watcher.close()
            await api.close()
        assert watcher.watched() == set()

    asyncio.run(scenario())


def test_a_watch_resumes_after_each_server_timeout_without_missing_or_inventing_changes(
    kubeconfig: Path, namespace: str
) -> None:
    async def scenario() -> None:
        api = await async_api(kubeconfig)
        core = async_client.CoreV1Api(api)
        calls: list[str] = []
        called = asyncio.Event()

        async def on_change() -> None:
            calls.append("ca")
            called.set()

        # The API server ends each watch after 1 s; the watcher resumes from where it was.
        watcher = SecretWatcher(api, watch_seconds=1)
        try:
            await core.create_namespaced_secret(namespace, _opaque("resumed", "1"))
            watcher.watch("owner", [(namespace, "resumed")], on_change)
            await _until("the first look", lambda: len(calls) == 1, called)
            # Three server timeouts pass, each followed by a resumed watch: nothing new is reported.
            first = watcher.watch_requests
            deadline = time.monotonic() + NOTICED_WITHIN
            while watcher.watch_requests < first + 3:
                assert time.monotonic() < deadline, "the watch was not resumed three times"
                await asyncio.sleep(0.05)  # polling interval of a deadline-bounded wait
            assert calls == ["ca"], "a resumed watch reported a change that did not happen"
            called.clear()
            await core.patch_namespaced_secret("resumed", namespace, {"data": {"k": "Mg=="}})
            await _until("the change after the resumptions", lambda: len(calls) == 2, called)
        finally:
            await watcher.close()
            await api.close()

    asyncio.run(scenario())
