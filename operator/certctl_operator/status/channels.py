"""What a NotificationChannel's ``.status`` says: its type and a Ready condition.

Pure: the problems found by the channel check
(:func:`certctl_operator.notify.channel_config.channel_problems` and the egress
checks) come in as sentences, the clock as ``now``. A channel is Ready
exactly when nothing keeps it from delivering; the reason names the first
kind of problem a person has to fix: a missing Secret, a refused
destination, or anything else about its configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from certctl_operator.api.common import ConditionStatus, set_condition
from certctl_operator.api.notification import (
    ChannelType,
    NotificationChannelSpec,
    NotificationChannelStatus,
)
from certctl_operator.notify.egress import EGRESS_REFUSES

REASON_READY = "Ready"
REASON_SECRET_NOT_FOUND = "SecretNotFound"  # noqa: S105 (a condition reason)
REASON_INVALID = "InvalidConfiguration"
REASON_EGRESS_DENIED = "EgressDenied"

_CHANNEL_TYPES = {
    "webhook": ChannelType.WEBHOOK,
    "email": ChannelType.EMAIL,
    "slack": ChannelType.SLACK,
    "teams": ChannelType.TEAMS,
    "pagerduty": ChannelType.PAGERDUTY,
}
"""The channel type each spec field stands for."""


def channel_status(
    previous: NotificationChannelStatus,
    spec: NotificationChannelSpec,
    problems: Iterable[str],
    *,
    now: datetime,
    generation: int | None,
) -> NotificationChannelStatus:
    """The channel's status: its type and a Ready condition saying whether it can deliver."""
    found = list(problems)
    status = previous.model_copy(deep=True)
    status.type = spec.type
    status.observed_generation = generation
    if not found:
        ready, reason, message = ConditionStatus.TRUE, REASON_READY, f"{spec.type.value} channel is ready"
    else:
        missing = any(problem.endswith("not found") for problem in found)
        denied = any(problem.startswith(EGRESS_REFUSES) for problem in found)
        ready = ConditionStatus.FALSE
        reason = REASON_SECRET_NOT_FOUND if missing else REASON_EGRESS_DENIED if denied else REASON_INVALID
        message = "; ".join(found)
    status.conditions = set_condition(
        status.conditions, "Ready", ready, reason, message, now=now, observed_generation=generation
    )
    return status


def unparsable_channel_status(
    body: Mapping[str, Any], problems: Iterable[str], *, now: datetime
) -> tuple[NotificationChannelStatus, NotificationChannelStatus]:
    """Status (before, after) of a channel whose spec does not parse: Ready False, InvalidConfiguration."""
    try:
        previous = NotificationChannelStatus.model_validate(body.get("status") or {})
    except ValueError:
        previous = NotificationChannelStatus()
    generation = (body.get("metadata") or {}).get("generation")
    status = previous.model_copy(deep=True)
    configured = [name for name in _CHANNEL_TYPES if (body.get("spec") or {}).get(name) is not None]
    if len(configured) == 1:
        status.type = _CHANNEL_TYPES[configured[0]]
    status.observed_generation = generation if isinstance(generation, int) else None
    status.conditions = set_condition(
        status.conditions,
        "Ready",
        ConditionStatus.FALSE,
        REASON_INVALID,
        "; ".join(problems) or "the channel's spec is not valid",
        now=now,
        observed_generation=status.observed_generation,
    )
    return previous, status
