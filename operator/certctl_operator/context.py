"""What every handler shares: settings, the API client, metrics, pools.

Kopf passes this object to handlers as ``memo``. It is created once by
``certctl-operator run`` and filled in by the start-up handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from certctl_operator.notify.senders import HttpClientPool
from certctl_operator.pki.key_pool import KeyGenerationPool, key_generation_pool
from certctl_operator.settings import Settings

if TYPE_CHECKING:
    # Only for annotations: these modules take the context as an argument themselves.
    from aiohttp.web import AppRunner

    from certctl_operator.controllers.issuance import IssuanceRuntime
    from certctl_operator.controllers.notifications.runtime import NotificationRuntime
    from certctl_operator.kube.secret_watch import SecretWatcher
    from certctl_operator.web.pki_state import PKIRegistry
    from certctl_operator.web.standby import Standby

    Readiness = Callable[[], tuple[bool, str]]


@dataclass
class OperatorContext:
    settings: Settings
    # kubernetes_asyncio.client.ApiClient, created at start-up (typed loosely:
    # the client library ships no type information).
    api: Any = None
    # Thread pool for CPU-heavy crypto (parsing keys, signing): the event loop
    # must never wait on it.
    crypto_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="certctl-crypto")
    )
    # Worker processes for RSA key generation, one per core (started on first use).
    key_pool: KeyGenerationPool = field(default_factory=key_generation_pool)
    # Shared HTTP connection pools of the notification senders, opened at
    # start-up by the notification handlers and closed at clean-up.
    http_pool: HttpClientPool | None = None
    # Gives the C heap's freed pages back after bursts (controllers/lifecycle.py, heap.py).
    heap_trim_task: asyncio.Task[None] | None = None
    ready: bool = False
    # What /readyz answers while not ready ("starting", "stopping"). A standby
    # replica (leader election) answers by its own check, see web/server.py.
    not_ready_reason: str = "starting"
    # The HTTP server (health, metrics, CRL, OCSP, ACME HTTP-01); started by the
    # leader-election runner for a standby, or at start-up.
    http_runner: AppRunner | None = None
    # While this replica stands by (leader election): what /readyz answers instead of
    # ``ready``, and the standby's read-through CRL answers.
    standby_readiness: Readiness | None = None
    standby: Standby | None = None
    # What the CRL and OCSP endpoints serve, kept by the publishing controllers.
    pki_registry: PKIRegistry | None = None
    # The filtered watches of Secrets that issuers and channels reference.
    secret_watcher: SecretWatcher | None = None
    # The controllers' runtimes (queues, caches), created by their start-up handlers.
    issuance_runtime: IssuanceRuntime | None = None
    notification_runtime: NotificationRuntime | None = None
    # Token -> key authorization of the ACME HTTP-01 challenges being validated now.
    http01_answers: dict[str, str] = field(default_factory=dict)
