"""When to renew a certificate, when to retry a failed issuance, when to warn of expiry.

All instants are timezone-aware and the caller supplies ``now``.

Expiry alerts are de-duplicated by *name*, not by suppressing sends: each
(certificate, revision, threshold[, channel]) maps to one deterministic
NotificationEvent name, so creating the event is idempotent (a second create
conflicts) while the event's own retry state machine keeps retrying a failed
delivery. A renewal bumps the revision and therefore arms the thresholds again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from certctl_operator.durations import format_duration
from certctl_operator.policy.backoff import backoff_delay
from certctl_operator.policy.clock import require_aware

DEFAULT_RENEWAL_FRACTION_DIVISOR = 3
"""By default a certificate is renewed when one third of its lifetime is left."""

DEFAULT_EXPIRY_THRESHOLDS: tuple[timedelta, ...] = (
    timedelta(days=30),
    timedelta(days=14),
    timedelta(days=7),
    timedelta(0),
)

MAX_NAME_LENGTH = 253
"""Longest Kubernetes object name (a DNS-1123 subdomain)."""

_HASH_LENGTH = 10
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_INVALID_NAME_CHARS = re.compile(r"[^a-z0-9-]+")
_DASH_RUNS = re.compile(r"-{2,}")


def renewal_time(
    not_before: datetime,
    not_after: datetime,
    renew_before: timedelta | None = None,
    renew_before_percentage: int | None = None,
) -> datetime:
    """The instant at which a certificate valid ``not_before``..``not_after`` is renewed.

    * ``renew_before``: renew that long before ``not_after``. A value as long
      as the whole lifetime (or longer) would renew every certificate the
      moment it is issued, forever; it falls back to the default instead.
    * ``renew_before_percentage``: renew when that percentage of the lifetime
      is left (1-99; 25 on a 60-minute certificate renews at minute 45).
    * neither: renew when one third of the lifetime is left.

    The two options are exclusive. The result is truncated to whole seconds
    (certificates carry second precision) and clamped to the validity window.
    """
    require_aware(not_before, "not_before")
    require_aware(not_after, "not_after")
    if renew_before is not None and renew_before_percentage is not None:
        raise ValueError("renew_before and renew_before_percentage are mutually exclusive")
    lifetime = not_after - not_before
    if lifetime <= timedelta(0):
        return not_after

    default_before = lifetime / DEFAULT_RENEWAL_FRACTION_DIVISOR
    if renew_before is not None:
        if renew_before < timedelta(0):
            raise ValueError(f"renew_before must not be negative, got {renew_before}")
        before = renew_before if renew_before < lifetime else default_before
    elif renew_before_percentage is not None:
        if not 0 < renew_before_percentage < 100:
            raise ValueError(
                f"renew_before_percentage must be between 1 and 99, got {renew_before_percentage}"
            )
        before = lifetime * renew_before_percentage / 100
    else:
        before = default_before

    when = (not_after - before).replace(microsecond=0)
    return min(max(when, not_before), not_after)


def issuance_backoff(failed_attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    """Wait before the next issuance after ``failed_attempts`` consecutive failures.

    No failures means no wait; the first failure waits ``base``, then it
    doubles up to ``cap``.
    """
    if failed_attempts <= 0:
        return timedelta(0)
    return backoff_delay(failed_attempts - 1, base, cap)


def next_issuance_attempt(
    last_failure_time: datetime, failed_attempts: int, base: timedelta, cap: timedelta
) -> datetime:
    """When the next issuance may start, given the time of the latest failure."""
    require_aware(last_failure_time, "last_failure_time")
    return last_failure_time + issuance_backoff(failed_attempts, base, cap)


def _validated_thresholds(thresholds: Iterable[timedelta]) -> set[timedelta]:
    values = set(thresholds)
    for threshold in values:
        if threshold < timedelta(0):
            raise ValueError(f"expiry thresholds must not be negative, got {threshold}")
    return values


def expiry_thresholds_due(
    not_after: datetime, thresholds: Iterable[timedelta], now: datetime
) -> tuple[timedelta, ...]:
    """The thresholds already crossed (``now >= not_after - threshold``), largest first.

    A threshold of zero is crossed once the certificate has expired.
    """
    require_aware(not_after, "not_after")
    require_aware(now)
    crossed = {t for t in _validated_thresholds(thresholds) if now >= not_after - t}
    return tuple(sorted(crossed, reverse=True))


def most_urgent_threshold(
    not_after: datetime, thresholds: Iterable[timedelta], now: datetime
) -> timedelta | None:
    """The smallest crossed threshold: the one to announce when several were crossed at once."""
    crossed = expiry_thresholds_due(not_after, thresholds, now)
    return crossed[-1] if crossed else None


def next_threshold_time(
    not_after: datetime, thresholds: Iterable[timedelta], now: datetime
) -> datetime | None:
    """When the next threshold not yet crossed will be; None when all are crossed."""
    require_aware(not_after, "not_after")
    require_aware(now)
    upcoming = [not_after - t for t in _validated_thresholds(thresholds) if now < not_after - t]
    return min(upcoming) if upcoming else None


def object_name(*parts: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """Join ``parts`` with ``-`` into a valid DNS-1123 subdomain name.

    Names that are already valid (after lower-casing) and short enough are
    kept as they are. Otherwise the name is reduced to ``[a-z0-9-]``,
    shortened, and suffixed with ``-`` and the first 10 hex digits of the
    SHA-256 of the original joined parts, so different inputs keep different
    names and the same inputs always give the same name.
    """
    if max_length < _HASH_LENGTH + 2:
        raise ValueError(f"max_length must be at least {_HASH_LENGTH + 2}, got {max_length}")
    raw = "-".join(parts)
    candidate = raw.lower()
    if len(candidate) <= max_length and _DNS1123_SUBDOMAIN.match(candidate):
        return candidate
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:_HASH_LENGTH]
    cleaned = _DASH_RUNS.sub("-", _INVALID_NAME_CHARS.sub("-", candidate)).strip("-")
    head = cleaned[: max_length - _HASH_LENGTH - 1].rstrip("-")
    return f"{head}-{digest}" if head else digest


def _threshold_token(threshold: timedelta) -> str:
    if threshold < timedelta(0):
        raise ValueError(f"expiry thresholds must not be negative, got {threshold}")
    return format_duration(threshold)


def expiry_event_name(
    cert_name: str,
    revision: int,
    threshold: timedelta,
    channel: str | None = None,
    *,
    max_length: int = MAX_NAME_LENGTH,
) -> str:
    """Name of the expiry alert for one certificate revision and threshold (and channel).

    ``web``, revision 3, 7 days, channel ``ops-slack`` gives
    ``web-expiring-7d-r3-ops-slack``.
    """
    parts = [cert_name, "expiring", _threshold_token(threshold), f"r{revision}"]
    if channel:
        parts.append(channel)
    return object_name(*parts, max_length=max_length)


def notification_event_name(
    cert_name: str,
    event_type: str,
    revision: int,
    channel: str,
    *,
    max_length: int = MAX_NAME_LENGTH,
) -> str:
    """Name of the notification of ``event_type`` for one certificate revision and channel.

    ``web``, ``Renewed``, revision 4, channel ``ops-webhook`` gives
    ``web-renewed-r4-ops-webhook``.
    """
    return object_name(cert_name, str(event_type).lower(), f"r{revision}", channel, max_length=max_length)
