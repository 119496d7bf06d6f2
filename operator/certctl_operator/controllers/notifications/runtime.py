"""The notification controller's per-process state: the work queue and the book kept from the watch.

:class:`NotificationRuntime` holds the notifier, the one keyed work queue
that events (by uid) and channels (by :class:`ChannelKey`) share, a small
record per event (:class:`TrackedEvent`, never its body), the per-phase
counts behind the gauges, the per-event locks, and the outcomes of attempts
that could not be written yet (:class:`UnrecordedOutcome`). Nothing here
decides when to try again: that is in each event's status, and this state is
rebuilt from Kopf's listing after a restart.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.api.notification import DeliveryPhase
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.notifications.metrics import publish_phase_counts
from certctl_operator.kube.compact import watched_body
from certctl_operator.logs import object_extra
from certctl_operator.notify.egress import EgressPolicy
from certctl_operator.notify.senders import DeliveryResult, HttpClientPool, Notifier
from certctl_operator.policy import notification as policy
from certctl_operator.policy.notification import DeliveryState
from certctl_operator.settings import Settings
from certctl_operator.status import notifications as event_status
from certctl_operator.workqueue import WorkQueue

DELIVERY_WORKERS = 32
"""Events and channels handled at the same time.

Deliveries wait on the network, so several run side by side; a few channels
that hang until their timeout hold a few workers, not all of them.
"""


@dataclass(slots=True)
class TrackedEvent:
    """What the operator last saw of one NotificationEvent (from the watch); small on purpose."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    phase: DeliveryPhase
    sent_at: datetime | None
    requeue_pending: bool = False

    def log_extra(self) -> dict[str, Any]:
        return object_extra(
            {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": "NotificationEvent",
                "metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid},
            }
        )


class ChannelKey(NamedTuple):
    """A NotificationChannel on the work queue (events are on it by uid)."""

    namespace: str
    name: str


WorkKey = str | ChannelKey
"""An event's uid, or a channel."""

Process = Callable[["NotificationRuntime", WorkKey], Awaitable[None]]
"""What a worker does with a key taken off the queue (an event's visit, a channel's check)."""


class StopSignal(Protocol):
    """True once the operator is stopping."""

    def __bool__(self) -> bool: ...


class Stopping:
    """The notification runtime's stop flag: set once, when the operator begins to stop."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def __bool__(self) -> bool:
        return self._set


@dataclass(frozen=True)
class UnrecordedOutcome:
    """An attempt whose outcome the operator knows but could not write (the API server was away).

    ``basis`` is the delivery state the attempt was made from: the outcome is
    recorded only onto that same state, so a requeue or another writer in
    the meantime makes it void instead of overwriting newer facts.
    """

    attempt: int
    basis: tuple[object, ...]
    result: DeliveryResult
    at: datetime


def outcome_basis(state: policy.DeliveryState) -> tuple[object, ...]:
    """What identifies the state an attempt starts from: phase, counts and the last attempt's time."""
    return (state.phase, state.retry_count, state.requeue_count, state.last_attempt_at, len(state.attempts))


@dataclass
class NotificationRuntime:
    """Per-process state: the notifier, the work queue, per-event locks and the watch-maintained book."""

    settings: Settings
    pool: HttpClientPool
    notifier: Notifier
    policy: policy.RetryPolicy
    process: Process
    """Called by the queue's workers for each due key, unless the runtime is stopping."""
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    api: Any = None
    """The API client of deliveries, the runtime's own: it stays open until the last outcome is written."""
    events: dict[str, TrackedEvent] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    unrecorded: dict[str, UnrecordedOutcome] = field(default_factory=dict)
    """Outcomes not yet written, by event uid; see :meth:`keep_outcome`."""
    own_writes: dict[str, str] = field(default_factory=dict)
    """resourceVersions of event writes made while the event is being handled, by uid."""
    counts: dict[DeliveryPhase, int] = field(default_factory=lambda: dict.fromkeys(DeliveryPhase, 0))
    channels: dict[ChannelKey, dict[str, Any]] = field(default_factory=dict)
    """Each NotificationChannel as its watch last delivered it: an attempt reads its channel here."""
    stopping: Stopping = field(default_factory=Stopping)
    queue: WorkQueue[WorkKey] = field(init=False)

    def __post_init__(self) -> None:
        interval = max(self.settings.notification_retry_interval, timedelta(milliseconds=100))
        self.queue = WorkQueue(
            self._process,
            workers=DELIVERY_WORKERS,
            name="notifications",
            max_sleep=interval,
            # An API server that is away is tried again at least once an interval.
            retry_cap=interval,
            log_extra=self.log_extra_of,
        )

    @property
    def interval(self) -> timedelta:
        """How often a channel that is not Ready is checked again."""
        return self.settings.notification_retry_interval

    def lock(self, uid: str) -> asyncio.Lock:
        return self.locks.setdefault(uid, asyncio.Lock())

    def keep_outcome(self, uid: str, state: DeliveryState, result: DeliveryResult, at: datetime) -> None:
        """Remember the outcome of the attempt made from ``state`` until it is written."""
        self.unrecorded[uid] = UnrecordedOutcome(state.retry_count + 1, outcome_basis(state), result, at)

    def forget_outcome(self, uid: str) -> None:
        self.unrecorded.pop(uid, None)

    def kept_outcome(self, uid: str, state: DeliveryState) -> UnrecordedOutcome | None:
        """The kept outcome of the attempt due from ``state``, if any; a stale one is dropped."""
        kept = self.unrecorded.get(uid)
        if kept is None:
            return None
        if kept.basis != outcome_basis(state) or kept.attempt != state.retry_count + 1:
            del self.unrecorded[uid]
            return None
        return kept

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> TrackedEvent | None:
        """Update the book and the gauges from one watch event; the record, None once deleted."""
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if not uid:
            return None
        previous = self.events.get(uid)
        if previous is not None:
            self.counts[previous.phase] -= 1
        if event_type == "DELETED":
            self.events.pop(uid, None)
            self.own_writes.pop(uid, None)
            self.forget_outcome(uid)
            lock = self.locks.get(uid)
            if lock is not None and not lock.locked():
                del self.locks[uid]
            self.update_gauges()
            return None
        status = body.get("status") or {}
        try:
            phase = DeliveryPhase(status.get("phase") or DeliveryPhase.PENDING.value)
        except ValueError:
            phase = DeliveryPhase.PENDING
        tracked = TrackedEvent(
            namespace=sys.intern(str(meta.get("namespace") or "")),  # shared by the events of a namespace
            name=str(meta.get("name") or ""),
            uid=uid,
            resource_version=str(meta.get("resourceVersion") or ""),
            phase=phase,
            sent_at=event_status.parse_time(status.get("sentAt")),
            requeue_pending=event_status.raw_requeue_pending(meta.get("annotations") or {}, status),
        )
        self.events[uid] = tracked
        self.counts[phase] += 1
        self.update_gauges()
        return tracked

    def channel_seen(self, key: ChannelKey, body: Mapping[str, Any] | None) -> None:
        """Keep the channel's latest body from its watch event; None: it is gone or going."""
        if body is None:
            self.channels.pop(key, None)
            return
        self.channels[key] = watched_body(body)

    def phase_counts(self) -> dict[DeliveryPhase, int]:
        return dict(self.counts)

    def update_gauges(self) -> None:
        publish_phase_counts(self.counts)

    def expired(self, tracked: TrackedEvent, now: datetime) -> bool:
        """Whether ``tracked`` is a Sent event older than the retention period, and not requeued."""
        if tracked.phase is not DeliveryPhase.SENT or tracked.requeue_pending:
            return False
        state = policy.DeliveryState(phase=DeliveryPhase.SENT, sent_at=tracked.sent_at)
        return policy.should_expire(state, now, self.settings.notification_sent_retention)

    def remember_write(self, written: Mapping[str, Any]) -> None:
        """Note a write made while handling the event: its watch event needs no visit of its own."""
        meta = written.get("metadata") or {}
        if meta.get("uid") and meta.get("resourceVersion"):
            self.own_writes[str(meta["uid"])] = str(meta["resourceVersion"])

    def is_own_write(self, uid: str, resource_version: str) -> bool:
        """Whether this version of the event was written by its own handling (forgotten once seen)."""
        if self.own_writes.get(uid) != resource_version:
            return False
        del self.own_writes[uid]
        return True

    def log_extra_of(self, key: WorkKey) -> dict[str, Any]:
        if isinstance(key, ChannelKey):
            return object_extra(
                {
                    "apiVersion": f"{API_GROUP}/{API_VERSION}",
                    "kind": "NotificationChannel",
                    "metadata": {"namespace": key.namespace, "name": key.name},
                }
            )
        tracked = self.events.get(key)
        return tracked.log_extra() if tracked is not None else {}

    async def _process(self, key: WorkKey) -> None:
        if self.stopping:
            # Nothing new starts once stopping: the status says what is still due after the restart.
            return
        await self.process(self, key)


def context_of(memo: Any) -> OperatorContext:
    """The operator's context, which Kopf passes to handlers as ``memo``."""
    context: OperatorContext = memo.context
    return context


def runtime_of(memo: Any) -> NotificationRuntime:
    """The notification runtime the start-up handler put into the context."""
    runtime = context_of(memo).notification_runtime
    if runtime is None:
        raise RuntimeError("the notification controller has not started")
    return runtime
