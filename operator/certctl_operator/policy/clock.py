"""Small helpers for the timezone-aware UTC instants every policy takes.

Policies never read the clock themselves; the caller passes ``now``. These
helpers reject naive datetimes early (a naive ``now`` silently compared with an
aware ``not_after`` is a bug waiting to happen) and render instants the way
Kubernetes status fields do (RFC 3339, UTC, ``Z`` suffix).
"""

from __future__ import annotations

from datetime import UTC, datetime


def require_aware(value: datetime, name: str = "now") -> datetime:
    """Return ``value`` unchanged, or raise ValueError when it has no timezone."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}")
    return value


def format_rfc3339(value: datetime) -> str:
    """Render an aware instant as ``2025-01-31T12:00:00Z`` (UTC, whole seconds)."""
    require_aware(value, "timestamp")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> datetime:
    """The current instant, for the glue that calls policies (policies themselves take ``now``)."""
    return datetime.now(UTC)
