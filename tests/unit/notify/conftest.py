from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.support.receivers import HTTPReceiver, ScriptedResponse, SMTPReceiver

from certctl_operator.api.notification import NotificationEventType, Severity
from certctl_operator.notify.payload import (
    CertificateRef,
    Message,
)
from certctl_operator.notify.senders import HttpClientPool

EVENT_ID = "0b7f4c1e-6a52-4e0c-9a51-6d1f0e2b9c33"


@pytest.fixture
def message() -> Message:
    return Message(
        event_id=EVENT_ID,
        type=NotificationEventType.RENEWED,
        severity=Severity.INFO,
        subject="Certificate shop/web renewed",
        message="The certificate shop/web was renewed; it is valid until 2025-06-01T00:00:00Z.",
        timestamp=datetime(2025, 3, 3, 0, 0, tzinfo=UTC),
        certificate=CertificateRef("shop", "web"),
        details={"revision": 4, "serialNumber": "0a:1b:2c"},
    )


@pytest.fixture
def http_receiver() -> Iterator[Callable[..., HTTPReceiver]]:
    """Start HTTPReceivers on demand; all are stopped after the test."""
    started: list[HTTPReceiver] = []

    def start(responses: list[ScriptedResponse] | None = None, **kwargs: Any) -> HTTPReceiver:
        receiver = HTTPReceiver(responses or [], **kwargs).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def smtp_receiver() -> Iterator[Callable[..., SMTPReceiver]]:
    started: list[SMTPReceiver] = []

    def start(**kwargs: Any) -> SMTPReceiver:
        receiver = SMTPReceiver(**kwargs).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
async def pool() -> AsyncIterator[HttpClientPool]:
    async with HttpClientPool() as clients:
        yield clients
