"""The shared receivers behave as the sender tests assume (used synchronously here)."""

from __future__ import annotations

import httpx
import pytest
from tests.support.receivers import HTTPReceiver, ScriptedResponse


def test_failing_receiver_fails_then_succeeds_and_records() -> None:
    with HTTPReceiver.failing(2, 503, headers={"Retry-After": "7"}) as receiver, httpx.Client() as client:
        statuses = [
            client.post(receiver.url_for("hook"), content=b"x", headers={"X-A": "b"}).status_code
            for _ in range(3)
        ]
        assert statuses == [503, 503, 200]
        requests = receiver.wait_for_requests(3)
    assert [r.path for r in requests] == ["/hook"] * 3
    assert requests[0].header("X-A") == "b"
    assert requests[0].body == b"x"


def test_scripted_responses_and_waiting_deadline() -> None:
    with HTTPReceiver([ScriptedResponse(201, b"made")]) as receiver, httpx.Client() as client:
        response = client.get(receiver.url)
        assert (response.status_code, response.content) == (201, b"made")
        receiver.script(ScriptedResponse(418))
        assert client.get(receiver.url).status_code == 418
        assert client.get(receiver.url).status_code == 200
        with pytest.raises(TimeoutError):
            receiver.wait_for_requests(4, seconds=0.05)
