"""What the operator's Kopf settings rely on about its handlers."""

from __future__ import annotations

import kopf
from kopf._cogs.structs.references import Resource

import certctl_operator.controllers  # noqa: F401  (registers the controllers)
from certctl_operator.controllers.lifecycle import (
    QUEUE_IDLE_SECONDS,
    OperatorMemo,
    OperatorMemories,
    UnusedDiffBaseStorage,
    configure_kopf,
    kinds_without_daemons,
)


def test_no_handler_needs_the_diff_base_the_settings_leave_out() -> None:
    registry = kopf.get_default_registry()
    # Change handlers and idle timers or daemons are what compare an object with its last handled state.
    assert list(registry._changing.get_all_handlers()) == []
    assert all(getattr(h, "idle", None) is None for h in registry._spawning.get_all_handlers())
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    storage = settings.persistence.diffbase_storage
    assert isinstance(storage, UnusedDiffBaseStorage)
    body = kopf.Body({"metadata": {"name": "web", "annotations": {"a": "b"}}, "spec": {"x": 1}})
    assert storage.fetch(body=body) is None
    assert storage.build(body=body) == {}


def test_object_workers_idle_briefly_since_no_handler_waits_for_consistency() -> None:
    registry = kopf.get_default_registry()
    # Kopf's idle wait serves change handlers, which wait for their own patch to come back.
    assert list(registry._changing.get_all_handlers()) == []
    settings = kopf.OperatorSettings()
    default = settings.queueing.idle_timeout
    configure_kopf(settings)
    assert settings.queueing.idle_timeout == QUEUE_IDLE_SECONDS < default


async def test_every_object_shares_the_operator_memo_instead_of_a_copy() -> None:
    from kopf._core.reactor.inventory import ResourceMemories

    context = object()
    memo = OperatorMemo(context=context)
    memories = ResourceMemories()
    first = await memories.recall_memo({"metadata": {"uid": "a"}}, memobase=memo)
    second = await memories.recall_memo({"metadata": {"uid": "b"}}, memobase=memo)
    assert first is memo and second is memo
    assert first.context is context
    # A plain memo is what Kopf copies per object: the test above would see two new dicts.
    plain = kopf.Memo(context=context)
    assert await memories.recall_memo({"metadata": {"uid": "c"}}, memobase=plain) is not plain


def test_the_kinds_without_daemons_are_those_the_registry_spawns_nothing_for() -> None:
    lean = kinds_without_daemons(kopf.get_default_registry())
    kinds = {kind for _, kind in lean}
    assert {"NotificationEvent", "NotificationChannel"} <= kinds
    # CA issuers publish CRLs and unsettled revocations are worked by daemons: they keep their own.
    assert not kinds & {"Issuer", "ClusterIssuer", "Revocation"}
    # Not watched by Kopf at all (a list-then-watch of their own): no memories to share.
    assert "ManagedCertificate" not in kinds
    assert {api_version for api_version, _ in lean} == {"certctl.io/v1alpha1"}


def test_kopf_does_not_watch_managed_certificates() -> None:
    registry = kopf.get_default_registry()
    resource = Resource("certctl.io", "v1alpha1", "managedcertificates", kind="ManagedCertificate")
    # Kopf watches a kind when any of these has a handler for it.
    for handlers in (registry._watching, registry._changing, registry._spawning, registry._indexing):
        assert not handlers.has_handlers(resource)


async def test_objects_of_kinds_without_daemons_share_one_empty_daemon_record() -> None:
    memories = OperatorMemories(kinds_without_daemons(kopf.get_default_registry()))

    def body(kind: str, uid: str) -> dict[str, object]:
        return {"apiVersion": "certctl.io/v1alpha1", "kind": kind, "metadata": {"uid": uid}}

    first = await memories.recall(body("NotificationChannel", "a"))
    second = await memories.recall(body("NotificationEvent", "b"))
    revocation = await memories.recall(body("Revocation", "c"))
    assert first.daemons_memory is second.daemons_memory
    assert first.indexing_memory is second.indexing_memory
    assert first.error_throttler is not second.error_throttler  # error back-off stays per object
    assert revocation.daemons_memory is not first.daemons_memory
    assert await memories.recall(body("NotificationChannel", "a")) is first
    assert all(not m.running_daemons for m in memories.iter_all_daemon_memories())
