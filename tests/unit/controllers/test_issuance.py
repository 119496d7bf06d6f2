"""The issuance runtime's bodies as last seen: a late answer never replaces a newer watch event, and an
issuer's CA verdict is trusted only while the watch of its CA Secret saw no change (no cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from certctl_operator.api import IssuerSpec
from certctl_operator.api.metadata_keys import (
    LABEL_MANAGED_BY_CERTIFICATE,
)
from certctl_operator.context import OperatorContext
from certctl_operator.controllers import issuance
from certctl_operator.controllers.issuance import CERTIFICATE, ISSUER, IssuanceRuntime, Key
from certctl_operator.kube.compact import watched_body
from certctl_operator.kube.secrets import StoredSecret
from certctl_operator.policy.issuers import IssuerCheck
from certctl_operator.settings import Settings


def body(version: str) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "team-a", "resourceVersion": version}}


def secret(version: str, *, ours: bool = True) -> StoredSecret:
    labels = {LABEL_MANAGED_BY_CERTIFICATE: "web"} if ours else {}
    return StoredSecret("team-a", "web-tls", labels=labels, resource_version=version)


def test_a_write_answered_after_a_newer_watch_event_does_not_replace_it() -> None:
    rt = IssuanceRuntime(OperatorContext(settings=Settings()))
    key = Key(CERTIFICATE, "team-a", "web")
    started_from = rt.certificate_bodies[key] = body("10")
    # The watch delivers a change by someone else while the write is on its way...
    newer = rt.certificate_bodies[key] = body("12")
    rt.certificate_written(key, started_from, body("11"))
    assert rt.certificate_bodies[key] is newer
    # ...without one, the write's answer is the newest there is.
    written = body("13")
    rt.certificate_written(key, newer, written)
    assert rt.certificate_bodies[key] is written

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
    rt.certificate_seen(key, body("27"))
    rt.certificate_written(key, rt.certificate_bodies[key], fresh := body("30"))
    rt.certificate_seen(key, body("28"))
    rt.certificate_seen(key, body("29"))
    assert rt.certificate_bodies[key] is fresh
    rt.certificate_seen(key, later := body("31"))
    assert rt.certificate_bodies[key] is later
    # The same name created again (another uid) is never older.
    recreated = body("5")
    recreated["metadata"]["uid"] = "another"
    rt.certificate_seen(key, recreated)
    assert rt.certificate_bodies[key] is recreated

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
    rt.certificate_written(key, None, read)
    rt.certificate_seen(key, body("90"))
    assert rt.certificate_bodies[key] is read
    rt.certificate_written(key, read, written := body("100"))
    assert rt.certificate_bodies[key] is written
    # An answer also replaces an older event that took the place of the body it started from.
    rt.certificate_bodies[key] = body("95")
    rt.certificate_written(key, written, later := body("101"))
    assert rt.certificate_bodies[key] is later

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
    kept = watched_body(event_object)
    assert "managedFields" not in kept["metadata"] and kept["spec"] == {"secretName": "web-tls"}
    assert kept["metadata"]["resourceVersion"] == "10"
    assert event_object["metadata"]["managedFields"] is fields  # Kopf's copy is not changed
    rt.certificate_bodies[key] = kept
    # A body read or written by the operator is trimmed in place: it stays the caller's object.
    written = body("11")
    written["metadata"]["managedFields"] = fields
    rt.certificate_written(key, kept, written)
    assert rt.certificate_bodies[key] is written and "managedFields" not in written["metadata"]


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
