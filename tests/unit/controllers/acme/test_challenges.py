"""The operator's own HTTP-01 answers and how a refused solver Pod is reported (no cluster)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.acme import ACMEProblem
from certctl_operator.api.issuer import ACMESolver
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.acme.challenges import (
    ChallengePublisher,
    api_message,
    install_challenge_route,
)
from certctl_operator.settings import Settings

INLINE = ACMESolver.model_validate({"http01": {}})
WITH_POD = ACMESolver.model_validate({"http01": {"pod": {}}})


async def test_the_route_answers_published_tokens_only() -> None:
    context = OperatorContext(settings=Settings())
    app = web.Application()
    install_challenge_route(app, context)
    publisher = ChallengePublisher(context.http01_answers, {}, pods=None)
    async with TestClient(TestServer(app)) as client:
        await publisher.publish_http01(INLINE, "web.example", "tok-1", "tok-1.thumbprint")
        answer = await client.get("/.well-known/acme-challenge/tok-1")
        assert answer.status == 200 and await answer.text() == "tok-1.thumbprint"
        assert (await client.get("/.well-known/acme-challenge/tok-2")).status == 404

        await publisher.withdraw_http01(INLINE, "web.example", "tok-1")
        assert (await client.get("/.well-known/acme-challenge/tok-1")).status == 404
        assert context.http01_answers == {}


class RefusingPods:
    def __init__(self, status: int) -> None:
        self.status = status

    async def publish(self, *_: Any) -> None:
        error = ApiException(status=self.status, reason="Forbidden")
        error.body = '{"message": "pods \\"solver\\" is forbidden: exceeded quota"}'
        raise error


async def test_a_refused_solver_pod_is_an_acme_problem_naming_the_reason() -> None:
    publisher = ChallengePublisher({}, {}, pods=RefusingPods(403))  # type: ignore[arg-type]
    with pytest.raises(ACMEProblem) as raised:
        await publisher.publish_http01(WITH_POD, "web.example", "tok", "tok.thumbprint")
    assert "refused: 403 Forbidden" in str(raised.value) and "exceeded quota" in str(raised.value)


async def test_a_failing_api_server_is_not_turned_into_a_problem() -> None:
    publisher = ChallengePublisher({}, {}, pods=RefusingPods(503))  # type: ignore[arg-type]
    with pytest.raises(ApiException):
        await publisher.publish_http01(WITH_POD, "web.example", "tok", "tok.thumbprint")


def test_api_message_is_short_and_never_raises() -> None:
    error = ApiException(status=422, reason="Invalid")
    error.body = '{"message": "' + "x" * 900 + '"}'
    assert api_message(error) == "x" * 500
    error.body = "not json"
    assert api_message(error) == ""
