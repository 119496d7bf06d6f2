"""Leader election on a Kubernetes Lease: the timing rules, with the clock passed in.

Several replicas of the operator may run; exactly one of them acts. They
share one ``coordination.k8s.io/v1`` Lease in the operator's namespace:

* The holder writes ``spec.renewTime`` every ``retry_period``. When it has not
  managed to renew for ``renew_deadline`` it gives up leadership and stops.
* A candidate never trusts the timestamps in the record (clocks of different
  nodes disagree). It remembers *when it first saw* the current record and
  takes the Lease over only after the record stayed unchanged for the
  record's ``leaseDurationSeconds`` by its own clock. Because
  ``renew_deadline < lease_duration``, a holder that cannot renew has stopped
  before any candidate may take over.
* A Lease with no holder (released on a clean shutdown) is free at once.
* Every write carries the resourceVersion it was decided on, so two
  candidates racing for the same Lease cannot both win.

This module only decides; :mod:`certctl_operator.kube.leader_election` reads
and writes the Lease.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from certctl_operator.policy.clock import require_aware

JITTER_FACTOR = 1.2
"""``renew_deadline`` must exceed the retry period by this factor: a holder gets more than one try."""


class LeadershipError(ValueError):
    """Timings that cannot give a safe election."""


@dataclass(frozen=True)
class LeaseTimings:
    """How long a Lease lasts, how long its holder keeps trying to renew, how often everyone looks."""

    lease_duration: timedelta
    renew_deadline: timedelta
    retry_period: timedelta

    def __post_init__(self) -> None:
        if self.retry_period <= timedelta(0):
            raise LeadershipError("the retry period must be positive")
        if self.lease_duration < timedelta(seconds=1):
            raise LeadershipError("the lease duration must be at least 1s (Leases count whole seconds)")
        if self.renew_deadline >= self.lease_duration:
            raise LeadershipError(
                f"the renew deadline ({self.renew_deadline}) must be shorter than the lease duration "
                f"({self.lease_duration}): a holder that cannot renew must stop before others take over"
            )
        if self.renew_deadline <= self.retry_period * JITTER_FACTOR:
            raise LeadershipError(
                f"the renew deadline ({self.renew_deadline}) must be longer than {JITTER_FACTOR} x the "
                f"retry period ({self.retry_period})"
            )

    @property
    def lease_duration_seconds(self) -> int:
        """``spec.leaseDurationSeconds`` as written (whole seconds, rounded up)."""
        return math.ceil(self.lease_duration.total_seconds())

    @property
    def stop_budget(self) -> timedelta:
        """How long a holder that gave up may take to stop before a candidate could take over."""
        return self.lease_duration - self.renew_deadline


@dataclass(frozen=True)
class LeaseRecord:
    """The part of a Lease's spec the election reads and writes."""

    holder: str = ""
    lease_duration_seconds: int | None = None
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0

    @property
    def held(self) -> bool:
        return bool(self.holder)


@dataclass(frozen=True)
class Observation:
    """A Lease as last read, and when (by the reader's own clock) it was first seen like this."""

    record: LeaseRecord
    resource_version: str | None
    seen_at: datetime


def observe(
    previous: Observation | None, record: LeaseRecord, resource_version: str | None, now: datetime
) -> Observation:
    """Remember ``record``; the clock starts again only when the record itself changed."""
    require_aware(now)
    if previous is not None and previous.record == record:
        return replace(previous, resource_version=resource_version)
    return Observation(record, resource_version, now)


class LeaseAction(enum.Enum):
    CREATE = "create"
    """There is no Lease yet: create it, holding it."""
    ACQUIRE = "acquire"
    """The Lease is free or expired: take it over."""
    RENEW = "renew"
    """This candidate holds the Lease: write a new renew time."""
    STANDBY = "standby"
    """Someone else holds a live Lease: look again later."""


@dataclass(frozen=True)
class LeaseDecision:
    action: LeaseAction
    record: LeaseRecord | None
    """What to write (CREATE, ACQUIRE, RENEW); None for STANDBY."""
    wait: timedelta
    """How long to wait before looking again (after a write or for STANDBY)."""
    reason: str


def expires_at(observation: Observation, timings: LeaseTimings) -> datetime:
    """When the observed record expires by this reader's clock."""
    seconds = observation.record.lease_duration_seconds
    duration = timedelta(seconds=seconds) if seconds and seconds > 0 else timings.lease_duration
    return observation.seen_at + duration


def decide(
    observation: Observation | None, identity: str, now: datetime, timings: LeaseTimings
) -> LeaseDecision:
    """What ``identity`` should do about the Lease it observed (None: there is no Lease)."""
    require_aware(now)
    if not identity:
        raise LeadershipError("a candidate needs a non-empty identity")
    duration = timings.lease_duration_seconds
    if observation is None:
        record = LeaseRecord(identity, duration, now, now, 0)
        return LeaseDecision(LeaseAction.CREATE, record, timings.retry_period, "there is no Lease yet")
    current = observation.record
    if current.holder == identity:
        record = replace(current, lease_duration_seconds=duration, renew_time=now)
        if record.acquire_time is None:
            record = replace(record, acquire_time=now)
        return LeaseDecision(
            LeaseAction.RENEW, record, timings.retry_period, "this candidate holds the Lease"
        )
    taken = LeaseRecord(identity, duration, now, now, current.transitions + 1)
    if not current.held:
        return LeaseDecision(LeaseAction.ACQUIRE, taken, timings.retry_period, "the Lease was released")
    expiry = expires_at(observation, timings)
    if now >= expiry:
        return LeaseDecision(
            LeaseAction.ACQUIRE,
            taken,
            timings.retry_period,
            f"{current.holder} did not renew the Lease for {expiry - observation.seen_at}",
        )
    # Look again after the retry period, or right when the Lease would expire if that is sooner.
    wait = min(timings.retry_period, expiry - now)
    return LeaseDecision(LeaseAction.STANDBY, None, wait, f"{current.holder} holds the Lease")


def released(record: LeaseRecord, now: datetime) -> LeaseRecord:
    """What a holder writes when it stops cleanly: no holder, so the next candidate takes over at once."""
    require_aware(now)
    return replace(record, holder="", lease_duration_seconds=1, renew_time=now)


def renew_deadline_passed(last_renewed: float, now: float, timings: LeaseTimings) -> bool:
    """Whether a holder last renewed at ``last_renewed`` must give up (monotonic seconds)."""
    return now - last_renewed >= timings.renew_deadline.total_seconds()


def able_to_take_over(last_contact: float | None, now: float, timings: LeaseTimings) -> bool:
    """Whether a standby that last read or wrote the Lease at ``last_contact`` is ready (monotonic seconds).

    Its readiness says "able to take over", not "leading": it is Ready while
    its last successful look at the Lease is less than ``lease_duration`` old
    (a leader that lost the API server for that long has stopped; a standby
    that did could not notice it and take over). ``None``: never got through.
    """
    return last_contact is not None and now - last_contact < timings.lease_duration.total_seconds()


def stop_deadline(last_renewed: float, timings: LeaseTimings) -> float:
    """The monotonic instant by which a holder that gave up must have stopped acting.

    Half the gap between the renew deadline and the lease duration after the
    last renewal: no candidate can take over before the full lease duration.
    """
    gap = timings.stop_budget.total_seconds() / 2
    return last_renewed + timings.renew_deadline.total_seconds() + gap


__all__ = [
    "LeadershipError",
    "LeaseAction",
    "LeaseDecision",
    "LeaseRecord",
    "LeaseTimings",
    "Observation",
    "able_to_take_over",
    "decide",
    "expires_at",
    "observe",
    "released",
    "renew_deadline_passed",
    "stop_deadline",
]
