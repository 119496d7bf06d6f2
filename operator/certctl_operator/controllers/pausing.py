"""Waiting inside Kopf daemons and timers without leaving stray tasks behind.

Kopf's ``await stopped.wait(n)`` runs the wait in a task of its own that ends
with ``TimeoutError`` when ``n`` passes. If that moment falls into the
operator's shutdown, Kopf collects the finished task among the "hung" ones
and re-raises its error, so a clean SIGTERM exits non-zero. :func:`pause`
waits in the caller's own task instead, looking at the stop flag in short
steps.
"""

from __future__ import annotations

import asyncio
import contextlib

import kopf

# How late a stop request may be noticed: short against Kopf's grace periods.
STOP_POLL_SECONDS = 0.25


async def pause(stopped: kopf.DaemonStopped, seconds: float, wake: asyncio.Event | None = None) -> None:
    """Wait ``seconds``, or less when the daemon is stopped or ``wake`` is set."""
    loop = asyncio.get_running_loop()
    end = loop.time() + max(seconds, 0.0)
    while not stopped and not (wake is not None and wake.is_set()):
        remaining = end - loop.time()
        if remaining <= 0:
            return
        step = min(remaining, STOP_POLL_SECONDS)
        if wake is None:
            await asyncio.sleep(step)
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(step):
                    await wake.wait()
