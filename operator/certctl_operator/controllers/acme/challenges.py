"""Answering ACME challenges: the operator's HTTP-01 route, solver Pods, RFC 2136 DNS-01 updates.

HTTP-01 answers are served by the operator's own web server at
``/.well-known/acme-challenge/<token>`` from an in-memory table (the route is
registered when this module is imported), or, for a solver with ``pod``, by a
solver Pod and Service per challenge in the certificate's namespace. DNS-01
answers are TXT records written with RFC 2136 updates.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.acme import ACMEProblem
from certctl_operator.acme.http01_solver import SolverPodSettings
from certctl_operator.acme.rfc2136 import update_txt
from certctl_operator.api.issuer import ACMEHTTP01SolverPod, ACMEIssuer, ACMESolver
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.issuance import Key
from certctl_operator.kube.acme_solver import SolverNotReady, SolverPods
from certctl_operator.settings import Settings
from certctl_operator.web.server import register_routes

# The logger name the ACME glue has always logged under (it was the glue module's name).
logger = logging.getLogger("certctl_operator.controllers.acme")

CHALLENGE_PATH = "/.well-known/acme-challenge/{token}"


def install_challenge_route(app: web.Application, context: OperatorContext) -> None:
    async def challenge(request: web.Request) -> web.Response:
        answer = context.http01_answers.get(request.match_info["token"])
        if answer is None:
            return web.Response(status=404, text="no such challenge\n")
        return web.Response(text=answer, content_type="application/octet-stream")

    app.router.add_get(CHALLENGE_PATH, challenge)


register_routes(install_challenge_route)


class ChallengePublisher:
    """Publishes challenge answers: the operator's table, solver Pods, or RFC 2136 updates."""

    def __init__(
        self, table: dict[str, str], tsig_secrets: dict[str, bytes], pods: SolverPods | None
    ) -> None:
        self.table = table
        self.tsig_secrets = tsig_secrets
        self.pods = pods

    def _pod(self, solver: ACMESolver) -> ACMEHTTP01SolverPod | None:
        return solver.http01.pod if solver.http01 is not None else None

    async def publish_http01(
        self, solver: ACMESolver, identifier: str, token: str, key_authorization: str
    ) -> None:
        pod = self._pod(solver)
        if pod is not None and self.pods is not None:
            try:
                await self.pods.publish(pod, identifier, token, key_authorization)
            except ApiException as error:
                if error.status not in (400, 403, 422):
                    raise
                # Refused, not failed: say so on the certificate instead of retrying blindly.
                raise ACMEProblem(
                    "solverPod",
                    f"creating the HTTP-01 solver for {identifier} was refused: {error.status} "
                    f"{error.reason}: {api_message(error)}",
                ) from None
        else:
            self.table[token] = key_authorization

    async def withdraw_http01(self, solver: ACMESolver, identifier: str, token: str) -> None:
        if self._pod(solver) is not None and self.pods is not None:
            await self.pods.withdraw(identifier, token)
        else:
            self.table.pop(token, None)

    async def served(self) -> None:
        # The operator's table and RFC 2136 updates answer at once; solver Pods once Ready.
        if self.pods is None:
            return
        try:
            await self.pods.wait_ready()
        except SolverNotReady as error:
            raise ACMEProblem("solverPodNotReady", str(error)) from None

    async def publish_dns01(self, solver: ACMESolver, record_name: str, value: str) -> None:
        await asyncio.to_thread(self._update, solver, record_name, value, add=True)

    async def withdraw_dns01(self, solver: ACMESolver, record_name: str, value: str) -> None:
        await asyncio.to_thread(self._update, solver, record_name, value, add=False)

    def _update(self, solver: ACMESolver, record_name: str, value: str, *, add: bool) -> None:
        assert solver.dns01 is not None
        provider = solver.dns01.rfc2136
        update_txt(
            provider.nameserver,
            record_name,
            value,
            add=add,
            tsig_key_name=provider.tsig_key_name,
            tsig_algorithm=provider.tsig_algorithm,
            tsig_secret=self.tsig_secrets.get(provider.tsig_key_name or ""),
        )


def api_message(error: ApiException) -> str:
    """The ``message`` of the API server's Status in ``error``, cut short; empty when there is none."""
    try:
        return str(json.loads(error.body or "{}").get("message", ""))[:500]
    except (ValueError, AttributeError):
        return ""


def solver_pod_defaults(settings: Settings) -> SolverPodSettings:
    """The operator's defaults for what an issuer's http01.pod leaves out."""
    return SolverPodSettings(
        image=settings.acme_solver_image,
        service_type=settings.acme_solver_service_type,
        resources=settings.acme_solver_resources,
        node_selector=settings.acme_solver_node_selector,
        tolerations=settings.acme_solver_tolerations,
    )


def uses_solver_pods(spec: ACMEIssuer) -> bool:
    return any(s.http01 is not None and s.http01.pod is not None for s in spec.solvers)


async def remove_solver_pods(pods: SolverPods, key: Key) -> None:
    """Remove the solver Pods and Services of certificate ``key`` an order left behind."""
    # Left over by an order a crash abandoned: the order in hand withdrew its own.
    try:
        removed = await pods.remove_all()
    except ApiException as error:
        logger.warning("removing HTTP-01 solver Pods of %s failed: %s", key, error.reason)
        return
    if removed:
        logger.info("removed %d leftover HTTP-01 solver objects of %s", removed, key)


__all__ = [
    "ChallengePublisher",
    "install_challenge_route",
    "remove_solver_pods",
    "solver_pod_defaults",
    "uses_solver_pods",
]
