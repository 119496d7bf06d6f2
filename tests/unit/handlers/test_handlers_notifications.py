"""The in-memory parts of the notification handlers: the event book, its gauges and the schedule."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from certctl_operator.api import DeliveryPhase
from certctl_operator.handlers import notifications as handlers
from certctl_operator.notify.senders import HttpClientPool, Notifier
from certctl_operator.policy.notification import RetryPolicy
from certctl_operator.settings import Settings

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def runtime() -> AsyncIterator[handlers.NotificationRuntime]:
    settings = Settings(notification_sent_retention=timedelta(hours=1))
    pool = HttpClientPool()
    yield handlers.NotificationRuntime(
        settings=settings, pool=pool, notifier=Notifier(pool), policy=RetryPolicy.from_settings(settings)
    )
    await pool.aclose()


def body(
    uid: str, phase: str | None = None, sent_at: str | None = None, version: str = "1"
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if phase:
        status["phase"] = phase
    if sent_at:
        status["sentAt"] = sent_at
    return {
        "metadata": {"uid": uid, "name": f"n-{uid}", "namespace": "ns", "resourceVersion": version},
        "status": status,
    }


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_the_book_counts_phases_and_feeds_the_gauges(runtime: handlers.NotificationRuntime) -> None:
    runtime.observe(None, body("a"))
    runtime.observe("ADDED", body("b", "Failed"))
    runtime.observe("ADDED", body("c", "Dead"))
    runtime.observe("MODIFIED", body("d", "Nonsense"))
    assert runtime.phase_counts() == {
        DeliveryPhase.PENDING: 2,
        DeliveryPhase.SENT: 0,
        DeliveryPhase.FAILED: 1,
        DeliveryPhase.DEAD: 1,
    }
    assert gauge("certctl_notification_dead_total") == 1
    assert gauge("certctl_notification_events", phase="Pending") == 2

    runtime.observe("MODIFIED", body("c", "Pending", version="2"))
    runtime.observe("DELETED", body("b", "Failed"))
    runtime.observe("MODIFIED", {"metadata": {}})
    assert gauge("certctl_notification_dead_total") == 0
    assert gauge("certctl_notification_events", phase="Failed") == 0
    assert gauge("certctl_notification_events", phase="Pending") == 3
    assert runtime.events["c"].resource_version == "2"


async def test_deleted_events_drop_their_idle_lock(runtime: handlers.NotificationRuntime) -> None:
    idle, busy = runtime.lock("idle"), runtime.lock("busy")
    assert runtime.lock("idle") is idle
    async with busy:
        runtime.observe("DELETED", body("idle"))
        runtime.observe("DELETED", body("busy"))
    assert set(runtime.locks) == {"busy"}
    assert not idle.locked()


async def test_only_sent_events_past_retention_expire(runtime: handlers.NotificationRuntime) -> None:
    bodies = [
        body("old", "Sent", "2026-01-01T10:59:00Z"),
        body("edge", "Sent", "2026-01-01T11:00:00Z"),
        body("new", "Sent", "2026-01-01T11:30:00Z"),
        body("dead", "Dead", "2026-01-01T09:00:00Z"),
        body("garbled", "Sent", "yesterday"),
    ]
    requeued = body("requeued", "Sent", "2026-01-01T10:00:00Z")
    requeued["metadata"]["annotations"] = {"certctl.io/requeue": "1"}
    records = [runtime.observe(None, item) for item in [*bodies, requeued]]
    expired = sorted(tracked.uid for tracked in records if tracked and runtime.expired(tracked, NOW))
    assert expired == ["edge", "old"], "a requeued Sent event is delivered again, not deleted"
    assert runtime.events["old"].sent_at == datetime(2026, 1, 1, 10, 59, tzinfo=UTC)
    assert runtime.events["garbled"].sent_at is None


async def test_events_are_scheduled_from_their_status(runtime: handlers.NotificationRuntime) -> None:
    failed = body("failed", "Failed")
    failed["status"]["nextRetryAt"] = "2026-01-01T12:05:00Z"
    sent = body("sent", "Sent", "2026-01-01T11:30:00Z")
    for item in (body("new"), failed, sent, body("dead", "Dead")):
        runtime.observe("ADDED", item)
        handlers.schedule_event(runtime, item, own_write=False, now=NOW)
    queue = runtime.queue
    assert queue.pending == 1, "only the new event is due at once"
    assert queue.scheduled("failed") == datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    assert queue.scheduled("sent") == datetime(2026, 1, 1, 12, 30, tzinfo=UTC), "deleted after retention"
    assert queue.scheduled("dead") is None and queue.scheduled("new") is None

    # A Failed event that is requeued is due at once; a Dead one is not scheduled at all.
    failed["metadata"]["annotations"] = {"certctl.io/requeue": "now"}
    handlers.schedule_event(runtime, failed, own_write=False, now=NOW)
    assert queue.scheduled("failed") is None and queue.pending == 2


async def test_overdue_retries_seen_after_a_restart_are_spread_over_one_interval(
    runtime: handlers.NotificationRuntime,
) -> None:
    schedules = set()
    for index in range(20):
        overdue = body(f"overdue-{index}", "Failed")
        overdue["status"]["nextRetryAt"] = "2026-01-01T11:00:00Z"
        handlers.schedule_event(runtime, overdue, own_write=False, now=NOW, first_seen=True)
        when = runtime.queue.scheduled(f"overdue-{index}")
        assert when is not None and NOW <= when <= NOW + runtime.interval
        schedules.add(when)
    assert len(schedules) > 1, "not all at once"

    # Once the operator runs, a retry that falls due is made at once.
    handlers.schedule_event(runtime, overdue, own_write=False, now=NOW)
    assert runtime.queue.scheduled("overdue-19") is None and runtime.queue.pending == 1


async def test_a_version_written_by_the_events_own_handling_is_not_visited_again(
    runtime: handlers.NotificationRuntime,
) -> None:
    written = body("busy", "Pending", version="7")
    runtime.remember_write(written)
    tracked = runtime.observe("MODIFIED", written)
    assert tracked is not None
    assert runtime.is_own_write("busy", tracked.resource_version)
    assert not runtime.is_own_write("busy", tracked.resource_version), "forgotten once seen"
    handlers.schedule_event(runtime, written, own_write=True, now=NOW)
    assert runtime.queue.pending == 0
    handlers.schedule_event(runtime, written, own_write=False, now=NOW)
    assert runtime.queue.pending == 1


async def test_a_deleted_event_is_forgotten(runtime: handlers.NotificationRuntime) -> None:
    runtime.remember_write(body("gone", "Pending", version="3"))
    runtime.observe("ADDED", body("gone", "Pending", version="3"))
    runtime.observe("DELETED", body("gone", "Pending", version="4"))
    assert "gone" not in runtime.events and "gone" not in runtime.own_writes
    assert runtime.phase_counts()[DeliveryPhase.PENDING] == 0


def test_channel_filter_and_initial_delay() -> None:
    ready = {"observedGeneration": 1, "type": "Webhook", "conditions": [{"type": "Ready", "status": "True"}]}
    assert not handlers.channel_needs_check(meta={"generation": 1}, status=ready)
    assert handlers.channel_needs_check(meta={"generation": 2}, status=ready)
    assert handlers.channel_needs_check(meta={"generation": 1}, status={**ready, "type": None})
    assert handlers.channel_needs_check(
        meta={"generation": 1}, status={**ready, "conditions": [{"type": "Ready", "status": "False"}]}
    )
    assert handlers.channel_needs_check(meta={"generation": 1}, status={**ready, "conditions": []})
    assert handlers.channel_needs_check(meta={"generation": 1}, status={})
    assert not handlers.channel_needs_check(meta={"generation": 1, "deletionTimestamp": "x"}, status={})
    assert handlers.channel_initial_delay(status={}, interval=30) == 0
    delays = {handlers.channel_initial_delay(status=ready, interval=30) for _ in range(50)}
    assert all(0 <= delay <= 30 for delay in delays)
    assert len(delays) > 1, "re-checks of a restarted operator are spread out"


async def test_channels_are_checked_until_ready(runtime: handlers.NotificationRuntime) -> None:
    queue = runtime.queue
    new = handlers.ChannelKey("ns", "new")
    handlers.schedule_channel(runtime, new, {"metadata": {"generation": 1}, "status": {}}, NOW)
    assert queue.pending == 1, "a channel never checked is checked at once"

    waiting = handlers.ChannelKey("ns", "waiting")
    not_ready = {
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "type": "Webhook",
            "conditions": [{"type": "Ready", "status": "False"}],
        },
    }
    handlers.schedule_channel(runtime, waiting, not_ready, NOW)
    first = queue.scheduled(waiting)
    assert first is not None and NOW <= first <= NOW + runtime.interval
    handlers.schedule_channel(runtime, waiting, not_ready, NOW + timedelta(seconds=1))
    assert queue.scheduled(waiting) == first, "another watch event keeps the schedule"

    ready = {
        **not_ready,
        "status": {**not_ready["status"], "conditions": [{"type": "Ready", "status": "True"}]},
    }
    handlers.schedule_channel(runtime, waiting, ready, NOW)
    assert queue.scheduled(waiting) is None and queue.pending == 1


async def test_a_stopping_runtime_starts_nothing_new(runtime: handlers.NotificationRuntime) -> None:
    runtime.observe("ADDED", body("late"))
    runtime.stopping.set()
    await runtime._process("late")  # returns without reading anything: there is no API client
    await runtime._process(handlers.ChannelKey("ns", "c"))


def test_routine_success_lines_are_dropped_and_everything_else_kept() -> None:
    quiet = handlers.QuietRoutineSuccess()

    def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)

    assert not quiet.filter(record("Handler 'notification-bookkeeping' succeeded."))
    assert not quiet.filter(record("Handler 'channel-secret-watch' succeeded."))
    assert quiet.filter(record("Handler 'something-else' succeeded."))
    assert quiet.filter(record("Handler 'notification-bookkeeping' succeeded.", logging.WARNING))
    assert quiet.filter(record("notification delivered on attempt 1"))
