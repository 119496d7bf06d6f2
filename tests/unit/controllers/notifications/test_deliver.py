"""A delivery on the wire when the operator stops: finished within the grace, or cancelled unrecorded."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from certctl_operator.controllers.notifications import deliver
from certctl_operator.notify.senders import DeliveryResult

DELIVERED = DeliveryResult.success(timedelta(milliseconds=40), "HTTP 200 OK", 200)


class Stopped:
    """Stands in for the runtime's stop flag: true once the operator is stopping."""

    def __init__(self) -> None:
        self.flag = False

    def __bool__(self) -> bool:
        return self.flag


class Receiver:
    """A delivery that is on the wire until the test lets the receiver answer."""

    def __init__(self) -> None:
        self.on_wire = asyncio.Event()
        self.answer = asyncio.Event()
        self.cancelled = False

    async def deliver(self) -> DeliveryResult:
        self.on_wire.set()
        try:
            await self.answer.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return DELIVERED


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deliver, "DELIVERY_STOP_GRACE", 0.3)


async def test_a_delivery_without_a_stop_returns_its_result() -> None:
    receiver, stopped = Receiver(), Stopped()
    receiver.answer.set()
    assert await deliver.deliver_unless_stopping(receiver.deliver(), stopped) is DELIVERED
    assert not receiver.cancelled


async def test_an_answer_within_the_grace_after_the_stop_is_kept() -> None:
    receiver, stopped = Receiver(), Stopped()
    delivery = asyncio.ensure_future(deliver.deliver_unless_stopping(receiver.deliver(), stopped))
    await receiver.on_wire.wait()
    stopped.flag = True  # the stop comes while the request is on the wire
    receiver.answer.set()
    assert await delivery is DELIVERED
    assert not receiver.cancelled


async def test_no_answer_within_the_grace_cancels_the_delivery_and_returns_none() -> None:
    receiver, stopped = Receiver(), Stopped()
    stopped.flag = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await deliver.deliver_unless_stopping(receiver.deliver(), stopped) is None
    assert receiver.cancelled
    assert loop.time() - started < 0.3 + deliver.STOP_POLL_SECONDS + 0.5


async def test_a_cancelled_tick_cancels_its_delivery() -> None:
    receiver, stopped = Receiver(), Stopped()
    tick = asyncio.ensure_future(deliver.deliver_unless_stopping(receiver.deliver(), stopped))
    await receiver.on_wire.wait()
    tick.cancel()
    with pytest.raises(asyncio.CancelledError):
        await tick
    assert receiver.cancelled
