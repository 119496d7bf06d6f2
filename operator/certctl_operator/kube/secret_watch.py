"""One server-side filtered watch per Secret that an issuer or a notification channel references.

The operator's own Secrets are watched through a label selector (kube.list_watch). The
Secrets users bring (a CA key pair, webhook URLs, SMTP credentials, API
tokens) carry no label the operator could select on, and watching every
Secret of the cluster would put every Secret's data into the operator's
memory. So each referenced Secret gets a watch of its own, filtered by the
API server with ``fieldSelector=metadata.name=<name>`` in its namespace:
the operator receives the events of exactly the Secrets it uses.

* Owners (an issuer, a channel) say which Secrets they reference with
  :meth:`SecretWatcher.watch`; a watch starts with the first owner of a
  Secret and stops with the last one.
* When a watched Secret is created, changed or deleted (a new
  resourceVersion, or its absence), the callback of every owner runs; at
  most one callback per owner runs at a time, and one that was asked for
  again meanwhile runs once more afterwards.
* A watch that ends (server timeout) resumes from the last resourceVersion;
  one too old to resume (410 Gone) lists again and reports a change it
  missed; API errors are retried with exponential back-off.
* Bounded: at most ``limit`` Secrets are watched, on a client of their own
  (a watch holds one connection, and must not take the connections of the
  operator's other calls). Secrets beyond the limit are not watched; their
  owners fall back to their periodic checks, and a warning says so once.

Nothing of a Secret but its name and resourceVersion is kept or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.context import OperatorContext

logger = logging.getLogger("certctl.secret-watch")

SecretLocation = tuple[str, str]
"""(namespace, name) of one Secret."""

OnChange = Callable[[], Awaitable[None]]

MAX_WATCHED_SECRETS = 256
WATCH_SECONDS = 300
"""Server-side timeout of one watch request; the watch then resumes from where it was."""
SHORT_WATCH_SECONDS = 1.0
"""A watch that ends sooner than this without any event counts as a failed attempt."""
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
_ABSENT = ""
"""The version recorded for a Secret that does not exist."""

WATCH_ERRORS = (ApiException, aiohttp.ClientError, TimeoutError, OSError, ValueError)
"""What a list or watch request may fail with and be retried after."""


def backoff_seconds(failures: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """The wait after ``failures`` consecutive failed watch attempts: doubling from ``base`` up to ``cap``."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(failures - 1, 16)))


async def list_then_watch(
    *,
    list_now: Callable[[], Awaitable[str]],
    call: Callable[..., Any],
    arguments: tuple[Any, ...],
    selectors: Mapping[str, str],
    on_event: Callable[[str, Mapping[str, Any]], None],
    watch_seconds: int,
    what: str,
    log: logging.Logger,
    version: str | None = None,
    relist_after_error: bool = True,
    on_request: Callable[[], None] = lambda: None,
) -> None:
    """Watch ``call(*arguments, **selectors)`` until cancelled, listing first whenever there is no version.

    ``list_now`` lists (handing over what it finds) and returns the list's
    resourceVersion, where the watch starts. Each ``ADDED``, ``MODIFIED`` and
    ``DELETED`` event goes to ``on_event`` with the object as sent; every
    resourceVersion seen (bookmarks included) is where the next request
    resumes once the server ends this one. 410 Gone lists again at once; other
    errors wait :func:`backoff_seconds` (logged as about ``what``), and then
    list again (``relist_after_error``) or resume. ``on_request`` is called
    for each watch request.
    """
    failures = 0
    while True:
        try:
            if version is None:
                version = await list_now()
            stream = watch.Watch(return_type="object")
            started, events = time.monotonic(), 0
            on_request()
            try:
                async for event in stream.stream(
                    call,
                    *arguments,
                    **selectors,
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=watch_seconds,
                    _request_timeout=watch_seconds + 30,
                ):
                    events += 1
                    kind = event.get("type")
                    item = event.get("raw_object") or {}
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        on_event(kind, item)
                    seen = (item.get("metadata") or {}).get("resourceVersion")
                    if seen:
                        version = str(seen)
            finally:
                stream.stop()
                await stream.close()
            # Ended as the server ends every watch (its timeout), or at once and empty: a server
            # that keeps doing the latter gets the back-off rather than a busy loop.
            if events or time.monotonic() - started >= SHORT_WATCH_SECONDS:
                failures = 0
            else:
                failures += 1
                await asyncio.sleep(backoff_seconds(failures))  # back-off before reconnecting
        except asyncio.CancelledError:
            raise
        except WATCH_ERRORS as error:
            if isinstance(error, ApiException) and error.status == 410:
                version = None  # too old to resume: list again (and compare)
                continue
            failures += 1
            if failures == 1 or failures % 10 == 0:
                log.warning(
                    "watch of %s failed (%s); retrying in %.1fs",
                    what,
                    describe_error(error),
                    backoff_seconds(failures),
                )
            if relist_after_error:
                version = None
            await asyncio.sleep(backoff_seconds(failures))  # back-off before reconnecting


def field_selector(name: str) -> str:
    """The server-side filter of the watch of Secret ``name``."""
    return f"metadata.name={name}"


@dataclass
class _Owner:
    locations: frozenset[SecretLocation]
    on_change: OnChange
    running: asyncio.Task[None] | None = None
    again: bool = False


@dataclass
class SecretWatcher:
    """The watches of referenced Secrets; see the module documentation."""

    api: Any
    """An ``ApiClient`` whose configuration the watches' own client copies."""
    limit: int = MAX_WATCHED_SECRETS
    watch_seconds: int = WATCH_SECONDS
    """Server-side timeout of each watch request (then it resumes from the last resourceVersion)."""
    watch_requests: int = field(default=0, init=False)
    """Watch requests made so far, over all Secrets (first ones, resumptions, reconnections)."""
    _owners: dict[Hashable, _Owner] = field(default_factory=dict, init=False)
    _interested: dict[SecretLocation, set[Hashable]] = field(default_factory=dict, init=False)
    _watches: dict[SecretLocation, asyncio.Task[None]] = field(default_factory=dict, init=False)
    _versions: dict[SecretLocation, str] = field(default_factory=dict, init=False)
    _client: Any = field(default=None, init=False)
    _warned_limit: bool = field(default=False, init=False)
    _closed: bool = field(default=False, init=False)

    # ------------------------------------------------------------------ owners

    def watch(self, owner: Hashable, locations: Iterable[SecretLocation], on_change: OnChange) -> None:
        """``owner`` references ``locations`` (replacing what it referenced before)."""
        if self._closed:
            return
        wanted = frozenset(locations)
        previous = self._owners.get(owner)
        if previous is not None and previous.locations == wanted:
            previous.on_change = on_change
            return
        old = previous.locations if previous is not None else frozenset()
        if not wanted:
            self._owners.pop(owner, None)
            if previous is not None and previous.running is not None:
                previous.running.cancel()
        elif previous is None:
            self._owners[owner] = _Owner(wanted, on_change)
        else:
            previous.locations, previous.on_change = wanted, on_change
        for location in old - wanted:
            owners = self._interested.get(location)
            if owners is not None:
                owners.discard(owner)
                if not owners:
                    self._stop_watch(location)
        for location in wanted - old:
            self._interested.setdefault(location, set()).add(owner)
            self._start_watch(location)

    def forget(self, owner: Hashable) -> None:
        """``owner`` is gone: it references nothing any more."""
        self.watch(owner, (), _nothing)

    def watched(self) -> set[SecretLocation]:
        """The Secrets being watched now."""
        return {location for location, task in self._watches.items() if not task.done()}

    async def close(self) -> None:
        """Stop every watch and callback and close the watches' client."""
        self._closed = True
        tasks = list(self._watches.values())
        tasks += [owner.running for owner in self._owners.values() if owner.running is not None]
        self._watches.clear()
        self._owners.clear()
        self._interested.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.close()
            self._client = None

    # ------------------------------------------------------------------ watches

    def _start_watch(self, location: SecretLocation) -> None:
        task = self._watches.get(location)
        if task is not None and not task.done():
            return
        if len(self.watched()) >= self.limit:
            if not self._warned_limit:
                logger.warning(
                    "watching %d referenced Secrets already (the limit): Secret %s/%s and any further "
                    "ones are only checked periodically",
                    self.limit,
                    *location,
                )
                self._warned_limit = True
            return
        self._watches[location] = asyncio.create_task(
            self._run(location), name=f"secret watch {location[0]}/{location[1]}"
        )

    def _stop_watch(self, location: SecretLocation) -> None:
        self._interested.pop(location, None)
        self._versions.pop(location, None)
        task = self._watches.pop(location, None)
        if task is not None:
            task.cancel()
        # A Secret that had to wait for a free watch gets the one just freed.
        for waiting in self._interested:
            if waiting not in self._watches:
                self._start_watch(waiting)
                break

    def _watch_client(self) -> Any:
        if self._client is None:
            configuration = copy.deepcopy(self.api.configuration)
            configuration.connection_pool_maxsize = self.limit + 2
            self._client = client.ApiClient(configuration=configuration)
        return self._client

    async def _run(self, location: SecretLocation) -> None:
        namespace, name = location
        core = client.CoreV1Api(self._watch_client())
        selector = field_selector(name)

        async def list_now() -> str:
            listing = await core.list_namespaced_secret(namespace, field_selector=selector)
            items = listing.items or []
            self._observe(location, items[0].metadata.resource_version if items else _ABSENT)
            return str(listing.metadata.resource_version)

        def on_event(kind: str, item: Mapping[str, Any]) -> None:
            metadata = item.get("metadata") or {}
            if metadata.get("name") == name:
                self._observe(
                    location, _ABSENT if kind == "DELETED" else str(metadata.get("resourceVersion"))
                )

        def count_request() -> None:
            self.watch_requests += 1

        await list_then_watch(
            list_now=list_now,
            call=core.list_namespaced_secret,
            arguments=(namespace,),
            selectors={"field_selector": selector},
            on_event=on_event,
            watch_seconds=self.watch_seconds,
            what=f"Secret {namespace}/{name}",
            log=logger,
            on_request=count_request,
        )

    def _observe(self, location: SecretLocation, version: str) -> None:
        """Record ``version`` (``_ABSENT``: no such Secret) and tell the owners when it is new."""
        known = self._versions.get(location)
        self._versions[location] = version
        if known == version:
            return
        # The first look counts as a change too: an owner may have read the Secret just before it
        # changed and before this watch began.
        if known is not None:
            logger.info(
                "Secret %s/%s %s",
                *location,
                "was deleted" if version == _ABSENT else ("was created" if known == _ABSENT else "changed"),
            )
        for owner in list(self._interested.get(location, ())):
            self._notify(owner)

    def _notify(self, key: Hashable) -> None:
        owner = self._owners.get(key)
        if owner is None:
            return
        if owner.running is not None and not owner.running.done():
            owner.again = True
            return
        owner.running = asyncio.create_task(self._call(key, owner), name=f"secret change of {key}")

    async def _call(self, key: Hashable, owner: _Owner) -> None:
        while True:
            owner.again = False
            try:
                await owner.on_change()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("reacting to a Secret change for %s failed: %s", key, describe_error(error))
            if not owner.again or self._owners.get(key) is not owner:
                return


async def _nothing() -> None:
    return None


def secret_watcher(context: OperatorContext) -> SecretWatcher:
    """The operator's one :class:`SecretWatcher` (created on first use, on the operator's API client)."""
    if context.secret_watcher is None:
        context.secret_watcher = SecretWatcher(context.api)
    return context.secret_watcher


async def close_secret_watcher(context: OperatorContext) -> None:
    found, context.secret_watcher = context.secret_watcher, None
    if found is not None:
        await found.close()


def describe_error(error: BaseException) -> str:
    """An API or connection error in a few words (no response body: it may quote the object)."""
    if isinstance(error, ApiException):
        return f"API error {error.status} {error.reason or ''}".strip()
    if isinstance(error, TimeoutError):
        return "timed out"
    return type(error).__name__


__all__ = [
    "MAX_WATCHED_SECRETS",
    "WATCH_ERRORS",
    "SecretLocation",
    "SecretWatcher",
    "backoff_seconds",
    "close_secret_watcher",
    "describe_error",
    "field_selector",
    "list_then_watch",
    "secret_watcher",
]
