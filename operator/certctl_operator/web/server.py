"""One HTTP server for health probes, Prometheus metrics and PKI endpoints.

Health and metrics share a port with the CRL and OCSP endpoints so a single
Service exposes everything; the PKI routes are unauthenticated by design
(relying parties fetch CRLs and ask OCSP without credentials).

A standby replica (leader election) is Ready when it could take over, which
its runner says through ``context.standby_readiness``; what it answers on the PKI routes
is in :mod:`certctl_operator.web.standby`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from certctl_operator import metrics as _metrics  # noqa: F401  (registers every metric at start)
from certctl_operator.context import OperatorContext
from certctl_operator.web.standby import standby_middleware

logger = logging.getLogger("certctl.web")

RouteInstaller = Callable[[web.Application, OperatorContext], None]
_route_installers: list[RouteInstaller] = []

Readiness = Callable[[], tuple[bool, str]]
"""What answers ``/readyz`` instead of ``context.ready`` while a replica stands by."""


def register_routes(installer: RouteInstaller) -> RouteInstaller:
    """Let a feature module (CRL, OCSP) add its routes to the shared server."""
    _route_installers.append(installer)
    return installer


def build_app(context: OperatorContext) -> web.Application:
    app = web.Application(middlewares=[standby_middleware(context)])

    async def healthz(_: web.Request) -> web.Response:
        # Answering at all proves the event loop is not blocked.
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        readiness = context.standby_readiness
        ready, reason = readiness() if readiness is not None else (context.ready, context.not_ready_reason)
        if ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"{reason}\n")

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    for installer in _route_installers:
        installer(app, context)
    return app


async def start_server(context: OperatorContext) -> web.AppRunner:
    runner = web.AppRunner(build_app(context), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, context.settings.http_host, context.settings.http_port)
    await site.start()
    for address in runner.addresses:
        logger.info("Serving health, metrics and PKI endpoints on %s", address)
    return runner
