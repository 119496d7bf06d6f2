"""The Issuer and ClusterIssuer metric: one Ready-status series per issuer and condition status."""

from __future__ import annotations

from certctl_operator.api import ConditionStatus
from certctl_operator.controllers.issuance import Key
from certctl_operator.metrics import issuer_ready_status


def export_ready(key: Key, current: ConditionStatus) -> None:
    """1 for the issuer's current Ready status, 0 for the others."""
    for condition in ConditionStatus:
        issuer_ready_status.labels(
            namespace=key.namespace, name=key.name, kind=key.kind, condition=condition.value
        ).set(1.0 if condition == current else 0.0)


def remove_series(key: Key) -> None:
    for condition in ConditionStatus:
        try:
            issuer_ready_status.remove(key.namespace, key.name, key.kind, condition.value)
        except KeyError:
            continue


__all__ = ["export_ready", "remove_series"]
