"""The pure parts of the notification handlers: filters, delays, the event book and its gauges."""

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
    runtime.observe(None, body("old", "Sent", "2026-01-01T10:59:00Z"))
    runtime.observe(None, body("edge", "Sent", "2026-01-01T11:00:00Z"))
    runtime.observe(None, body("new", "Sent", "2026-01-01T11:30:00Z"))
    runtime.observe(None, body("dead", "Dead", "2026-01-01T09:00:00Z"))
    runtime.observe(None, body("garbled", "Sent", "yesterday"))
    assert sorted(tracked.uid for tracked in runtime.expired(NOW)) == ["edge", "old"]
    assert runtime.events["old"].sent_at == datetime(2026, 1, 1, 10, 59, tzinfo=UTC)
    assert runtime.events["garbled"].sent_at is None


def test_sweep_period_is_a_tenth_of_the_retention_within_bounds() -> None:
    assert handlers.sweep_period(timedelta(days=7)) == 600
    assert handlers.sweep_period(timedelta(minutes=10)) == 60
    assert handlers.sweep_period(timedelta(seconds=3)) == 1


def test_event_filters_and_initial_delays() -> None:
    assert handlers.event_wants_attention(annotations={}, status={})
    assert handlers.event_wants_attention(annotations={}, status={"phase": "Failed"})
    assert not handlers.event_wants_attention(annotations={}, status={"phase": "Dead"})
    assert handlers.event_wants_attention(annotations={"certctl.io/requeue": "1"}, status={"phase": "Dead"})

    assert handlers.event_initial_delay(annotations={}, status={}) == 0
    assert handlers.event_initial_delay(annotations={}, status={"phase": "Pending"}) == 0
    assert (
        handlers.event_initial_delay(annotations={"certctl.io/requeue": "1"}, status={"phase": "Failed"}) == 0
    )
    delays = {handlers.event_initial_delay(annotations={}, status={"phase": "Failed"}) for _ in range(50)}
    assert all(0 <= delay <= handlers.TIMER_INTERVAL for delay in delays)
    assert len(delays) > 1, "retries of a restarted operator are spread out"


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
    assert handlers.channel_initial_delay(status={}) == 0
    assert 0 <= handlers.channel_initial_delay(status=ready) <= handlers.TIMER_INTERVAL


def test_routine_success_lines_are_dropped_and_everything_else_kept() -> None:
    quiet = handlers.QuietRoutineSuccess()

    def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)

    assert not quiet.filter(record("Timer 'notification-delivery' succeeded."))
    assert not quiet.filter(record("Handler 'notification-bookkeeping' succeeded."))
    assert quiet.filter(record("Handler 'something-else' succeeded."))
    assert quiet.filter(record("Timer 'notification-delivery' succeeded.", logging.WARNING))
    assert quiet.filter(record("notification delivered on attempt 1"))
