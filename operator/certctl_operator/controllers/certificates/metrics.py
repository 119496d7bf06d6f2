"""The ManagedCertificate metrics: per-certificate series and the aggregate totals computed at scrape time.

Every reconcile refreshes its certificate's series (expiry, renewal and
not-before timestamps, Ready status) and the facts the totals count; a
certificate that goes away has its series removed. The start-up handler
installs the totals' functions.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import kopf

from certctl_operator.api import ConditionStatus, ConditionType, ManagedCertificate, find_condition
from certctl_operator.controllers.issuance import IssuanceRuntime, Key, runtime
from certctl_operator.metrics import (
    certificate_active,
    certificate_expiration_timestamp,
    certificate_expired,
    certificate_expiring_soon,
    certificate_not_before_timestamp,
    certificate_ready_status,
    certificate_renewal_timestamp,
    certificate_revoked,
    certificate_total,
)
from certctl_operator.policy.issuance import current_serial_revoked

EXPIRING_SOON = timedelta(days=30)


def series_labels(key: Key, cert: ManagedCertificate) -> dict[str, str]:
    return {
        "namespace": key.namespace,
        "name": key.name,
        "issuer_name": cert.spec.issuer_ref.name,
        "issuer_kind": cert.spec.issuer_ref.kind.value,
    }


def remove_series(labels: dict[str, str]) -> None:
    values = tuple(labels.values())
    for gauge in (
        certificate_expiration_timestamp,
        certificate_renewal_timestamp,
        certificate_not_before_timestamp,
    ):
        with contextlib.suppress(KeyError):
            gauge.remove(*values)
    for condition in ConditionStatus:
        with contextlib.suppress(KeyError):
            certificate_ready_status.remove(*values, condition.value)


def update_metrics(rt: IssuanceRuntime, key: Key, cert: ManagedCertificate) -> None:
    labels = series_labels(key, cert)
    previous = rt.certificate_metrics.get(key)
    if previous is not None and previous[0] != labels:
        remove_series(previous[0])
    status = cert.status
    if status.not_after is not None:
        certificate_expiration_timestamp.labels(**labels).set(status.not_after.timestamp())
    if status.not_before is not None:
        certificate_not_before_timestamp.labels(**labels).set(status.not_before.timestamp())
    if status.renewal_time is not None:
        certificate_renewal_timestamp.labels(**labels).set(status.renewal_time.timestamp())
    ready = find_condition(status.conditions, ConditionType.READY)
    current = ready.status if ready is not None else ConditionStatus.UNKNOWN
    for condition in ConditionStatus:
        certificate_ready_status.labels(**labels, condition=condition.value).set(
            1.0 if condition == current else 0.0
        )
    rt.certificate_metrics[key] = (
        labels,
        current == ConditionStatus.TRUE,
        status.not_after,
        current_serial_revoked(status),
    )


def install_aggregate_metrics(rt: IssuanceRuntime) -> None:
    """The certctl_certificate_* totals, computed when Prometheus scrapes."""
    facts = rt.certificate_metrics

    def count(predicate: Any) -> float:
        now = rt.now()
        return float(sum(1 for entry in list(facts.values()) if predicate(entry, now)))

    certificate_total.set_function(lambda: float(len(facts)))
    certificate_active.set_function(
        lambda: count(lambda e, now: e[1] and e[2] is not None and now < e[2] and not e[3])
    )
    certificate_expiring_soon.set_function(
        lambda: count(lambda e, now: e[2] is not None and now <= e[2] < now + EXPIRING_SOON)
    )
    certificate_expired.set_function(lambda: count(lambda e, now: e[2] is not None and e[2] <= now))
    certificate_revoked.set_function(lambda: count(lambda e, now: e[3]))


@kopf.on.startup()
async def start_certificate_metrics(memo: Any, **_: Any) -> None:
    install_aggregate_metrics(runtime(memo))


__all__ = ["install_aggregate_metrics", "remove_series", "series_labels", "update_metrics"]
