"""What an Issuer's or ClusterIssuer's ``.status`` says about signing: type, Ready, the CA in use.

Built from the issuer's check (:class:`~certctl_operator.policy.issuers.IssuerCheck`)
with the clock passed in. Only the fields that describe signing are set here;
the CRL fields belong to the revocation side, and the status of an issuer
whose spec cannot be read is built by
:func:`certctl_operator.policy.issuers.issuer_status_unreadable`. Pure.
"""

from __future__ import annotations

from datetime import datetime

from certctl_operator.api import (
    ConditionStatus,
    ConditionType,
    IssuerStatus,
    IssuerType,
    find_condition,
    set_condition,
)
from certctl_operator.policy.issuers import IssuerCheck


def ready_status(check: IssuerCheck) -> ConditionStatus:
    """The Ready condition status ``check`` stands for."""
    return ConditionStatus.TRUE if check.ready else ConditionStatus.FALSE


def issuer_status(
    before: IssuerStatus,
    check: IssuerCheck,
    *,
    generation: int | None,
    issuer_type: IssuerType,
    now: datetime,
) -> IssuerStatus:
    """``before`` with the signing fields and the Ready condition set from ``check``."""
    status = before.model_copy(deep=True)
    status.type = issuer_type
    status.observed_generation = generation
    authority = check.authority
    status.ca_serial_number = check.ca_serial_number
    status.ca_not_after = authority.not_after if authority is not None else None
    status.conditions = set_condition(
        status.conditions,
        ConditionType.READY,
        ready_status(check),
        check.reason,
        check.message,
        now=now,
        observed_generation=generation,
    )
    return status


def ready_changed(before: IssuerStatus, check: IssuerCheck) -> bool:
    """Whether ``check`` moves Ready to another status or reason than ``before`` had (worth an Event)."""
    condition = find_condition(before.conditions, ConditionType.READY)
    return condition is None or (condition.status, condition.reason) != (ready_status(check), check.reason)


__all__ = ["issuer_status", "ready_changed", "ready_status"]
