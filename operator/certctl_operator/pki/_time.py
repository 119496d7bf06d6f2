"""Clock helpers: the PKI layer never reads the clock, callers pass ``now``."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(value: datetime, name: str = "now") -> datetime:
    """Return ``value`` converted to UTC; refuse naive datetimes."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime (UTC), got a naive one")
    return value.astimezone(UTC)


def utc_seconds(value: datetime, name: str = "now") -> datetime:
    """Like :func:`utc`, truncated to whole seconds (X.509 times carry no fractions)."""
    return utc(value, name).replace(microsecond=0)
