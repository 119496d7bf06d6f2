"""Polling the CA: one short request at a time in a thread, waits on the event loop, a deadline."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from acme import errors, messages

from certctl_operator.acme.flow import _poll_authorizations

AUTHZ_URL = "https://ca.test/authz/1"


class ScriptedCA:
    """The authorization's status on each poll, and the threads the polls ran in."""

    def __init__(self, statuses: Iterator[messages.Status]) -> None:
        self.statuses = statuses
        self.threads: list[int] = []

    def _post_as_get(self, url: str) -> messages.Status:
        self.threads.append(threading.get_ident())
        return next(self.statuses)

    def _authzr_from_response(self, status: messages.Status, uri: str) -> messages.AuthorizationResource:
        identifier = messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="www.example.test")
        body = messages.Authorization(identifier=identifier, status=status, challenges=())
        return messages.AuthorizationResource(uri=uri, body=body)


def order(ca: ScriptedCA) -> messages.OrderResource:
    pending = ca._authzr_from_response(messages.STATUS_PENDING, AUTHZ_URL)
    return messages.OrderResource(
        uri="https://ca.test/order/1",
        body=messages.Order(authorizations=[AUTHZ_URL]),
        authorizations=[pending],
    )


async def test_polls_run_in_threads_and_the_loop_runs_between_them() -> None:
    statuses = iter([messages.STATUS_PENDING] * 3 + [messages.STATUS_VALID])
    ca = ScriptedCA(statuses)
    settled: list[str] = []
    ticks = 0

    async def finished(url: str) -> None:
        settled.append(url)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(ticker())
    try:
        client: Any = ca
        result = await _poll_authorizations(client, order(ca), time.monotonic() + 30, 0.01, finished)
    finally:
        other.cancel()
    assert [a.body.status for a in result.authorizations] == [messages.STATUS_VALID]
    assert settled == [AUTHZ_URL]
    assert len(ca.threads) == 4 and threading.get_ident() not in ca.threads
    assert ticks > 4  # the loop served the other task while the flow waited


async def test_deadline_ends_polling_with_a_timeout() -> None:
    ca = ScriptedCA(iter(lambda: messages.STATUS_PENDING, None))

    async def finished(url: str) -> None:
        raise AssertionError("nothing settled")

    client: Any = ca
    with pytest.raises(errors.TimeoutError):
        await _poll_authorizations(client, order(ca), time.monotonic() + 0.05, 0.01, finished)


async def test_an_invalid_authorization_fails_the_order() -> None:
    ca = ScriptedCA(iter([messages.STATUS_INVALID]))
    settled: list[str] = []

    async def finished(url: str) -> None:
        settled.append(url)

    client: Any = ca
    with pytest.raises(errors.ValidationError):
        await _poll_authorizations(client, order(ca), time.monotonic() + 30, 0.01, finished)
    assert settled == [AUTHZ_URL]  # its answer is withdrawn all the same
