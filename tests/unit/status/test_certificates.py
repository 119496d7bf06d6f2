"""What a certificate's controller records in its status itself: the ACME order, Invalid news."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from certctl_operator.api import ConditionStatus, ConditionType, ManagedCertificateStatus, set_condition
from certctl_operator.api.certificate import ACMEOrderStatus
from certctl_operator.status.certificates import ready_or_message_changed, with_acme_order

NOW = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)


def status(
    ready: ConditionStatus, reason: str, message: str, now: datetime = NOW
) -> ManagedCertificateStatus:
    conditions = set_condition([], ConditionType.READY, ready, reason, message, now=now)
    return ManagedCertificateStatus(conditions=conditions, revision=2)


def test_the_acme_order_is_recorded_and_nothing_else_changes() -> None:
    before = status(ConditionStatus.TRUE, "Issued", "revision 2")
    order = ACMEOrderStatus(url="https://acme.example/order/1", state="pending", identifiers=["a.example"])
    after = with_acme_order(before, order)
    assert after.acme_order == order and before.acme_order is None
    assert after.model_copy(update={"acme_order": None}) == before
    resumed = with_acme_order(after, order.model_copy(update={"state": "valid"}))
    assert resumed.acme_order is not None and resumed.acme_order.state == "valid"


def test_an_invalid_spec_is_news_when_ready_changes_or_its_message_does() -> None:
    invalid = status(ConditionStatus.FALSE, "InvalidSpec", "spec.duration is below the minimum")
    assert ready_or_message_changed(ManagedCertificateStatus(), invalid), "no Ready condition before"
    assert ready_or_message_changed(status(ConditionStatus.TRUE, "Issued", "revision 2"), invalid)
    later = NOW + timedelta(minutes=1)
    same = status(ConditionStatus.FALSE, "InvalidSpec", "spec.duration is below the minimum", later)
    assert not ready_or_message_changed(invalid, same)
    other_problem = status(ConditionStatus.FALSE, "InvalidSpec", "spec.dnsNames is empty", later)
    assert ready_or_message_changed(invalid, other_problem)
    assert not ready_or_message_changed(invalid, ManagedCertificateStatus()), "no Ready condition after"
