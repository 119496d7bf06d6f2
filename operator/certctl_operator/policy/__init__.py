"""Pure decision logic: backoff, the notification delivery state machine, renewal timing.

Nothing in this package talks to Kubernetes or the network, and nothing reads
the clock: every function takes ``now`` from its caller.
"""

from certctl_operator.api.notification import DeliveryPhase
from certctl_operator.policy.backoff import backoff_delay
from certctl_operator.policy.notification import (
    Attempt,
    AttemptOutcome,
    ConditionFields,
    DeliveryError,
    DeliveryState,
    ErrorKind,
    InvalidTransition,
    RetryPolicy,
    delivery_conditions,
    is_due,
    on_channel_missing,
    on_failure,
    on_requeue,
    on_success,
    phase_label,
    should_expire,
    time_until_due,
)
from certctl_operator.policy.renewal import (
    DEFAULT_EXPIRY_THRESHOLDS,
    expiry_event_name,
    expiry_thresholds_due,
    issuance_backoff,
    most_urgent_threshold,
    next_issuance_attempt,
    next_threshold_time,
    notification_event_name,
    object_name,
    renewal_time,
)

__all__ = [
    "DEFAULT_EXPIRY_THRESHOLDS",
    "Attempt",
    "AttemptOutcome",
    "ConditionFields",
    "DeliveryError",
    "DeliveryPhase",
    "DeliveryState",
    "ErrorKind",
    "InvalidTransition",
    "RetryPolicy",
    "backoff_delay",
    "delivery_conditions",
    "expiry_event_name",
    "expiry_thresholds_due",
    "is_due",
    "issuance_backoff",
    "most_urgent_threshold",
    "next_issuance_attempt",
    "next_threshold_time",
    "notification_event_name",
    "object_name",
    "on_channel_missing",
    "on_failure",
    "on_requeue",
    "on_success",
    "phase_label",
    "renewal_time",
    "should_expire",
    "time_until_due",
]
