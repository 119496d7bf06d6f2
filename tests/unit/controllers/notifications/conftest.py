"""A notification runtime without an API client, whose workers only note the keys they are given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from certctl_operator.controllers.notifications.runtime import NotificationRuntime, WorkKey
from certctl_operator.notify.senders import HttpClientPool, Notifier
from certctl_operator.policy.notification import RetryPolicy
from certctl_operator.settings import Settings


@pytest.fixture
def processed() -> list[WorkKey]:
    """The keys the runtime's workers were given, in order."""
    return []


@pytest.fixture
async def runtime(processed: list[WorkKey]) -> AsyncIterator[NotificationRuntime]:
    async def note(_: NotificationRuntime, key: WorkKey) -> None:
        processed.append(key)

    settings = Settings(notification_sent_retention=timedelta(hours=1))
    pool = HttpClientPool()
    yield NotificationRuntime(
        settings=settings,
        pool=pool,
        notifier=Notifier(pool),
        policy=RetryPolicy.from_settings(settings),
        process=note,
    )
    await pool.aclose()
