"""Which notifications a ManagedCertificate asks for, and which expiry threshold is due now.

An expiry threshold is announced once per certificate (the status records the
thresholds announced); a certificate born inside a threshold is not announced
for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from certctl_operator.api.certificate import (
    CertificateEventType,
    ManagedCertificate,
    ManagedCertificateStatus,
)
from certctl_operator.durations import parse_duration
from certctl_operator.pki import DEFAULT_BACKDATE


def subscribed_channels(cert: ManagedCertificate, event: CertificateEventType) -> tuple[str, ...]:
    """Channels that want ``event`` for this certificate (none without spec.notifications)."""
    settings = cert.spec.notifications
    if settings is None or event not in settings.events:
        return ()
    return tuple(settings.channels)


def _armed_thresholds(cert: ManagedCertificate) -> list[tuple[str, timedelta]]:
    status = cert.status
    settings = cert.spec.notifications
    if (
        settings is None
        or CertificateEventType.EXPIRING not in settings.events
        or status.not_before is None
        or status.not_after is None
        or not status.revision
    ):
        return []
    issued_at = min(status.not_before + DEFAULT_BACKDATE, status.not_after)
    lifetime = status.not_after - issued_at
    notified = set(status.notified_expiry_thresholds or ())
    armed = []
    for text in settings.expiry_thresholds:
        threshold = parse_duration(text)
        # A certificate born inside a threshold (a lifetime shorter than it) is not announced for it.
        if text not in notified and (threshold < lifetime or threshold == timedelta(0)):
            armed.append((text, threshold))
    return armed


@dataclass(frozen=True)
class ExpiryNotice:
    """The expiry threshold to announce now, and every threshold it answers for."""

    threshold: timedelta
    threshold_text: str
    crossed: tuple[str, ...]


def expiry_notice_due(cert: ManagedCertificate, now: datetime) -> ExpiryNotice | None:
    """The expiry notice due now: the most urgent of the thresholds crossed and not yet announced."""
    not_after = cert.status.not_after
    if not_after is None:
        return None
    crossed = [(text, t) for text, t in _armed_thresholds(cert) if now >= not_after - t]
    if not crossed:
        return None
    text, threshold = min(crossed, key=lambda item: item[1])
    return ExpiryNotice(threshold, text, tuple(sorted(t for t, _ in crossed)))


def next_expiry_notice_time(cert: ManagedCertificate, now: datetime) -> datetime | None:
    not_after = cert.status.not_after
    if not_after is None:
        return None
    times = [not_after - t for _, t in _armed_thresholds(cert) if now < not_after - t]
    return min(times) if times else None


def with_notified(status: ManagedCertificateStatus, thresholds: Sequence[str]) -> ManagedCertificateStatus:
    updated = status.model_copy(deep=True)
    known = list(updated.notified_expiry_thresholds or ())
    updated.notified_expiry_thresholds = known + [t for t in thresholds if t not in known]
    return updated
