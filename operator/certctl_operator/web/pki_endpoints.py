"""The public PKI endpoints: CRLs and the OCSP responder, one of each per CA issuer.

* ``GET /crl/<namespace>/<issuer>.crl`` (``/crl/_cluster/<issuer>.crl`` for a
  ClusterIssuer): the issuer's current CRL, DER, ``application/pkix-crl``, with
  ETag and Last-Modified (conditional requests get 304).
* ``POST /ocsp/<namespace>/<issuer>`` (body: a DER OCSP request) and
  ``GET /ocsp/<namespace>/<issuer>/<base64 request>`` (RFC 6960 appendix A):
  signed answers good / revoked / unknown, nonce echoed.

Answers come from memory (:mod:`certctl_operator.web.pki_state`); only a CRL
not yet in memory is read from its ConfigMap. An issuer whose CA is not
loaded yet gets ``tryLater``; one whose OCSP is disabled, ``unauthorized``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from aiohttp import web
from cryptography.x509 import ocsp

from certctl_operator import API_GROUP, API_VERSION, metrics
from certctl_operator.context import OperatorContext
from certctl_operator.kube.crl_publisher import load_signing_state, read_published_crl
from certctl_operator.logs import object_extra
from certctl_operator.pki import (
    CRL_CONTENT_TYPE,
    OCSP_RESPONSE_CONTENT_TYPE,
    CertificateStatus,
    MalformedOCSPRequestError,
    build_ocsp_response,
    decode_get_request,
    parse_ocsp_request,
)
from certctl_operator.pki.ocsp import issuer_matches, unsuccessful_response
from certctl_operator.policy.clock import utc_now
from certctl_operator.policy.revocation import CLUSTER_SEGMENT, IssuerKey
from certctl_operator.web.pki_state import IssuerPKI, PublishedCRL, registry_of
from certctl_operator.web.server import register_routes

logger = logging.getLogger("certctl.web.pki")

MAX_OCSP_REQUEST_BYTES = 16 * 1024
LOAD_TIMEOUT = 5.0


def _issuer_key(segment: str, name: str) -> IssuerKey | None:
    if not segment or not name or len(segment) > 253 or len(name) > 253:
        return None
    return IssuerKey.from_segment(segment, name)


def _served(context: OperatorContext, key: IssuerKey) -> bool:
    """Whether this operator serves ``key``'s namespace at all."""
    namespaces = context.settings.namespaces
    return key.namespace is None or not namespaces or key.namespace in namespaces


def _http_date(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC).replace(microsecond=0), usegmt=True)


def _not_modified(request: web.Request, crl: PublishedCRL) -> bool:
    tags = request.headers.get("If-None-Match")
    if tags is not None:
        return any(tag.strip() in (crl.etag, "*") for tag in tags.split(","))
    since = request.headers.get("If-Modified-Since")
    if since:
        try:
            return crl.this_update.replace(microsecond=0) <= parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
    return False


def install(app: web.Application, context: OperatorContext) -> None:
    registry = registry_of(context)

    async def crl(request: web.Request) -> web.StreamResponse:
        filename = request.match_info["filename"]
        if not filename.endswith(".crl"):
            raise web.HTTPNotFound(text="CRLs are served as /crl/<namespace>/<issuer>.crl\n")
        key = _issuer_key(request.match_info["namespace"], filename.removesuffix(".crl"))
        if key is None or not _served(context, key):
            raise web.HTTPNotFound(text="no such issuer\n")
        state = registry.issuers.get(key)
        published = state.crl if state is not None else None
        if (
            published is None
            and context.api is not None
            and registry.cold_lookup("crl", key, time.monotonic())
        ):
            # Not published by this process yet (it just started): the ConfigMap has it.
            published = await read_published_crl(context.api, context.settings, key)
            if published is not None:
                registry.set_crl(key, published)
        if published is None:
            raise web.HTTPNotFound(text=f"issuer {key.label} has no CRL\n")
        headers = {
            "ETag": published.etag,
            "Last-Modified": _http_date(published.this_update),
            "Cache-Control": "public, no-cache",
        }
        if published.next_update is not None:
            headers["Expires"] = _http_date(published.next_update)
        if _not_modified(request, published):
            return web.Response(status=304, headers=headers)
        return web.Response(body=published.der, content_type=CRL_CONTENT_TYPE, headers=headers)

    async def answer(key: IssuerKey | None, der: bytes) -> web.Response:
        if key is not None and der:
            await _ensure_signing_state(context, key)
        status, body = respond_ocsp(context, key, der)
        metrics.ocsp_responses_total.labels(status=status).inc()
        return web.Response(body=body, content_type=OCSP_RESPONSE_CONTENT_TYPE)

    async def ocsp_post(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_OCSP_REQUEST_BYTES:
            return await answer(None, b"")
        der = await request.content.read(MAX_OCSP_REQUEST_BYTES + 1)
        if len(der) > MAX_OCSP_REQUEST_BYTES:
            der = b""
        return await answer(_issuer_key(request.match_info["namespace"], request.match_info["issuer"]), der)

    async def ocsp_get(request: web.Request) -> web.Response:
        # The base64 may itself hold "/"; take the raw path so nothing was decoded twice.
        prefix = f"/ocsp/{request.match_info['namespace']}/{request.match_info['issuer']}/"
        raw = request.raw_path.split("?", 1)[0]
        encoded = raw[len(prefix) :] if raw.startswith(prefix) else request.match_info["request"]
        try:
            der = decode_get_request(encoded)
        except MalformedOCSPRequestError:
            der = b""
        return await answer(_issuer_key(request.match_info["namespace"], request.match_info["issuer"]), der)

    app.router.add_get("/crl/{namespace}/{filename}", crl)
    app.router.add_post("/ocsp/{namespace}/{issuer}", ocsp_post)
    app.router.add_post("/ocsp/{namespace}/{issuer}/", ocsp_post)
    app.router.add_get("/ocsp/{namespace}/{issuer}/{request:.+}", ocsp_get)


async def _ensure_signing_state(context: OperatorContext, key: IssuerKey) -> None:
    """Load an issuer's CA, revocation list and responder when a request finds them missing.

    The issuer's own loop loads them too, but only after a random start-up
    delay; this way the responder answers from the first request after a
    restart. Concurrent requests share one load; see ``cold_lookup`` for the limits.
    """
    registry = registry_of(context)
    state = registry.issuers.get(key)
    if (
        (state is not None and state.authority is not None)
        or context.api is None
        or not _served(context, key)
    ):
        return
    task = registry.loading.get(key)
    if task is None:
        if not registry.cold_lookup("ocsp", key, time.monotonic()):
            return
        task = asyncio.ensure_future(
            load_signing_state(context.api, context.settings, registry, key, utc_now())
        )
        registry.loading[key] = task
        task.add_done_callback(lambda _: registry.loading.pop(key, None))
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=LOAD_TIMEOUT)
    except Exception as error:  # answered with tryLater; the issuer's loop keeps trying
        logger.debug(
            "cannot load the signing state of issuer %s: %s",
            key.label,
            type(error).__name__,
            extra=_log_extra(key, registry.issuers.get(key)),
        )


def _log_extra(key: IssuerKey, state: IssuerPKI | None) -> dict[str, Any]:
    """``extra=`` for a log record about the issuer ``key``."""
    return object_extra(
        {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": key.kind.value,
            "metadata": {
                "name": key.name,
                "namespace": key.namespace,
                "uid": state.uid if state is not None else None,
            },
        }
    )


def respond_ocsp(context: OperatorContext, key: IssuerKey | None, der: bytes) -> tuple[str, bytes]:
    """Answer one OCSP request for issuer ``key``: (metric status, DER response). Never raises."""
    if not der:
        return "error", unsuccessful_response(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    try:
        request = parse_ocsp_request(der)
    except MalformedOCSPRequestError as error:
        logger.debug("malformed OCSP request: %s", error.message)
        return "error", unsuccessful_response(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    registry = registry_of(context)
    state = registry.issuers.get(key) if key is not None and _served(context, key) else None
    if state is None or key is None:
        return "error", unsuccessful_response(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    if not state.ocsp_enabled:
        return "error", unsuccessful_response(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    authority = state.authority
    if authority is None:
        return "error", unsuccessful_response(ocsp.OCSPResponseStatus.TRY_LATER)
    if not issuer_matches(request, authority):
        return "error", unsuccessful_response(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    now = utc_now()
    status: CertificateStatus = registry.certificate_status(key, request.serial, now)
    try:
        body = build_ocsp_response(
            request, authority, state.responder, lambda _serial: status, now, state.ocsp_validity
        )
    except Exception:
        logger.exception(
            "cannot answer the OCSP request of issuer %s for serial %s",
            key.label,
            request.serial_hex,
            extra=_log_extra(key, state),
        )
        return "error", unsuccessful_response(ocsp.OCSPResponseStatus.INTERNAL_ERROR)
    return status.kind.value, body


register_routes(install)

__all__ = ["CLUSTER_SEGMENT", "install", "respond_ocsp"]
