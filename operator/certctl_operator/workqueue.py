"""A keyed work queue with a single scheduler: the timers of every queue-driven controller.

Watch events and the scheduler put object keys on the queue; a fixed number
of workers take them off. A key waiting in the queue is there once however
often it is added, and a key is never processed by two workers at once: one
added while it is being processed is processed again afterwards. So a burst
of events for one object costs one or two reconciles, and the reconcile of an
object never races with itself.

Each key has at most one scheduled time (:meth:`WorkQueue.schedule` replaces
it). One asyncio task sleeps until the earliest one, so ten thousand objects
that need nothing for weeks cost one heap entry each and no task, and the
schedule is rebuilt from the objects' status after a restart because every
reconcile ends by scheduling its object again.

A reconcile that raises is retried with an in-memory exponential back-off per
key; durable retry state (issuance back-off) lives in the objects' status.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from certctl_operator.policy.clock import utc_now

K = TypeVar("K", bound=Hashable)

logger = logging.getLogger("certctl.workqueue")


class Requeue(Exception):
    """Raised by ``process``: try the key again after the back-off, without logging a traceback."""


class WorkQueue(Generic[K]):
    """Process keys with ``process(key)`` on ``workers`` tasks; see the module documentation."""

    def __init__(
        self,
        process: Callable[[K], Awaitable[None]],
        *,
        workers: int = 4,
        name: str = "work",
        clock: Callable[[], datetime] = utc_now,
        max_sleep: timedelta = timedelta(minutes=1),
        retry_base: timedelta = timedelta(milliseconds=250),
        retry_cap: timedelta = timedelta(minutes=1),
        log_extra: Callable[[K], Mapping[str, Any]] | None = None,
    ) -> None:
        """``log_extra(key)`` gives the ``extra`` of log records about ``key`` (its object reference)."""
        if workers < 1:
            raise ValueError("a work queue needs at least one worker")
        self._process = process
        self._workers = workers
        self._name = name
        self._clock = clock
        self._max_sleep = max_sleep
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._log_extra = log_extra
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._failures: dict[K, int] = {}
        self._due: dict[K, datetime] = {}
        self._heap: list[tuple[datetime, int, K]] = []
        self._sequence = itertools.count()
        self._schedule_changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------------ adding work

    def add(self, key: K) -> None:
        """Process ``key`` as soon as a worker is free (once, however often it is added)."""
        if key in self._active:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._idle.clear()
        self._ready.put_nowait(key)

    def schedule(self, key: K, when: datetime | None) -> None:
        """Process ``key`` at ``when``, replacing its earlier schedule; None cancels it."""
        if when is None:
            self._due.pop(key, None)
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._sequence), key))
        if self._heap[0][2] == key and self._heap[0][0] == when:
            self._schedule_changed.set()
        if len(self._heap) > 2 * len(self._due) + 64:
            self._compact()

    def scheduled(self, key: K) -> datetime | None:
        """When ``key`` is next due, if it is scheduled."""
        return self._due.get(key)

    def forget(self, key: K) -> None:
        """Drop the schedule and the retry state of ``key`` (its object is gone)."""
        self._due.pop(key, None)
        self._failures.pop(key, None)
        self._dirty.discard(key)

    def retry(self, key: K) -> timedelta:
        """Process ``key`` again after a back-off that grows with its consecutive failures."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay: timedelta = min(self._retry_base * (2 ** min(failures, 32)), self._retry_cap)
        self.schedule(key, self._clock() + delay)
        return delay

    # ------------------------------------------------------------------ introspection

    def processing(self, key: K) -> bool:
        """Whether ``key`` is being processed now."""
        return key in self._active

    @property
    def pending(self) -> int:
        """Keys waiting for or in processing."""
        return len(self._queued) + len(self._active)

    @property
    def scheduled_count(self) -> int:
        return len(self._due)

    async def wait_idle(self) -> None:
        """Until no key is waiting or being processed (scheduled keys do not count)."""
        await self._idle.wait()

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"{self._name}-worker-{index}")
            for index in range(self._workers)
        ]
        self._tasks.append(asyncio.create_task(self._scheduler(), name=f"{self._name}-scheduler"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _worker(self) -> None:
        while True:
            key = await self._ready.get()
            self._queued.discard(key)
            if key in self._active:
                self._dirty.add(key)
                continue
            self._active.add(key)
            try:
                await self._process(key)
            except asyncio.CancelledError:
                raise
            except Requeue as requeue:
                delay = self.retry(key)
                logger.debug(
                    "%s: %s again in %.2fs: %s",
                    self._name,
                    key,
                    delay.total_seconds(),
                    requeue,
                    extra=self._extra(key),
                )
            except Exception:
                delay = self.retry(key)
                logger.exception(
                    "%s: processing %s failed; retrying in %.1fs",
                    self._name,
                    key,
                    delay.total_seconds(),
                    extra=self._extra(key),
                )
            else:
                self._failures.pop(key, None)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
                if not self._queued and not self._active:
                    self._idle.set()

    async def _scheduler(self) -> None:
        while True:
            self._schedule_changed.clear()
            now = self._clock()
            while self._heap:
                when, _, key = self._heap[0]
                if self._due.get(key) != when:
                    heapq.heappop(self._heap)
                elif when <= now:
                    heapq.heappop(self._heap)
                    del self._due[key]
                    self.add(key)
                else:
                    break
            sleep = self._max_sleep
            if self._heap:
                sleep = min(sleep, self._heap[0][0] - now)
            # A hair late rather than early: a reconcile woken before its time only reschedules.
            timeout = max(sleep.total_seconds(), 0.0) + 0.005
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._schedule_changed.wait()

    def _extra(self, key: K) -> dict[str, Any] | None:
        return dict(self._log_extra(key)) if self._log_extra is not None else None

    def _compact(self) -> None:
        self._heap = [(when, next(self._sequence), key) for key, when in self._due.items()]
        heapq.heapify(self._heap)


__all__ = ["Requeue", "WorkQueue"]
