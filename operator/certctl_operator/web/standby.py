"""What a standby replica (leader election) answers on the PKI routes.

A standby is Ready, so a Service in front of the replicas sends it CRL and
OCSP requests too. It runs no handlers and so has none of the in-memory
state the leader answers from, but CRLs are durable: the leader publishes
each one to its issuer's ConfigMap before serving it. So:

* ``GET /crl/...``: the standby reads the issuer's CRL ConfigMap (each
  issuer at most once per ``COLD_HOLD`` seconds, all together within the
  registry's read budget: the route is unauthenticated) and the ordinary
  CRL route serves it, with the same bytes, ETag and caching headers as the
  leader. It lags the ConfigMap by at most ``COLD_HOLD`` seconds. When the
  ConfigMap cannot be read and nothing is cached: 503 with ``Retry-After``.
* OCSP: ``tryLater`` (RFC 6960 2.3). An OCSP answer needs the index of the
  serials each issuer issued, which only the leader keeps (from its watch
  of ManagedCertificates); a standby answering from what it could read
  would call every good certificate "unknown".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware
from cryptography.x509 import ocsp
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.context import OperatorContext
from certctl_operator.kube.crl_publisher import read_published_crl
from certctl_operator.pki import OCSP_RESPONSE_CONTENT_TYPE
from certctl_operator.pki.ocsp import unsuccessful_response
from certctl_operator.policy.revocation import IssuerKey
from certctl_operator.web.pki_state import registry_of

logger = logging.getLogger("certctl.web.standby")

RETRY_AFTER = "1"
"""Seconds a CRL client is asked to wait: its retry may reach another replica."""
READ_TIMEOUT = 5.0
_READ_ERRORS = (ApiException, aiohttp.ClientError, TimeoutError, OSError)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Standby:
    """This replica stands by; ``api`` reads the published CRLs."""

    api: Any


def _crl_key(request: web.Request, context: OperatorContext) -> IssuerKey | None:
    """The issuer a ``/crl/<namespace>/<issuer>.crl`` request names, if this operator serves it."""
    segment = request.match_info.get("namespace", "")
    filename = request.match_info.get("filename", "")
    name = filename.removesuffix(".crl")
    if not segment or not name or name == filename or len(segment) > 253 or len(name) > 253:
        return None
    key = IssuerKey.from_segment(segment, name)
    namespaces = context.settings.namespaces
    if key.namespace is not None and namespaces and key.namespace not in namespaces:
        return None
    return key


def _unavailable(text: str) -> web.Response:
    return web.Response(
        status=503, headers={"Retry-After": RETRY_AFTER, "Cache-Control": "no-store"}, text=text
    )


async def _refresh_crl(context: OperatorContext, standby: Standby, key: IssuerKey) -> web.Response | None:
    """Take the issuer's CRL from its ConfigMap when due; a response when there is nothing to serve."""
    registry = registry_of(context)
    if not registry.cold_lookup("standby-crl", key, time.monotonic()):
        return None
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            published = await read_published_crl(standby.api, context.settings, key)
    except _READ_ERRORS as error:
        logger.debug("cannot read the CRL of issuer %s: %s", key.label, type(error).__name__)
        state = registry.issuers.get(key)
        if state is None or state.crl is None:
            return _unavailable("standby: cannot read the published CRL now\n")
        return None
    if published is None:
        registry.forget_issuer(key)  # not published (any more): the route answers 404
    else:
        registry.set_crl(key, published)
    return None


def standby_middleware(context: OperatorContext) -> Middleware:
    """The aiohttp middleware that answers PKI requests as described in the module documentation."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        standby = context.standby
        if standby is None:
            return await handler(request)
        if request.path.startswith("/ocsp/"):
            body = unsuccessful_response(ocsp.OCSPResponseStatus.TRY_LATER)
            return web.Response(body=body, content_type=OCSP_RESPONSE_CONTENT_TYPE)
        if request.path.startswith("/crl/"):
            key = _crl_key(request, context)
            if key is not None and standby.api is not None:
                answer = await _refresh_crl(context, standby, key)
                if answer is not None:
                    return answer
        return await handler(request)

    return middleware


__all__ = ["RETRY_AFTER", "Standby", "standby_middleware"]
