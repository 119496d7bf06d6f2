"""What a ManagedCertificate's ``.status`` says, in the cases its controller builds itself.

The statuses of the issuance decisions (issued, failed, in sync, invalid,
revoked, in conflict) are built by :mod:`certctl_operator.policy.issuance`;
this module holds the rest: the ACME order's progress recorded between the
steps of an order, and when an Invalid status says something new. Pure.
"""

from __future__ import annotations

from certctl_operator.api import ManagedCertificateStatus
from certctl_operator.api.certificate import ACMEOrderStatus
from certctl_operator.policy.issuance import ready_condition, ready_transition


def with_acme_order(status: ManagedCertificateStatus, order: ACMEOrderStatus) -> ManagedCertificateStatus:
    """``status`` recording ``order`` as the ACME order in progress (the rest unchanged)."""
    return status.model_copy(update={"acme_order": order})


def ready_or_message_changed(before: ManagedCertificateStatus, after: ManagedCertificateStatus) -> bool:
    """Whether Ready changed its status or reason, or kept them with another message.

    An invalid spec stays Invalid while being edited; a new problem in it
    deserves its own Event even though the condition's reason is the same.
    """
    old, new = ready_condition(before), ready_condition(after)
    return ready_transition(before, after) or (
        old is not None and new is not None and old.message != new.message
    )


__all__ = ["ready_or_message_changed", "with_acme_order"]
