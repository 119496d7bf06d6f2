from datetime import UTC, datetime, timedelta

import pytest

from certctl_operator.policy.leadership import (
    LeadershipError,
    LeaseAction,
    LeaseRecord,
    LeaseTimings,
    Observation,
    able_to_take_over,
    decide,
    expires_at,
    observe,
    released,
    renew_deadline_passed,
    stop_deadline,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TIMINGS = LeaseTimings(
    lease_duration=timedelta(seconds=15),
    renew_deadline=timedelta(seconds=10),
    retry_period=timedelta(seconds=2),
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def held_by(
    holder: str, renewed: float = 0.0, duration: int | None = 15, transitions: int = 0
) -> LeaseRecord:
    return LeaseRecord(holder, duration, at(0), at(renewed), transitions)


def seen(record: LeaseRecord, when: float, version: str = "1") -> Observation:
    return Observation(record, version, at(when))


# --------------------------------------------------------------------------- timings


@pytest.mark.parametrize(
    ("lease", "renew", "retry", "complaint"),
    [
        (15, 15, 2, "shorter than the lease duration"),
        (15, 20, 2, "shorter than the lease duration"),
        (15, 2, 2, "longer than 1.2 x the retry period"),
        (15, 10, 0, "retry period must be positive"),
        (0.5, 0.3, 0.1, "at least 1s"),
    ],
)
def test_timings_that_could_give_two_leaders_are_refused(
    lease: float, renew: float, retry: float, complaint: str
) -> None:
    with pytest.raises(LeadershipError, match=complaint):
        LeaseTimings(timedelta(seconds=lease), timedelta(seconds=renew), timedelta(seconds=retry))


def test_lease_duration_is_written_in_whole_seconds_rounded_up() -> None:
    timings = LeaseTimings(timedelta(seconds=4.2), timedelta(seconds=3), timedelta(seconds=0.5))
    assert timings.lease_duration_seconds == 5
    assert TIMINGS.lease_duration_seconds == 15
    assert TIMINGS.stop_budget == timedelta(seconds=5)


# --------------------------------------------------------------------------- decisions


def test_no_lease_is_created_held_by_the_candidate() -> None:
    decision = decide(None, "a", at(0), TIMINGS)
    assert decision.action is LeaseAction.CREATE
    assert decision.record == LeaseRecord("a", 15, at(0), at(0), 0)
    assert decision.wait == TIMINGS.retry_period


def test_the_holder_renews_keeping_acquire_time_and_transitions() -> None:
    observation = seen(held_by("a", renewed=4, transitions=3), when=4)
    decision = decide(observation, "a", at(6), TIMINGS)
    assert decision.action is LeaseAction.RENEW
    assert decision.record == LeaseRecord("a", 15, at(0), at(6), 3)


def test_a_holder_restarted_under_the_same_name_renews_at_once() -> None:
    # Same Pod name after a container restart: the old process is gone, the Lease is ours.
    observation = seen(held_by("pod-1", renewed=0), when=100)
    assert decide(observation, "pod-1", at(100), TIMINGS).action is LeaseAction.RENEW


def test_a_live_lease_of_someone_else_means_standby_until_it_expires() -> None:
    observation = seen(held_by("a"), when=0)
    for now in (0, 5, 14.9):
        decision = decide(observation, "b", at(now), TIMINGS)
        assert decision.action is LeaseAction.STANDBY
        assert decision.record is None
        assert decision.reason == "a holds the Lease"
    # Woken exactly at expiry rather than up to a retry period later.
    assert decide(observation, "b", at(14), TIMINGS).wait == timedelta(seconds=1)
    assert decide(observation, "b", at(5), TIMINGS).wait == TIMINGS.retry_period


def test_an_expired_lease_is_taken_over_counting_a_transition() -> None:
    observation = seen(held_by("a", transitions=2), when=0)
    decision = decide(observation, "b", at(15), TIMINGS)
    assert decision.action is LeaseAction.ACQUIRE
    assert decision.record == LeaseRecord("b", 15, at(15), at(15), 3)
    assert "a did not renew the Lease" in decision.reason


def test_expiry_counts_from_when_the_record_was_seen_not_from_its_timestamps() -> None:
    # The holder's clock runs an hour behind ours: its renewTime looks ancient.
    record = LeaseRecord("a", 15, at(-3600), at(-3600), 0)
    observation = seen(record, when=0)
    assert decide(observation, "b", at(10), TIMINGS).action is LeaseAction.STANDBY
    assert decide(observation, "b", at(15), TIMINGS).action is LeaseAction.ACQUIRE


def test_the_records_own_lease_duration_counts() -> None:
    observation = seen(held_by("a", duration=30), when=0)
    assert expires_at(observation, TIMINGS) == at(30)
    assert decide(observation, "b", at(20), TIMINGS).action is LeaseAction.STANDBY
    assert decide(observation, "b", at(30), TIMINGS).action is LeaseAction.ACQUIRE
    # A record without one falls back to ours.
    assert expires_at(seen(held_by("a", duration=None), when=0), TIMINGS) == at(15)


def test_a_released_lease_is_taken_at_once() -> None:
    record = released(held_by("a", renewed=8, transitions=1), at(9))
    assert record.holder == ""
    assert record.lease_duration_seconds == 1
    assert record.renew_time == at(9)
    assert record.transitions == 1
    decision = decide(seen(record, when=9), "b", at(9), TIMINGS)
    assert decision.action is LeaseAction.ACQUIRE
    assert decision.record is not None
    assert decision.record.holder == "b"
    assert decision.record.transitions == 2
    assert decision.reason == "the Lease was released"


def test_naive_clocks_and_empty_identities_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(None, "a", datetime(2026, 1, 1), TIMINGS)
    with pytest.raises(LeadershipError, match="identity"):
        decide(None, "", at(0), TIMINGS)


# --------------------------------------------------------------------------- observing


def test_the_expiry_clock_restarts_only_when_the_record_changes() -> None:
    first = observe(None, held_by("a", renewed=0), "1", at(0))
    same = observe(first, held_by("a", renewed=0), "1", at(10))
    assert same.seen_at == at(0)
    renewed = observe(same, held_by("a", renewed=2), "2", at(11))
    assert renewed.seen_at == at(11)
    assert renewed.resource_version == "2"
    # The standby sees a holder that keeps renewing as never expiring.
    assert decide(renewed, "b", at(20), TIMINGS).action is LeaseAction.STANDBY
    # ...and one that stopped renewing as expired a lease duration after the last change.
    assert decide(observe(renewed, held_by("a", renewed=2), "2", at(26)), "b", at(26), TIMINGS).action is (
        LeaseAction.ACQUIRE
    )


def test_a_resource_version_change_alone_keeps_the_clock() -> None:
    first = observe(None, held_by("a"), "1", at(0))
    relabelled = observe(first, held_by("a"), "7", at(5))
    assert relabelled.seen_at == at(0)
    assert relabelled.resource_version == "7"


# --------------------------------------------------------------------------- giving up


def test_the_holder_gives_up_at_the_renew_deadline_and_stops_before_anyone_may_take_over() -> None:
    assert not renew_deadline_passed(100.0, 109.9, TIMINGS)
    assert renew_deadline_passed(100.0, 110.0, TIMINGS)
    # Halfway between the renew deadline and the earliest takeover by a standby.
    deadline = stop_deadline(100.0, TIMINGS)
    assert deadline == 112.5
    assert 110.0 < deadline < 100.0 + TIMINGS.lease_duration.total_seconds()


# --------------------------------------------------------------------------- standby readiness


def test_a_standby_is_ready_while_it_reaches_the_api_server_within_a_lease_duration() -> None:
    assert not able_to_take_over(None, 100.0, TIMINGS), "never got through"
    assert able_to_take_over(100.0, 100.0, TIMINGS)
    assert able_to_take_over(100.0, 114.9, TIMINGS)
    # Cut off for a whole lease duration, it could not notice a dead leader and take over.
    assert not able_to_take_over(100.0, 115.0, TIMINGS)
