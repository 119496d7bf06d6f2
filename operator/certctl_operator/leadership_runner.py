"""``certctl-operator run`` with leader election: one active replica, the others on standby.

The life of a replica:

1. Start the HTTP server at once. ``/healthz`` answers; ``/readyz`` answers
   200 as soon as the replica has read the Lease, and stays 200 while it
   keeps reaching the API server (it could take over): a standby is Ready,
   so a Deployment with several replicas completes its rollouts. Who leads
   is told by the ``certctl_leader`` metric and the Lease, not by readiness.
   A standby serves CRLs from their ConfigMaps and answers OCSP requests
   ``tryLater`` (see :mod:`certctl_operator.web.standby`).
2. Stand by until the Lease is ours (see :mod:`certctl_operator.policy.leadership`).
   No Kopf handler runs before that: nothing is watched, nothing is written.
3. Run the operator (Kopf) and keep renewing the Lease alongside it;
   ``certctl_leader`` is 1 while the operator runs (set by its start-up handler).
4. On SIGTERM: stop the operator cleanly while still holding the Lease, then
   release it, so a standby takes over at its next look instead of waiting
   for the Lease to expire. Exit 0.
5. If the Lease cannot be renewed within the renew deadline, or someone
   else holds it: stop the operator at once (forcibly if it does not stop
   before the deadline that keeps two leaders apart) and exit with
   :data:`EXIT_LOST_LEADERSHIP`, so Kubernetes restarts the container,
   which comes back as a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

from certctl_operator import metrics
from certctl_operator.context import OperatorContext
from certctl_operator.kube.client import create_api_client
from certctl_operator.kube.leader_election import LeaderElector, LeadershipLost, candidate_identity
from certctl_operator.web.server import start_server
from certctl_operator.web.standby import Standby

logger = logging.getLogger("certctl.leader-election")

EXIT_LOST_LEADERSHIP = 3
"""Exit status after losing the Lease (any non-zero status makes Kubernetes restart the container)."""

STANDBY = "standby"
UNREACHABLE = "cannot reach the API server"

OperatorRun = Callable[[asyncio.Event, asyncio.Event], Coroutine[Any, Any, None]]
"""Runs the operator until the stop flag (first argument) is set; sets the ready flag (second)
once its startup handlers have run (``kopf.operator(stop_flag=..., ready_flag=...)``)."""


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()


async def run_with_leader_election(context: OperatorContext, run_operator: OperatorRun) -> int:
    """Stand by, lead, and stop as described in the module docstring; returns the exit status."""
    settings = context.settings
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    context.ready = False
    context.not_ready_reason = STANDBY
    metrics.leader.set(0)
    api = await create_api_client()
    elector = LeaderElector(
        api,
        settings.operator_namespace,
        settings.leader_election_lease_name,
        candidate_identity(),
        settings.lease_timings(),
    )

    def standby_readiness() -> tuple[bool, str]:
        if elector.last_contact is None:
            return False, "starting"
        return (True, STANDBY) if elector.able_to_take_over() else (False, UNREACHABLE)

    context.standby_readiness = standby_readiness
    context.standby = Standby(api)
    context.http_runner = await start_server(context)
    logger.info(
        "standing by for Lease %s/%s as %s (lease %s, renew deadline %s, retry every %s)",
        elector.namespace,
        elector.name,
        elector.identity,
        settings.leader_election_lease_duration,
        settings.leader_election_renew_deadline,
        settings.leader_election_retry_period,
    )
    try:
        if not await elector.acquire(stop):
            logger.info("stopped while standing by")
            return 0
        return await _lead(context, elector, run_operator, stop)
    finally:
        leftover, context.http_runner = context.http_runner, None
        if leftover is not None:
            await leftover.cleanup()
        await api.close()


async def _lead(
    context: OperatorContext, elector: LeaderElector, run_operator: OperatorRun, stop: asyncio.Event
) -> int:
    operator_stop, operator_ready = asyncio.Event(), asyncio.Event()
    # Created before the operator: Kopf leaves tasks that existed before it started alone.
    holding = asyncio.create_task(elector.hold(), name="leader-election renewals")
    stopping = asyncio.create_task(stop.wait(), name="leader-election stop signal")
    started = asyncio.create_task(operator_ready.wait(), name="leader-election operator started")
    operator = asyncio.create_task(run_operator(operator_stop, operator_ready), name="operator")
    try:
        while True:
            waiting = {holding, operator} | {task for task in (stopping, started) if not task.done()}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if started in done and not operator.done():
                # Kopf installs its own SIGINT/SIGTERM handlers; take them back so a stop
                # always goes through the stop flag (and so through this function).
                _install_signal_handlers(stop)
                # The operator's start-up handlers have run: it acts, and readiness and the PKI
                # endpoints are its own from now on.
                context.standby_readiness = None
                context.standby = None
            if operator in done:
                # Stopped or failed: either way it acts no more, so the Lease can go to a
                # standby now.
                metrics.leader.set(0)
                holding.cancel()
                with contextlib.suppress(asyncio.CancelledError, LeadershipLost):
                    await holding
                _install_signal_handlers(stop)
                await elector.release()
                operator.result()  # re-raise what stopped the operator, if anything
                return 0
            if holding in done:
                error = holding.exception()
                if not isinstance(error, LeadershipLost):
                    # Renewing broke in an unexpected way: no longer sure to lead, so stop the same way.
                    logger.error("renewing the Lease failed unexpectedly", exc_info=error)
                return await _abdicate(context, elector, operator, operator_stop, str(error))
            if stopping in done:
                logger.info("stopping the operator; the Lease is released once it has stopped")
                operator_stop.set()
    finally:
        for task in (stopping, started, holding):
            task.cancel()


async def _abdicate(
    context: OperatorContext,
    elector: LeaderElector,
    operator: asyncio.Task[None],
    operator_stop: asyncio.Event,
    reason: str,
) -> int:
    """Leadership is gone: stop acting before anyone else may start, then exit non-zero."""
    metrics.leader.set(0)
    context.standby_readiness = None
    context.ready = False
    context.not_ready_reason = "lost leadership"
    deadline = elector.stop_deadline()
    logger.error("lost leadership: %s; stopping the operator", reason)
    operator_stop.set()
    with contextlib.suppress(TimeoutError, Exception):
        async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
            await asyncio.shield(operator)
    if not operator.done():
        operator.cancel()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            async with asyncio.timeout(0.5):
                await operator
    if not operator.done():
        logger.error("the operator did not stop in time; exiting at once")
        _flush_logs()
        os._exit(EXIT_LOST_LEADERSHIP)
    return EXIT_LOST_LEADERSHIP


__all__ = ["EXIT_LOST_LEADERSHIP", "run_with_leader_election"]
