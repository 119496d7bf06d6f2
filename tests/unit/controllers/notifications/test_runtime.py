"""The notification runtime: the event book and its gauges, and outcomes kept while the API server is away."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from tests.support.notification_events import event_body

from certctl_operator.api import DeliveryPhase
from certctl_operator.controllers.notifications.runtime import ChannelKey, NotificationRuntime, WorkKey
from certctl_operator.notify.senders import DeliveryResult
from certctl_operator.policy import notification as policy

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
UID = "6f1d2c3b-0000-4000-8000-000000000001"
DELIVERED = DeliveryResult.success(timedelta(milliseconds=40), "HTTP 200 OK", 200)


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


# --------------------------------------------------------------------------- the book


async def test_the_book_counts_phases_and_feeds_the_gauges(runtime: NotificationRuntime) -> None:
    runtime.observe(None, event_body("a"))
    runtime.observe("ADDED", event_body("b", "Failed"))
    runtime.observe("ADDED", event_body("c", "Dead"))
    runtime.observe("MODIFIED", event_body("d", "Nonsense"))
    assert runtime.phase_counts() == {
        DeliveryPhase.PENDING: 2,
        DeliveryPhase.SENT: 0,
        DeliveryPhase.FAILED: 1,
        DeliveryPhase.DEAD: 1,
    }
    assert gauge("certctl_notification_dead_total") == 1
    assert gauge("certctl_notification_events", phase="Pending") == 2

    runtime.observe("MODIFIED", event_body("c", "Pending", version="2"))
    runtime.observe("DELETED", event_body("b", "Failed"))
    runtime.observe("MODIFIED", {"metadata": {}})
    assert gauge("certctl_notification_dead_total") == 0
    assert gauge("certctl_notification_events", phase="Failed") == 0
    assert gauge("certctl_notification_events", phase="Pending") == 3
    assert runtime.events["c"].resource_version == "2"


async def test_deleted_events_drop_their_idle_lock(runtime: NotificationRuntime) -> None:
    idle, busy = runtime.lock("idle"), runtime.lock("busy")
    assert runtime.lock("idle") is idle
    async with busy:
        runtime.observe("DELETED", event_body("idle"))
        runtime.observe("DELETED", event_body("busy"))
    assert set(runtime.locks) == {"busy"}
    assert not idle.locked()


async def test_only_sent_events_past_retention_expire(runtime: NotificationRuntime) -> None:
    bodies = [
        event_body("old", "Sent", "2026-01-01T10:59:00Z"),
        event_body("edge", "Sent", "2026-01-01T11:00:00Z"),
        event_body("new", "Sent", "2026-01-01T11:30:00Z"),
        event_body("dead", "Dead", "2026-01-01T09:00:00Z"),
        event_body("garbled", "Sent", "yesterday"),
    ]
    requeued = event_body("requeued", "Sent", "2026-01-01T10:00:00Z")
    requeued["metadata"]["annotations"] = {"certctl.io/requeue": "1"}
    records = [runtime.observe(None, item) for item in [*bodies, requeued]]
    expired = sorted(tracked.uid for tracked in records if tracked and runtime.expired(tracked, NOW))
    assert expired == ["edge", "old"], "a requeued Sent event is delivered again, not deleted"
    assert runtime.events["old"].sent_at == datetime(2026, 1, 1, 10, 59, tzinfo=UTC)
    assert runtime.events["garbled"].sent_at is None


async def test_a_version_written_by_the_events_own_handling_is_recognised_once(
    runtime: NotificationRuntime,
) -> None:
    written = event_body("busy", "Pending", version="7")
    runtime.remember_write(written)
    tracked = runtime.observe("MODIFIED", written)
    assert tracked is not None
    assert runtime.is_own_write("busy", tracked.resource_version)
    assert not runtime.is_own_write("busy", tracked.resource_version), "forgotten once seen"


async def test_a_deleted_event_is_forgotten(runtime: NotificationRuntime) -> None:
    runtime.remember_write(event_body("gone", "Pending", version="3"))
    runtime.observe("ADDED", event_body("gone", "Pending", version="3"))
    runtime.observe("DELETED", event_body("gone", "Pending", version="4"))
    assert "gone" not in runtime.events and "gone" not in runtime.own_writes
    assert runtime.phase_counts()[DeliveryPhase.PENDING] == 0


async def test_a_stopping_runtime_starts_nothing_new(
    runtime: NotificationRuntime, processed: list[WorkKey]
) -> None:
    runtime.observe("ADDED", event_body("early"))
    await runtime._process("early")
    assert processed == ["early"]
    runtime.observe("ADDED", event_body("late"))
    runtime.stopping.set()
    await runtime._process("late")
    await runtime._process(ChannelKey("ns", "c"))
    assert processed == ["early"], "nothing is visited or checked once stopping"


# ---------------------------------------------------------------- outcomes kept while the API is away


def failed_once() -> policy.DeliveryState:
    error = policy.DeliveryError(policy.ErrorKind.SERVER_ERROR, "HTTP 503 Service Unavailable", 503)
    return policy.on_failure(policy.DeliveryState(), error, NOW, policy.RetryPolicy())


async def test_a_kept_outcome_is_given_back_for_the_same_state_until_forgotten(
    runtime: NotificationRuntime,
) -> None:
    state = failed_once()
    runtime.keep_outcome(UID, state, DELIVERED, NOW + timedelta(minutes=1))
    kept = runtime.kept_outcome(UID, state)
    assert kept is not None
    assert kept.attempt == 2, "the attempt after one failure"
    assert kept.result is DELIVERED and kept.at == NOW + timedelta(minutes=1)
    assert runtime.kept_outcome(UID, state) is kept, "kept until the status write succeeds"
    runtime.forget_outcome(UID)
    assert runtime.kept_outcome(UID, state) is None
    assert runtime.kept_outcome("another-uid", state) is None


@pytest.mark.parametrize(
    "moved_on",
    [
        lambda state: policy.on_requeue(replace(state, phase=policy.DeliveryPhase.DEAD)),
        lambda state: policy.on_success(state, NOW + timedelta(minutes=2)),
        lambda state: replace(state, retry_count=state.retry_count + 1),
        lambda state: replace(state, last_attempt_at=NOW + timedelta(seconds=5)),
    ],
    ids=["requeued", "recorded-by-another-writer", "another-failure", "another-attempt"],
)
async def test_a_kept_outcome_is_void_once_the_state_moved_on(
    runtime: NotificationRuntime,
    moved_on: Callable[[policy.DeliveryState], policy.DeliveryState],
) -> None:
    state = failed_once()
    runtime.keep_outcome(UID, state, DELIVERED, NOW)
    assert runtime.kept_outcome(UID, moved_on(state)) is None
    assert runtime.kept_outcome(UID, state) is None, "a void outcome is dropped, not kept for later"


async def test_deleting_the_event_forgets_its_outcome(runtime: NotificationRuntime) -> None:
    state = policy.DeliveryState()
    runtime.keep_outcome(UID, state, DELIVERED, NOW)
    runtime.observe("DELETED", {"metadata": {"uid": UID, "name": "e", "namespace": "n"}})
    assert UID not in runtime.unrecorded


# --------------------------------------------------------------------------- channels


async def test_a_channel_is_kept_from_its_watch_without_managed_fields(runtime: NotificationRuntime) -> None:
    key = ChannelKey("team", "hook")
    watched = {
        "kind": "NotificationChannel",
        "metadata": {"name": "hook", "namespace": "team", "managedFields": [{"manager": "kubectl"}]},
        "spec": {"webhook": {"url": "http://127.0.0.1:9/"}},
    }
    runtime.channel_seen(key, watched)
    kept = runtime.channels[key]
    assert kept["spec"] == watched["spec"]
    assert "managedFields" not in kept["metadata"]
    assert "managedFields" in watched["metadata"], "the watch event's own body is left alone"

    changed = {**watched, "spec": {"webhook": {"url": "http://127.0.0.1:10/"}}}
    runtime.channel_seen(key, changed)
    assert runtime.channels[key]["spec"]["webhook"]["url"] == "http://127.0.0.1:10/"

    runtime.channel_seen(key, None)
    assert key not in runtime.channels
