"""Capped exponential backoff.

The n-th wait is ``min(2**n * base, cap)`` where ``n`` is the number of
failures recorded *before* the attempt that just failed: with a one-minute
base the waits are 1, 2, 4, 8, ... minutes until the cap.

The arithmetic is done in whole microseconds on Python integers and the
exponent is bounded before shifting, so an absurd retry count returns the cap
instead of overflowing ``timedelta`` or building a huge integer.
"""

from __future__ import annotations

from datetime import timedelta

_MICROSECOND = timedelta(microseconds=1)


def backoff_delay(retry_count: int, base: timedelta, cap: timedelta) -> timedelta:
    """Return ``min(2**retry_count * base, cap)``.

    ``retry_count`` is the number of failures counted before this attempt
    (0 for the first failure). A zero ``base`` yields no wait; ``cap`` bounds
    every result, so a cap below ``base`` wins.
    """
    if retry_count < 0:
        raise ValueError(f"retry_count must not be negative, got {retry_count}")
    if base < timedelta(0):
        raise ValueError(f"base must not be negative, got {base}")
    if cap < timedelta(0):
        raise ValueError(f"cap must not be negative, got {cap}")

    base_us = base // _MICROSECOND
    cap_us = cap // _MICROSECOND
    if base_us == 0 or cap_us == 0:
        return timedelta(0)
    # base_us >= 1, so 2**n * base_us > cap_us as soon as n >= cap_us.bit_length().
    if retry_count >= cap_us.bit_length():
        return cap
    return timedelta(microseconds=min(base_us << retry_count, cap_us))
