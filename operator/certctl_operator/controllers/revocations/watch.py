"""The Kopf registration of Revocations: one daemon per unsettled Revocation.

Pattern (2) of the controllers, a Kopf daemon per object, rather than the
keyed WorkQueue fed by ``@kopf.on.event``: an unsettled Revocation is a
long-running loop of its own (resolve, wait with backoff, wake when its
certificate changes, record, publish) that ends for good once the status says
Revoked or Failed. Kopf starts the daemon for every Revocation whose status is
unsettled, again after a restart (the status decides, not memory), and stops
it once the settling write is seen. The steps are in :mod:`.reconcile`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from certctl_operator import API_GROUP, API_VERSION
from certctl_operator.api import Revocation
from certctl_operator.context import OperatorContext
from certctl_operator.controllers.pausing import pause
from certctl_operator.controllers.revocations.reconcile import process_revocation
from certctl_operator.policy.revocation import pending_retry_delay
from certctl_operator.status.revocations import is_unsettled
from certctl_operator.web.pki_state import registry_of


def unsettled(status: Any, **_: Any) -> bool:
    """Kopf's filter: a daemon only for a Revocation that is neither Revoked nor Failed."""
    return is_unsettled(status)


# Stopping is graceful (the loop checks ``stopped``); a cancel only comes after the backoff.
@kopf.daemon(
    API_GROUP,
    API_VERSION,
    Revocation.PLURAL,
    id="revoke",
    when=unsettled,
    cancellation_backoff=30.0,
    cancellation_timeout=10.0,
)
async def revoke(
    body: kopf.Body,
    name: str,
    namespace: str | None,
    memo: Any,
    logger: Any,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    """Look at the Revocation until it settles: at once, then with backoff or when its certificate changes."""
    context: OperatorContext = memo.context
    namespace = namespace or ""
    certificate = str(((body.get("spec") or {}).get("certificateRef") or {}).get("name", ""))
    looks = 0
    with registry_of(context).waiting_for(namespace, certificate) as wake:
        while not stopped:
            wake.clear()
            try:
                if await process_revocation(context, namespace, name, logger):
                    return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("Revocation %s/%s: %s; trying again", namespace, name, error, exc_info=True)
            await pause(stopped, pending_retry_delay(looks).total_seconds(), wake)
            looks += 1
