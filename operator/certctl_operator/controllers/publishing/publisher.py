"""Publishing what relying parties see for each CA issuer: its CRL and its OCSP responder.

Pattern (2) of the controllers, a Kopf daemon per object, rather than the
keyed WorkQueue fed by ``@kopf.on.event``: each CA issuer (Issuers and
ClusterIssuers with ``spec.ca``; other issuers get no task) has a loop of its
own that wakes every ``crl_refresh_check_interval`` whatever happens to the
object, and Kopf starts and stops it with the issuer becoming or ceasing to be
a CA issuer. Each look loads the CA key pair, starts the next CRL when the
issuer's ``crl.refreshInterval`` has passed (or the CA changed, or entries
expired), publishes it to the ConfigMap and to the HTTP endpoint, moves the
journal of new revocations to the issuer's revocation-list ConfigMaps, and
keeps the delegated OCSP responder certificate valid. :func:`publish_state`
is also what a Revocation calls to publish the CRL that lists it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import kopf
from pydantic import ValidationError

from certctl_operator import API_GROUP, API_VERSION, metrics
from certctl_operator.api import ClusterIssuer, IssuerKind
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.pausing import pause
from certctl_operator.durations import parse_duration
from certctl_operator.kube.crl_publisher import (
    archive_for,
    ensure_ocsp_responder,
    load_issued,
    publish_crl,
    read_published_crl,
)
from certctl_operator.kube.revocation_store import (
    ArchiveFull,
    ShardUnreadable,
    advance_crl,
    archive_journal,
    crl_timing,
    get_issuer,
    issuer_class,
    load_ca,
    prune_archive,
    report_unreadable,
)
from certctl_operator.pki import SigningAuthority, fingerprint_sha256
from certctl_operator.policy.clock import utc_now
from certctl_operator.policy.publishing import (
    responder_matches,
    state_of,
)
from certctl_operator.policy.revocation import CRLState, IssuerKey, new_crl_due, unlisted
from certctl_operator.web import pki_endpoints  # noqa: F401  (registers the CRL and OCSP routes)
from certctl_operator.web.pki_state import PKIRegistry, PublishedCRL, registry_of

MAX_INITIAL_DELAY = 5.0
STOP_BACKOFF = 2.0
"""Seconds a stopped publisher (its issuer deleted, or no CA issuer any more) gets to finish its
look before it is cancelled. Kopf removes the issuer's finalizer only once the daemon is gone and
looks again only after this back-off, so it bounds how long deleting a CA issuer takes; every step
of a look is safe to cut short."""


def forget_issuer(registry: PKIRegistry, key: IssuerKey) -> None:
    """Stop serving the CRL and OCSP answers of ``key`` and drop its CRL metric series."""
    registry.forget_issuer(key)
    for gauge in (metrics.crl_number, metrics.crl_next_update_timestamp):
        with contextlib.suppress(KeyError):
            gauge.remove(key.label)


def record_published(key: IssuerKey, registry: PKIRegistry, published: PublishedCRL) -> None:
    """Serve ``published`` and export its number and nextUpdate."""
    registry.set_crl(key, published)
    served = registry.issuer(key).crl
    if served is None:
        return
    metrics.crl_number.labels(issuer=key.label).set(served.number)
    if served.next_update is not None:
        metrics.crl_next_update_timestamp.labels(issuer=key.label).set(served.next_update.timestamp())


async def publish_state(
    context: OperatorContext,
    key: IssuerKey,
    issuer_body: dict[str, Any],
    authority: SigningAuthority,
    crl_state: CRLState | None,
) -> None:
    """Publish ``crl_state`` (journal entries; the archive is added here) unless that number is served."""
    registry = registry_of(context)
    state = registry.issuer(key)
    if crl_state is None:
        return
    if state.crl is not None and state.crl.number >= crl_state.number:
        return
    archived = await archive_for(context.api, context.settings, key, issuer_body, state)
    grace = crl_timing(issuer_class(key).from_body(issuer_body))[1]
    published = await publish_crl(
        context.api,
        context.settings,
        key,
        issuer_body,
        authority,
        crl_state.with_archive(archived, grace),
        executor=context.crypto_pool,
    )
    if published is not None:
        record_published(key, registry, published)


async def move_journal(context: OperatorContext, key: IssuerKey) -> None:
    """Move the issuer's journal to its archive, keeping the in-memory copy in step."""
    state = registry_of(context).issuer(key)
    moved = await archive_journal(context.api, context.settings, key)
    if moved is not None:
        state.add_archived(*moved)


async def refresh_issuer(context: OperatorContext, key: IssuerKey, logger: logging.Logger | Any) -> None:
    """One look at a CA issuer: CA key pair, CRL (new when due, published) and OCSP responder."""
    api, settings = context.api, context.settings
    registry = registry_of(context)
    body = await get_issuer(api, key)
    if body is None:
        return
    try:
        issuer = issuer_class(key).from_body(body)
    except ValidationError:
        # A spec stored under an older, looser CRD: its Ready condition says InvalidSpec
        # (the issuer handler writes it); nothing is signed for it until it is corrected.
        logger.debug("issuer %s has an invalid spec; no CRL or OCSP", key.label)
        return
    state = registry.issuer(key)
    state.uid = issuer.metadata.uid
    state.ocsp_enabled = issuer.spec.ocsp_settings.enabled
    state.ocsp_validity = parse_duration(issuer.spec.ocsp_settings.response_validity)
    ca = await load_ca(
        api, settings, key, issuer, utc_now(), cached=(state.authority_version, state.authority)
    )
    if ca.authority is None:
        if state.authority is not None or state.authority_version != ca.version:
            logger.warning("issuer %s cannot sign CRLs or OCSP responses: %s", key.label, ca.problem)
        state.authority, state.authority_version = None, ca.version
        return
    authority = ca.authority
    if state.authority_version != ca.version:
        logger.info(
            "issuer %s: CA key pair loaded (serial %x)", key.label, authority.certificate.serial_number
        )
        if state.responder is not None and not responder_matches(state.responder, authority):
            state.responder = None  # the CA signs until its new responder exists

    try:
        await publish_under_lock(context, key, body, authority, ca.version, logger)
    except ShardUnreadable as error:
        # Not rewritten (that would lose what it holds); the OCSP responder below is still kept valid.
        await report_unreadable(
            api,
            body,
            error,
            "revocations of this issuer wait and its CRL is not published until the ConfigMap is repaired",
        )

    if state.ocsp_enabled:
        responder = await ensure_ocsp_responder(
            api, settings, key, body, authority, utc_now(), context.crypto_pool, known=state.responder
        )
        state.responder = responder.responder


async def publish_under_lock(
    context: OperatorContext,
    key: IssuerKey,
    body: dict[str, Any],
    authority: SigningAuthority,
    ca_version: str | None,
    logger: logging.Logger | Any,
) -> None:
    """The CRL part of a look: archive and issued serials read, the next CRL started and published."""
    api, settings = context.api, context.settings
    registry = registry_of(context)
    state = registry.issuer(key)
    async with state.lock:
        if state.crl is None:
            published = await read_published_crl(api, settings, key)
            if published is not None:
                record_published(key, registry, published)
        fingerprint = fingerprint_sha256(authority.certificate)

        # Read (or reread) the archive before the journal that goes with it is taken in.
        await archive_for(api, settings, key, body, state)
        await load_issued(api, settings, registry, key, body)

        def due(current: Any) -> bool:
            served = state.crl
            return new_crl_due(
                current.status,
                utc_now(),
                crl_timing(current)[1],
                published=(served.number, served.ca_fingerprint) if served is not None else None,
                ca_fingerprint=fingerprint,
                archived=state.archive.values(),
            )

        body, crl_state = await advance_crl(api, key, due, utc_now, floor=lambda: state.published_number)
        issuer = issuer_class(key).from_body(body)
        registry.update_revoked(key, issuer.status)
        # OCSP answers only once the revocation list that goes with this CA is known.
        state.authority, state.authority_version = authority, ca_version
        if crl_state is not None:
            logger.info("issuer %s: started CRL number %d", key.label, crl_state.number)
        await publish_state(context, key, body, authority, crl_state or state_of(issuer.status))
        # Judged against the CRL just published: no later one lists what it leaves out.
        published_at, grace = issuer.status.crl_this_update, crl_timing(issuer)[1]
        gone = unlisted(state.archive.values(), published_at, grace)
        if gone and published_at is not None:
            for serial in await prune_archive(api, settings, key, gone, published_at, grace):
                state.archive.pop(serial, None)
        if issuer.status.revoked_certificates:
            try:
                await move_journal(context, key)
            except ArchiveFull as error:
                # The responder below must still be kept valid: this look goes on.
                logger.warning(
                    "issuer %s: %s; new revocations stay in its status until entries expire", key.label, error
                )


async def publishing_loop(
    context: OperatorContext, key: IssuerKey, logger: Any, stopped: kopf.DaemonStopped
) -> None:
    """Look at the CA issuer ``key`` every check interval until its daemon is stopped."""
    interval = context.settings.crl_refresh_check_interval.total_seconds()
    try:
        # Spread the issuers of a fresh start apart.
        await pause(stopped, random.uniform(0, min(interval, MAX_INITIAL_DELAY)))  # noqa: S311
        failures = 0
        while not stopped:
            try:
                await refresh_issuer(context, key, logger)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    logger.warning(
                        "issuer %s: publishing failed (%s); retrying", key.label, error, exc_info=True
                    )
            await pause(stopped, interval)
    finally:
        # Stopped: the issuer is gone or no CA issuer any more (or the operator stops). A refresh
        # that was under way when its watch event removed the CRL series may have set them again.
        forget_issuer(registry_of(context), key)


def is_ca(spec: Any, **_: Any) -> bool:
    """Kopf's filter: a publishing daemon only for an issuer with ``spec.ca``."""
    return bool(spec.get("ca"))


@kopf.daemon(
    API_GROUP,
    API_VERSION,
    "issuers",
    id="crl-publisher",
    when=is_ca,
    cancellation_backoff=STOP_BACKOFF,
    cancellation_timeout=10.0,
)
async def issuer_publisher(
    name: str, namespace: str | None, memo: Any, logger: Any, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """The publishing daemon of one namespaced CA Issuer."""
    await publishing_loop(memo.context, IssuerKey(IssuerKind.ISSUER, name, namespace), logger, stopped)


@kopf.daemon(
    API_GROUP,
    API_VERSION,
    ClusterIssuer.PLURAL,
    id="crl-publisher",
    when=is_ca,
    cancellation_backoff=STOP_BACKOFF,
    cancellation_timeout=10.0,
)
async def cluster_issuer_publisher(
    name: str, memo: Any, logger: Any, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """The publishing daemon of one CA ClusterIssuer."""
    await publishing_loop(memo.context, IssuerKey(IssuerKind.CLUSTER_ISSUER, name), logger, stopped)
