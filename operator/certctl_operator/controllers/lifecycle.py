"""Operator start-up and shutdown: Kopf settings, the API client, the HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf
from kopf._cogs.structs.references import Resource as KopfResource
from kopf._core.engines.daemons import DaemonsMemory
from kopf._core.engines.indexing import IndexingMemory
from kopf._core.reactor.inventory import ResourceMemories, ResourceMemory

from certctl_operator import API_GROUP, API_VERSION, heap, metrics
from certctl_operator.api import RESOURCES
from certctl_operator.api.metadata_keys import FINALIZER_KOPF
from certctl_operator.context import OperatorContext
from certctl_operator.kube.client import create_api_client
from certctl_operator.web.server import start_server

logger = logging.getLogger("certctl.operator")


class UnusedDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """The diff base of an operator whose handlers never look at what changed.

    Kopf builds a deep copy of every object on every watch event to compare it
    with the last handled one. Only change handlers (``on.create``,
    ``on.update``, ``on.resume``, ``on.delete``, ``on.field``) and idle timers
    use that comparison, and the operator has none (the handlers watch events
    and reconcile from work queues; tests/unit/test_kopf_settings.py keeps it
    so), so the copy is not made and nothing is stored.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None


class OperatorMemo(kopf.Memo):
    """The operator's memo, shared by every object instead of copied for each.

    Kopf gives each object a shallow copy of the memo, for handlers that keep
    per-object state in it. None does here (per-object state lives in the
    runtimes, see context.py); for twenty thousand objects the copies took
    about 5 MB.
    """

    def __copy__(self) -> OperatorMemo:
        return self


def kinds_without_daemons(registry: kopf.OperatorRegistry) -> frozenset[tuple[str, str]]:
    """The (apiVersion, kind) of the operator's kinds Kopf watches that have no daemon and no index handler.

    Kinds with no handler at all are not watched by Kopf (ManagedCertificates: their own
    list-then-watch in controllers/certificates/watch.py) and have no memories there.
    """
    api_version = f"{API_GROUP}/{API_VERSION}"
    lean = set()
    for model in RESOURCES:
        resource = KopfResource(API_GROUP, API_VERSION, model.PLURAL, kind=model.KIND)
        watched = registry._watching.has_handlers(resource) or registry._changing.has_handlers(resource)
        if (
            watched
            and not registry._spawning.has_handlers(resource)
            and not registry._indexing.has_handlers(resource)
        ):
            lean.add((api_version, model.KIND))
    return frozenset(lean)


class OperatorMemories(ResourceMemories):
    """Kopf's per-object memories, with one shared record of daemons and indexing for kinds that have neither.

    Kopf keeps a memory per object with a record of its daemons (a set, a
    dict) and one of its indexing, used only for objects of a kind with a
    daemon or an index handler: those empty records are about 0.5 KB per
    object, 5 MB for ten thousand NotificationEvents. Objects
    of ``lean_kinds`` (see kinds_without_daemons) share one empty record of
    each instead; Kopf reads them only to stop daemons at exit, and finds none.
    """

    def __init__(self, lean_kinds: frozenset[tuple[str, str]]) -> None:
        super().__init__()
        self._lean_kinds = lean_kinds
        self._no_daemons = DaemonsMemory()
        self._no_indexing = IndexingMemory()

    async def recall(
        self,
        raw_body: kopf.RawBody,
        *,
        memobase: Any = None,
        noticed_by_listing: bool = False,
        ephemeral: bool = False,
    ) -> ResourceMemory:
        memory = await super().recall(
            raw_body, memobase=memobase, noticed_by_listing=noticed_by_listing, ephemeral=ephemeral
        )
        # Set on every recall (the same two objects): cheaper than looking the object up twice.
        if (raw_body.get("apiVersion"), raw_body.get("kind")) in self._lean_kinds:
            memory.daemons_memory = self._no_daemons
            memory.indexing_memory = self._no_indexing
        return memory


QUEUE_IDLE_SECONDS = 1.0
"""How long Kopf keeps an object's worker task after its last event (see configure_kopf)."""


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Keep Kopf's bookkeeping under our own domain, not kopf.zalando.org."""
    settings.persistence.finalizer = FINALIZER_KOPF
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = UnusedDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    # Log lines are not Events: Events are posted explicitly, on transitions only.
    settings.posting.loggers = False
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    # Kopf keeps a worker task per object for this long after the object's last event (default 5 s).
    # Every handler here is an event handler or a daemon, which the wait does not serve (it exists
    # for change handlers' consistency); in a burst over ten thousand objects the idle workers and
    # the events they hold took about 20 MB of the operator's peak memory.
    settings.queueing.idle_timeout = QUEUE_IDLE_SECONDS
    # Kopf does not cancel its handler tasks and daemons at exit: one still running after this grace
    # is left behind while the cleanup closes the clients it uses. Longer than a delivery's grace
    # on the wire (notifications.DELIVERY_STOP_GRACE), so every stage ends cleanly first.
    settings.background.instant_exit_timeout = 10.0
    settings.peering.standalone = True


HEAP_CHECK_SECONDS = 30.0
"""How often resident memory is looked at to decide whether to trim the C heap (see heap.py)."""


async def trim_heap_after_bursts(trimmer: heap.HeapTrimmer, interval: float = HEAP_CHECK_SECONDS) -> None:
    """Give freed heap pages back once memory has grown since the last trim (after a burst)."""
    while True:
        await asyncio.sleep(interval)  # the period of a check, not a wait for another task
        before = heap.resident_bytes()
        if before is None:
            return
        if not trimmer.due(before):
            trimmer.observed(before)
            continue
        heap.trim()
        after = heap.resident_bytes() or before
        trimmer.trimmed(after)
        logger.debug("gave %.1f MB of freed heap back to the system", (before - after) / 2**20)


@kopf.on.startup()
async def start_operator(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    context: OperatorContext = memo.context
    configure_kopf(settings)
    context.api = await create_api_client(
        qps=context.settings.client_qps, burst=context.settings.client_burst
    )
    if context.http_runner is None:
        # With leader election the server already runs (it served the standby until now).
        context.http_runner = await start_server(context)
    if heap.available() and context.heap_trim_task is None:
        context.heap_trim_task = asyncio.create_task(
            trim_heap_after_bursts(heap.HeapTrimmer()), name="heap trim"
        )
    context.ready = True
    metrics.leader.set(1)  # this process acts: it holds the Lease, or runs without leader election
    logger.info("certctl-operator started")


@kopf.on.cleanup()
async def stop_operator(memo: Any, **_: Any) -> None:
    context: OperatorContext = memo.context
    context.ready = False
    context.not_ready_reason = "stopping"
    metrics.leader.set(0)
    trim_task, context.heap_trim_task = context.heap_trim_task, None
    if trim_task is not None:
        trim_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trim_task
    runner, context.http_runner = context.http_runner, None
    if runner is not None:
        await runner.cleanup()
    if context.api is not None:
        await context.api.close()
    context.crypto_pool.shutdown(wait=False, cancel_futures=True)
    context.key_pool.shutdown(wait=False, cancel_futures=True)
    logger.info("certctl-operator stopped")
