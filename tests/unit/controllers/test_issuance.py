"""The issuance runtime's bodies as last seen: a late answer never replaces a newer watch event, and an
issuer's CA verdict is trusted only while the watch of its CA Secret saw no change (no cluster)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from certctl_operator.api import IssuerSpec
from certctl_operator.api.metadata_keys import (
    LABEL_MANAGED_BY_CERTIFICATE,
)
from certctl_operator.context import OperatorContext
from certctl_operator.controllers import issuance
from certctl_operator.controllers.issuance import CERTIFICATE, ISSUER, IssuanceRuntime, Key
from certctl_operator.kube.compact import KeptBody
from certctl_operator.kube.secrets import StoredSecret
from certctl_operator.policy.issuers import IssuerCheck
from certctl_operator.settings import Settings


def body(version: str) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "team-a", "resourceVersion": version}}


def event(version: str) -> KeptBody:
    return KeptBody.of(body(version))


def kept_version(rt: IssuanceRuntime, key: Key) -> str | None:
    return rt.certificate_bodies[key].resource_version


def secret(version: str, *, ours: bool = True) -> StoredSecret:
    labels = {LABEL_MANAGED_BY_CERTIFICATE: "web"} if ours else {}
    return StoredSecret("team-a", "web-tls", labels=labels, resource_version=version)


def test_a_write_answered_after_a_newer_watch_event_does_not_replace_it() -> None:
    rt = IssuanceRuntime(OperatorContext(settings=Settings()))
    key = Key(CERTIFICATE, "team-a", "web")
    rt.certificate_seen(key, event("10"))
    # The watch delivers a change by someone else while the write is on its way...
    rt.certificate_seen(key, event("12"))
    rt.certificate_written(key, body("10"), body("11"))
    assert kept_version(rt, key) == "12"
    # ...without one, the write's answer is the newest there is.
    rt.certificate_written(key, body("12"), body("13"))
    assert kept_version(rt, key) == "13"
    # Nothing is kept again for a certificate that went while a read or write was under way.
    rt.forget(key)
    rt.certificate_written(key, body("13"), body("14"))
    assert key not in rt.certificate_bodies

    location = ("team-a", "web-tls")
    rt.secret_seen(location, first := secret("20"))
    rt.secret_seen(location, changed := secret("22"))
    rt.secret_written(location, first, secret("21"))
    assert rt.secrets[location] is changed
    rt.secret_written(location, changed, mine := secret("23"))
    assert rt.secrets[location] is mine
    # A Secret that is not the operator's (any more) is not kept: its changes are not watched.
    rt.secret_written(location, mine, secret("24", ours=False))
    assert location not in rt.secrets


def test_a_watch_event_older_than_a_fresh_read_does_not_replace_it() -> None:
    # A reconcile read the certificate afresh (version 30) while the watch was still delivering
    # 28 and 29: keeping those would make the next reconcile act on an older spec.
    rt = IssuanceRuntime(OperatorContext(settings=Settings()))
    key = Key(CERTIFICATE, "team-a", "web")
    rt.certificate_seen(key, event("27"))
    rt.certificate_written(key, body("27"), body("30"))
    rt.certificate_seen(key, event("28"))
    rt.certificate_seen(key, event("29"))
    assert kept_version(rt, key) == "30"
    rt.certificate_seen(key, event("31"))
    assert kept_version(rt, key) == "31"
    # The same name created again (another uid) is never older.
    recreated = body("5")
    recreated["metadata"]["uid"] = "another"
    rt.certificate_seen(key, KeptBody.of(recreated))
    assert kept_version(rt, key) == "5" and rt.certificate_bodies[key].uid == "another"

    location = ("team-a", "web-tls")
    rt.secret_seen(location, read := secret("40"))
    rt.secret_seen(location, secret("39"))
    assert rt.secrets[location] is read
    rt.secret_seen(location, None)
    assert location not in rt.secrets


def test_the_watch_event_of_a_version_read_afresh_leaves_the_read_body_and_its_write_kept() -> None:
    # A reconcile read version 90 afresh; the watch then delivers its event of version 90 (another
    # client's edit). The reconcile's status write is answered with 100: that answer must be what
    # the next reconcile starts from, not the event's older status (it would issue once more).
    rt = IssuanceRuntime(OperatorContext(settings=Settings()))
    key = Key(CERTIFICATE, "team-a", "web")
    read = body("90")
    read["status"] = {"revision": 2}
    rt.certificate_written(key, None, read)
    edited = body("90")
    edited["status"] = {"revision": 2}
    rt.certificate_seen(key, KeptBody.of(edited))
    written = body("100")
    written["status"] = {"revision": 4}
    rt.certificate_written(key, read, written)
    assert kept_version(rt, key) == "100"
    assert rt.certificate_bodies[key].body()["status"] == {"revision": 4}
    # An answer also replaces an older event that took the place of the body it started from.
    rt.certificate_bodies[key] = event("95")
    rt.certificate_written(key, written, body("101"))
    assert kept_version(rt, key) == "101"

    location = ("team-a", "web-tls")
    rt.secret_written(location, None, fresh := secret("50"))
    rt.secret_seen(location, secret("50"))
    assert rt.secrets[location] is fresh
    rt.secret_written(location, fresh, mine := secret("60"))
    assert rt.secrets[location] is mine
    rt.secrets[location] = secret("55")
    rt.secret_written(location, mine, secret("61", ours=False))
    assert location not in rt.secrets


def test_not_newer_than_is_the_same_version_or_an_older_one() -> None:
    def meta(uid: str, version: str) -> dict[str, str]:
        return {"uid": uid, "resourceVersion": version}

    assert issuance.not_newer_than(meta("a", "10"), meta("a", "10"))
    assert issuance.not_newer_than(meta("a", "9"), meta("a", "10"))
    assert not issuance.not_newer_than(meta("a", "11"), meta("a", "10"))
    assert not issuance.not_newer_than(meta("b", "10"), meta("a", "10"))
    assert not issuance.not_newer_than(None, meta("a", "10"))


def test_older_than_compares_versions_of_one_object_only() -> None:
    def meta(uid: str, version: str) -> dict[str, str]:
        return {"uid": uid, "resourceVersion": version}

    assert issuance.older_than(meta("a", "9"), meta("a", "10"))
    assert not issuance.older_than(meta("a", "10"), meta("a", "9"))
    assert not issuance.older_than(meta("b", "9"), meta("a", "10"))
    assert not issuance.older_than(meta("a", "x9"), meta("a", "10"))
    assert not issuance.older_than(None, meta("a", "10"))


def test_kept_bodies_leave_managed_fields_out_and_the_watch_event_untouched() -> None:
    rt = IssuanceRuntime(OperatorContext(settings=Settings()))
    key = Key(CERTIFICATE, "team-a", "web")
    fields = [{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]
    event_object = {**body("10"), "spec": {"secretName": "web-tls"}}
    event_object["metadata"]["managedFields"] = fields
    rt.certificate_seen(key, KeptBody.of(event_object))
    kept = rt.certificate_bodies[key].body()
    assert "managedFields" not in kept["metadata"] and kept["spec"] == {"secretName": "web-tls"}
    assert kept["metadata"]["resourceVersion"] == "10"
    assert event_object["metadata"]["managedFields"] is fields  # Kopf's copy is not changed
    # Each reconcile gets a body of its own: changing it changes nothing kept.
    kept["spec"]["secretName"] = "changed"
    assert rt.certificate_bodies[key].body()["spec"] == {"secretName": "web-tls"}
    written = body("11")
    written["metadata"]["managedFields"] = fields
    rt.certificate_written(key, kept, written)
    assert "managedFields" not in rt.certificate_bodies[key].body()["metadata"]
    assert written["metadata"]["managedFields"] is fields


async def test_a_watch_event_during_a_reconcile_is_judged_once_its_writes_are_known(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt = IssuanceRuntime(OperatorContext(settings=Settings()))
    key = Key(CERTIFICATE, "team-a", "web")
    writing = asyncio.Event()
    answered = asyncio.Event()
    reconciles: list[str] = []

    async def reconcile(runtime: IssuanceRuntime, reconciled: Key) -> None:
        version = str(len(reconciles) + 7)
        reconciles.append(version)
        writing.set()
        # The write's answer comes after its watch event.
        await answered.wait()
        runtime.own_writes[reconciled] = version

    def event_of(version: str) -> Any:
        return lambda: rt.own_writes.get(key) == version

    monkeypatch.setitem(issuance.RECONCILERS, CERTIFICATE, reconcile)
    rt.queue.start()
    try:
        rt.queue.add(key)
        await asyncio.wait_for(writing.wait(), 5)
        rt.wake(key, event_of("7"))
        answered.set()
        await asyncio.wait_for(rt.queue.wait_idle(), 5)
        assert reconciles == ["7"], "the event of the reconcile's own write needs no second one"

        rt.wake(key, event_of("7"))
        assert rt.queue.pending == 0, "an own write known already wakes nothing"

        writing.clear()
        answered.clear()
        rt.wake(key, event_of("5"))
        await asyncio.wait_for(writing.wait(), 5)
        rt.wake(key, event_of("8"))
        rt.wake(key, event_of("someone else's"))
        answered.set()
        await asyncio.wait_for(rt.queue.wait_idle(), 5)
        assert reconciles == ["7", "8", "9"], "a change by someone else during it: reconciled again"
        assert not rt.undecided_events
    finally:
        await rt.queue.stop()


async def test_the_ca_verdict_holds_while_the_watch_of_the_ca_secret_saw_no_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt = IssuanceRuntime(OperatorContext(settings=Settings()))
    key = Key(ISSUER, "team-a", "team-ca")
    spec = IssuerSpec.model_validate({"ca": {"secretName": "team-ca-keypair"}})
    watched: set[tuple[str, str]] = set()
    reads: list[tuple[str, str]] = []

    class Watcher:
        def watched(self) -> set[tuple[str, str]]:
            return watched

    async def read_secret(api: Any, namespace: str, name: str) -> None:
        reads.append((namespace, name))

    def evaluate(spec: Any, ca_secret: Any, now: Any) -> IssuerCheck:
        return IssuerCheck(False, "NotFound", "no CA Secret")

    monkeypatch.setattr(issuance, "secret_watcher", lambda context: Watcher())
    monkeypatch.setattr(issuance, "read_secret", read_secret)
    monkeypatch.setattr(issuance, "evaluate_issuer", evaluate)

    await rt.issuer_check(key, spec, fresh=True)
    await rt.issuer_check(key, spec, fresh=True)
    assert len(reads) == 2, "not watched: each look as the CA is now reads it"
    watched.add(("team-a", "team-ca-keypair"))
    await rt.issuer_check(key, spec, fresh=True)
    await rt.issuer_check(key, spec, fresh=True)
    assert len(reads) == 2, "watched and unchanged since the last read: the verdict holds"
    rt.ca_secret_changed(key)
    await rt.issuer_check(key, spec, fresh=True)
    await rt.issuer_check(key, spec, fresh=True)
    assert len(reads) == 3, "a change the watch reported: read once, then trusted again"
    await rt.issuer_check(key, spec, fresh=True, trust_watch=False)
    assert len(reads) == 4, "the issuer's own look always reads"


def test_kopf_success_lines_of_the_watch_and_index_handlers_are_dropped_and_others_kept() -> None:
    import logging

    import kopf

    import certctl_operator.controllers  # noqa: F401  (registers the handlers)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, message, None, None)

    quiet = issuance.QuietWatchHandlers()
    registered = {handler.id for handler in kopf.get_default_registry()._watching.get_all_handlers()}
    for name in issuance.WATCH_HANDLERS:
        assert name in registered, name
        assert not quiet.filter(record(f"Handler {name!r} succeeded."))
    assert quiet.filter(record("Handler 'pki-issuer-index' failed temporarily: boom"))
    assert quiet.filter(record("Handler 'revoke' succeeded."))
