"""The ManagedCertificate metrics: per-certificate series and the aggregate totals computed at scrape time.

Every reconcile replaces its certificate's :class:`CertificateSeries`; the
per-certificate series (expiry, renewal and not-before timestamps, Ready
status) and the totals are computed from those records when Prometheus
scrapes, and a certificate that goes away has no series from then on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import kopf

from certctl_operator.api import ConditionStatus, ConditionType, ManagedCertificate, find_condition
from certctl_operator.controllers.issuance import IssuanceRuntime, Key, runtime
from certctl_operator.metrics import (
    CERTIFICATE_EXPIRATION_TIMESTAMP,
    CERTIFICATE_NOT_BEFORE_TIMESTAMP,
    CERTIFICATE_READY_STATUS,
    CERTIFICATE_RENEWAL_TIMESTAMP,
    certificate_active,
    certificate_expired,
    certificate_expiring_soon,
    certificate_revoked,
    certificate_series,
    certificate_total,
)
from certctl_operator.policy.issuance import current_serial_revoked

EXPIRING_SOON = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class CertificateSeries:
    """What the metrics say of one certificate, as of its last reconcile; small on purpose."""

    labels: tuple[str, str, str, str]
    """namespace, name, issuer_name, issuer_kind (:data:`certctl_operator.metrics.CERTIFICATE_LABELS`)."""
    ready: ConditionStatus
    not_after: datetime | None
    not_before: datetime | None
    renewal_time: datetime | None
    revoked: bool

    def active(self, now: datetime) -> bool:
        return (
            self.ready is ConditionStatus.TRUE
            and self.not_after is not None
            and now < self.not_after
            and not self.revoked
        )

    def samples(self) -> Iterator[tuple[str, Sequence[str], float]]:
        """This certificate's series for :data:`certctl_operator.metrics.certificate_series`."""
        for family, moment in (
            (CERTIFICATE_EXPIRATION_TIMESTAMP, self.not_after),
            (CERTIFICATE_NOT_BEFORE_TIMESTAMP, self.not_before),
            (CERTIFICATE_RENEWAL_TIMESTAMP, self.renewal_time),
        ):
            if moment is not None:
                yield family, self.labels, moment.timestamp()
        for condition in ConditionStatus:
            yield CERTIFICATE_READY_STATUS, (*self.labels, condition.value), float(condition is self.ready)


def series_of(key: Key, cert: ManagedCertificate) -> CertificateSeries:
    status = cert.status
    ready = find_condition(status.conditions, ConditionType.READY)
    return CertificateSeries(
        labels=(key.namespace, key.name, cert.spec.issuer_ref.name, cert.spec.issuer_ref.kind.value),
        ready=ConditionStatus(ready.status) if ready is not None else ConditionStatus.UNKNOWN,
        not_after=status.not_after,
        not_before=status.not_before,
        renewal_time=status.renewal_time,
        revoked=current_serial_revoked(status),
    )


def update_metrics(rt: IssuanceRuntime, key: Key, cert: ManagedCertificate) -> None:
    """Replace the certificate's facts; its series follow at the next scrape."""
    rt.certificate_metrics[key] = series_of(key, cert)


def forget_metrics(rt: IssuanceRuntime, key: Key) -> None:
    """A certificate that is gone has no series from the next scrape on."""
    rt.certificate_metrics.pop(key, None)


def install_metrics(rt: IssuanceRuntime) -> None:
    """The per-certificate series and the certctl_certificate_* totals, computed when Prometheus scrapes."""
    facts = rt.certificate_metrics

    def samples() -> Iterator[tuple[str, Sequence[str], float]]:
        for entry in list(facts.values()):
            yield from entry.samples()

    def count(predicate: Any) -> float:
        now = rt.now()
        return float(sum(1 for entry in list(facts.values()) if predicate(entry, now)))

    certificate_series.source = samples
    certificate_total.set_function(lambda: float(len(facts)))
    certificate_active.set_function(lambda: count(lambda e, now: e.active(now)))
    certificate_expiring_soon.set_function(
        lambda: count(lambda e, now: e.not_after is not None and now <= e.not_after < now + EXPIRING_SOON)
    )
    certificate_expired.set_function(
        lambda: count(lambda e, now: e.not_after is not None and e.not_after <= now)
    )
    certificate_revoked.set_function(lambda: count(lambda e, now: e.revoked))


@kopf.on.startup()
async def start_certificate_metrics(memo: Any, **_: Any) -> None:
    install_metrics(runtime(memo))


__all__ = ["CertificateSeries", "forget_metrics", "install_metrics", "series_of", "update_metrics"]
