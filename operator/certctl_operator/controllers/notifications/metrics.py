"""The notification metrics the controller feeds: events by phase, delivery attempts and their duration.

The metric objects themselves are defined once, in
:mod:`certctl_operator.metrics`; this module says what the controller
counts into them, with which labels.
"""

from __future__ import annotations

from collections.abc import Mapping

from certctl_operator import metrics
from certctl_operator.api.notification import DeliveryPhase
from certctl_operator.notify.senders import DeliveryResult

RESULT_SUCCESS = "success"
RESULT_FAILURE = "failure"
RESULT_SKIPPED = "skipped"

UNKNOWN_CHANNEL_TYPE = "unknown"
"""The ``channel_type`` label of an attempt whose channel does not exist."""


def publish_phase_counts(counts: Mapping[DeliveryPhase, int]) -> None:
    """Set the per-phase gauges and the dead-letter gauge from the counts of the watch-maintained book."""
    for phase, count in counts.items():
        metrics.notification_events.labels(phase=phase.value).set(count)
    metrics.notification_dead_total.set(counts[DeliveryPhase.DEAD])


def count_skipped_attempt() -> None:
    """An event closed without delivery, because its channel does not exist."""
    metrics.notification_delivery_attempts_total.labels(
        channel_type=UNKNOWN_CHANNEL_TYPE, result=RESULT_SKIPPED
    ).inc()


def count_attempt(channel_type: str, result: DeliveryResult) -> None:
    """One attempt on a channel that exists, and how long it took."""
    metrics.notification_delivery_attempts_total.labels(
        channel_type=channel_type, result=RESULT_SUCCESS if result.ok else RESULT_FAILURE
    ).inc()
    metrics.notification_delivery_duration_seconds.labels(channel_type=channel_type).observe(
        result.duration.total_seconds()
    )
