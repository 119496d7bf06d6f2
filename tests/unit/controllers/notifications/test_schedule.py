"""When the queue comes back to an event or a channel, from the body of a watch event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.notification_events import event_body

from certctl_operator.controllers.notifications import schedule
from certctl_operator.controllers.notifications.runtime import ChannelKey, NotificationRuntime

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def test_events_are_scheduled_from_their_status(runtime: NotificationRuntime) -> None:
    failed = event_body("failed", "Failed")
    failed["status"]["nextRetryAt"] = "2026-01-01T12:05:00Z"
    sent = event_body("sent", "Sent", "2026-01-01T11:30:00Z")
    for item in (event_body("new"), failed, sent, event_body("dead", "Dead")):
        runtime.observe("ADDED", item)
        schedule.schedule_event(runtime, item, own_write=False, now=NOW)
    queue = runtime.queue
    assert queue.pending == 1, "only the new event is due at once"
    assert queue.scheduled("failed") == datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    assert queue.scheduled("sent") == datetime(2026, 1, 1, 12, 30, tzinfo=UTC), "deleted after retention"
    assert queue.scheduled("dead") is None and queue.scheduled("new") is None

    # A Failed event that is requeued is due at once; a Dead one is not scheduled at all.
    failed["metadata"]["annotations"] = {"certctl.io/requeue": "now"}
    schedule.schedule_event(runtime, failed, own_write=False, now=NOW)
    assert queue.scheduled("failed") is None and queue.pending == 2


async def test_overdue_retries_seen_after_a_restart_are_spread_over_one_interval(
    runtime: NotificationRuntime,
) -> None:
    schedules = set()
    for index in range(20):
        overdue = event_body(f"overdue-{index}", "Failed")
        overdue["status"]["nextRetryAt"] = "2026-01-01T11:00:00Z"
        schedule.schedule_event(runtime, overdue, own_write=False, now=NOW, first_seen=True)
        when = runtime.queue.scheduled(f"overdue-{index}")
        assert when is not None and NOW <= when <= NOW + runtime.interval
        schedules.add(when)
    assert len(schedules) > 1, "not all at once"

    # Once the operator runs, a retry that falls due is made at once.
    schedule.schedule_event(runtime, overdue, own_write=False, now=NOW)
    assert runtime.queue.scheduled("overdue-19") is None and runtime.queue.pending == 1


async def test_a_version_written_by_the_events_own_handling_is_not_visited_again(
    runtime: NotificationRuntime,
) -> None:
    written = event_body("busy", "Pending", version="7")
    runtime.remember_write(written)
    tracked = runtime.observe("MODIFIED", written)
    assert tracked is not None
    assert runtime.is_own_write("busy", tracked.resource_version)
    schedule.schedule_event(runtime, written, own_write=True, now=NOW)
    assert runtime.queue.pending == 0
    schedule.schedule_event(runtime, written, own_write=False, now=NOW)
    assert runtime.queue.pending == 1


def test_channel_filter_and_initial_delay() -> None:
    ready = {"observedGeneration": 1, "type": "Webhook", "conditions": [{"type": "Ready", "status": "True"}]}
    assert not schedule.channel_needs_check(meta={"generation": 1}, status=ready)
    assert schedule.channel_needs_check(meta={"generation": 2}, status=ready)
    assert schedule.channel_needs_check(meta={"generation": 1}, status={**ready, "type": None})
    assert schedule.channel_needs_check(
        meta={"generation": 1}, status={**ready, "conditions": [{"type": "Ready", "status": "False"}]}
    )
    assert schedule.channel_needs_check(meta={"generation": 1}, status={**ready, "conditions": []})
    assert schedule.channel_needs_check(meta={"generation": 1}, status={})
    assert not schedule.channel_needs_check(meta={"generation": 1, "deletionTimestamp": "x"}, status={})
    assert schedule.channel_initial_delay(status={}, interval=30) == 0
    delays = {schedule.channel_initial_delay(status=ready, interval=30) for _ in range(50)}
    assert all(0 <= delay <= 30 for delay in delays)
    assert len(delays) > 1, "re-checks of a restarted operator are spread out"


async def test_channels_are_checked_until_ready(runtime: NotificationRuntime) -> None:
    queue = runtime.queue
    new = ChannelKey("ns", "new")
    schedule.schedule_channel(runtime, new, {"metadata": {"generation": 1}, "status": {}}, NOW)
    assert queue.pending == 1, "a channel never checked is checked at once"

    waiting = ChannelKey("ns", "waiting")
    not_ready = {
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "type": "Webhook",
            "conditions": [{"type": "Ready", "status": "False"}],
        },
    }
    schedule.schedule_channel(runtime, waiting, not_ready, NOW)
    first = queue.scheduled(waiting)
    assert first is not None and NOW <= first <= NOW + runtime.interval
    schedule.schedule_channel(runtime, waiting, not_ready, NOW + timedelta(seconds=1))
    assert queue.scheduled(waiting) == first, "another watch event keeps the schedule"

    ready = {
        **not_ready,
        "status": {**not_ready["status"], "conditions": [{"type": "Ready", "status": "True"}]},
    }
    schedule.schedule_channel(runtime, waiting, ready, NOW)
    assert queue.scheduled(waiting) is None and queue.pending == 1
