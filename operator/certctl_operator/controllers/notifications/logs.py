"""Where the notification controller logs, and how it describes errors there.

Channel checks and Event posting log to ``certctl.notifications``. What
happens to one NotificationEvent is logged to ``kopf.objects`` with the
event's reference, as it was when Kopf drove deliveries, so log queries by
object keep finding it. Errors are described by their kind only (the API
status, else the exception's type), never by their text, so no secret
reaches the log.
"""

from __future__ import annotations

import logging

from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.controllers.notifications.runtime import TrackedEvent

logger = logging.getLogger("certctl.notifications")

DELIVERY_LOGGER = logging.getLogger("kopf.objects")
"""What happened to an event is logged as Kopf logs about objects, as it was when Kopf drove deliveries."""


def describe_error(error: BaseException) -> str:
    """A short, secret-free description of an unexpected error for the log."""
    if isinstance(error, ApiException):
        return f"API error {error.status} {error.reason or ''}".strip()
    return type(error).__name__


def event_logger(tracked: TrackedEvent) -> logging.LoggerAdapter[logging.Logger]:
    """Log records about one event, carrying its reference."""
    return logging.LoggerAdapter(DELIVERY_LOGGER, tracked.log_extra())
