"""The watch handlers' own log hygiene: Kopf's success line for routine handlers is dropped."""

from __future__ import annotations

import logging

from certctl_operator.controllers.notifications.watch import QuietRoutineSuccess


def test_routine_success_lines_are_dropped_and_everything_else_kept() -> None:
    quiet = QuietRoutineSuccess()

    def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)

    assert not quiet.filter(record("Handler 'notification-bookkeeping' succeeded."))
    assert not quiet.filter(record("Handler 'channel-secret-watch' succeeded."))
    assert quiet.filter(record("Handler 'something-else' succeeded."))
    assert quiet.filter(record("Handler 'notification-bookkeeping' succeeded.", logging.WARNING))
    assert quiet.filter(record("notification delivered on attempt 1"))
