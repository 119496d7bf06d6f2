from __future__ import annotations

import time
from datetime import timedelta

import pytest

from certctl_operator.policy.backoff import backoff_delay

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def test_doubles_from_base_until_cap() -> None:
    waits = [backoff_delay(n, MINUTE, HOUR) for n in range(8)]
    assert waits == [MINUTE * m for m in (1, 2, 4, 8, 16, 32, 60, 60)]


def test_reference_waits_are_one_two_four_eight_minutes() -> None:
    assert [backoff_delay(n, MINUTE, HOUR).total_seconds() for n in range(4)] == [60, 120, 240, 480]


@pytest.mark.parametrize("count", [63, 64, 1_000, 10**6, 10**18])
def test_large_counts_return_the_cap_without_overflow(count: int) -> None:
    started = time.perf_counter()
    assert backoff_delay(count, MINUTE, HOUR) == HOUR
    assert time.perf_counter() - started < 0.1


def test_cap_below_base_wins() -> None:
    assert backoff_delay(0, HOUR, MINUTE) == MINUTE


def test_zero_base_means_no_wait() -> None:
    assert backoff_delay(5, timedelta(0), HOUR) == timedelta(0)


def test_zero_cap_means_no_wait() -> None:
    assert backoff_delay(5, MINUTE, timedelta(0)) == timedelta(0)


def test_sub_second_base() -> None:
    assert backoff_delay(3, timedelta(milliseconds=250), HOUR) == timedelta(seconds=2)


def test_huge_cap_does_not_overflow_timedelta() -> None:
    cap = timedelta.max
    assert backoff_delay(200, timedelta(days=1), cap) == cap


@pytest.mark.parametrize(
    ("count", "base", "cap"),
    [(-1, MINUTE, HOUR), (0, -MINUTE, HOUR), (0, MINUTE, -HOUR)],
)
def test_rejects_negative_inputs(count: int, base: timedelta, cap: timedelta) -> None:
    with pytest.raises(ValueError, match="negative"):
        backoff_delay(count, base, cap)
