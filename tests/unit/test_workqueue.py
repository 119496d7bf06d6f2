"""The work queue: one key processed once at a time, scheduled keys processed when due."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest

from certctl_operator.workqueue import Requeue, WorkQueue

DEADLINE = 5.0


class Recorder:
    """A ``process`` function that records calls and can be held on a gate."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.running: Counter[str] = Counter()
        self.overlaps = 0
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.changed = asyncio.Condition()
        self.fail: dict[str, int] = {}

    async def __call__(self, key: str) -> None:
        self.running[key] += 1
        if self.running[key] > 1:
            self.overlaps += 1
        self.started.set()
        async with self.changed:
            self.changed.notify_all()
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail.get(key, 0) > 0:
                self.fail[key] -= 1
                raise Requeue("not yet")
        finally:
            self.running[key] -= 1
            async with self.changed:
                self.calls[key] += 1
                self.changed.notify_all()

    async def wait(self, predicate: Callable[[], bool]) -> None:
        async def until() -> None:
            async with self.changed:
                await self.changed.wait_for(predicate)

        await asyncio.wait_for(until(), DEADLINE)


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def queue(recorder: Recorder) -> AsyncIterator[WorkQueue[str]]:
    work = WorkQueue(
        recorder,
        workers=3,
        name="test",
        retry_base=timedelta(milliseconds=10),
        max_sleep=timedelta(seconds=1),
    )
    work.start()
    yield work
    await work.stop()


async def test_a_key_added_many_times_is_processed_once(queue: WorkQueue[str], recorder: Recorder) -> None:
    recorder.gate = asyncio.Event()
    queue.add("blocker")
    await asyncio.wait_for(recorder.started.wait(), DEADLINE)
    for _ in range(10):
        queue.add("a")
    recorder.gate.set()
    await recorder.wait(lambda: recorder.calls["a"] >= 1)
    await asyncio.wait_for(queue.wait_idle(), DEADLINE)
    assert recorder.calls["a"] == 1


async def test_a_key_added_while_processing_runs_again_afterwards_never_alongside(
    queue: WorkQueue[str], recorder: Recorder
) -> None:
    recorder.gate = asyncio.Event()
    queue.add("a")
    await asyncio.wait_for(recorder.started.wait(), DEADLINE)
    queue.add("a")
    queue.add("a")
    assert queue.pending == 1  # being processed; the re-adds wait for it
    recorder.gate.set()
    await recorder.wait(lambda: recorder.calls["a"] == 2)
    await asyncio.wait_for(queue.wait_idle(), DEADLINE)
    assert recorder.calls["a"] == 2 and recorder.overlaps == 0


async def test_different_keys_are_processed_in_parallel(queue: WorkQueue[str], recorder: Recorder) -> None:
    recorder.gate = asyncio.Event()
    for key in ("a", "b", "c"):
        queue.add(key)

    await recorder.wait(lambda: sum(recorder.running.values()) == 3)
    recorder.gate.set()
    await recorder.wait(lambda: all(recorder.calls[k] == 1 for k in "abc"))


async def test_scheduled_keys_run_when_due_and_a_new_schedule_replaces_the_old(
    queue: WorkQueue[str], recorder: Recorder
) -> None:
    now = datetime.now(UTC)
    queue.schedule("later", now + timedelta(hours=1))
    queue.schedule("soon", now + timedelta(milliseconds=50))
    queue.schedule("moved", now + timedelta(hours=2))
    queue.schedule("moved", now + timedelta(milliseconds=80))
    queue.schedule("cancelled", now + timedelta(milliseconds=20))
    queue.schedule("cancelled", None)
    await recorder.wait(lambda: recorder.calls["soon"] == 1 and recorder.calls["moved"] == 1)
    assert datetime.now(UTC) >= now + timedelta(milliseconds=80)
    assert recorder.calls["later"] == 0 and recorder.calls["cancelled"] == 0
    assert queue.scheduled("later") == now + timedelta(hours=1)
    assert queue.scheduled("soon") is None and queue.scheduled_count == 1


async def test_many_reschedules_keep_the_heap_small(queue: WorkQueue[str]) -> None:
    now = datetime.now(UTC)
    for round_ in range(50):
        for key in range(20):
            queue.schedule(str(key), now + timedelta(hours=1, seconds=round_))
    assert queue.scheduled_count == 20
    assert len(queue._heap) <= 2 * 20 + 64 + 1


async def test_requeue_retries_with_back_off_until_it_succeeds(
    queue: WorkQueue[str], recorder: Recorder
) -> None:
    recorder.fail["flaky"] = 3
    queue.add("flaky")
    await recorder.wait(lambda: recorder.calls["flaky"] == 4)
    await asyncio.wait_for(queue.wait_idle(), DEADLINE)
    assert recorder.fail["flaky"] == 0 and queue.scheduled("flaky") is None


async def test_forget_drops_the_schedule(queue: WorkQueue[str], recorder: Recorder) -> None:
    queue.schedule("gone", datetime.now(UTC) + timedelta(milliseconds=30))
    queue.forget("gone")
    queue.schedule("marker", datetime.now(UTC) + timedelta(milliseconds=60))
    await recorder.wait(lambda: recorder.calls["marker"] == 1)
    assert recorder.calls["gone"] == 0
