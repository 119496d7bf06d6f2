"""Outcomes kept while the API server is unreachable: recorded once, onto the state they came from."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from certctl_operator.handlers import notifications as handlers
from certctl_operator.notify.senders import DeliveryResult, HttpClientPool, Notifier
from certctl_operator.policy import notification as policy
from certctl_operator.settings import Settings

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
UID = "6f1d2c3b-0000-4000-8000-000000000001"
DELIVERED = DeliveryResult.success(timedelta(milliseconds=40), "HTTP 200 OK", 200)


@pytest.fixture
async def runtime() -> AsyncIterator[handlers.NotificationRuntime]:
    settings = Settings()
    pool = HttpClientPool()
    yield handlers.NotificationRuntime(
        settings=settings,
        pool=pool,
        notifier=Notifier(pool),
        policy=policy.RetryPolicy.from_settings(settings),
    )
    await pool.aclose()


def failed_once() -> policy.DeliveryState:
    error = policy.DeliveryError(policy.ErrorKind.SERVER_ERROR, "HTTP 503 Service Unavailable", 503)
    return policy.on_failure(policy.DeliveryState(), error, NOW, policy.RetryPolicy())


async def test_a_kept_outcome_is_given_back_for_the_same_state_until_forgotten(
    runtime: handlers.NotificationRuntime,
) -> None:
    state = failed_once()
    runtime.keep_outcome(UID, state, DELIVERED, NOW + timedelta(minutes=1))
    kept = runtime.kept_outcome(UID, state)
    assert kept is not None
    assert kept.attempt == 2, "the attempt after one failure"
    assert kept.result is DELIVERED and kept.at == NOW + timedelta(minutes=1)
    assert runtime.kept_outcome(UID, state) is kept, "kept until the status write succeeds"
    runtime.forget_outcome(UID)
    assert runtime.kept_outcome(UID, state) is None
    assert runtime.kept_outcome("another-uid", state) is None


@pytest.mark.parametrize(
    "moved_on",
    [
        lambda state: policy.on_requeue(replace(state, phase=policy.DeliveryPhase.DEAD)),
        lambda state: policy.on_success(state, NOW + timedelta(minutes=2)),
        lambda state: replace(state, retry_count=state.retry_count + 1),
        lambda state: replace(state, last_attempt_at=NOW + timedelta(seconds=5)),
    ],
    ids=["requeued", "recorded-by-another-writer", "another-failure", "another-attempt"],
)
async def test_a_kept_outcome_is_void_once_the_state_moved_on(
    runtime: handlers.NotificationRuntime,
    moved_on: Callable[[policy.DeliveryState], policy.DeliveryState],
) -> None:
    state = failed_once()
    runtime.keep_outcome(UID, state, DELIVERED, NOW)
    assert runtime.kept_outcome(UID, moved_on(state)) is None
    assert runtime.kept_outcome(UID, state) is None, "a void outcome is dropped, not kept for later"


async def test_deleting_the_event_forgets_its_outcome(runtime: handlers.NotificationRuntime) -> None:
    state = policy.DeliveryState()
    runtime.keep_outcome(UID, state, DELIVERED, NOW)
    runtime.observe("DELETED", {"metadata": {"uid": UID, "name": "e", "namespace": "n"}})
    assert UID not in runtime.unrecorded
