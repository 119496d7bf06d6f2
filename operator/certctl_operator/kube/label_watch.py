"""The operator's own Secrets, listed and then watched through a label selector, without Kopf.

Every Secret the operator writes for a certificate carries
``certctl.io/managed-by-certificate``. Ten thousand certificates mean ten
thousand such Secrets; Kopf would keep a per-object memory for each (about
1.2 KB) and run its handler machinery for every event, while all the
operator needs is each event's object. This watch is a plain list-then-watch:

* :meth:`LabelWatch.start` lists every scope (one namespace, or all) page by
  page and hands each Secret to ``on_event`` as ``ADDED``, then watches each
  scope from the resourceVersion of its list, so no change between the two is
  missed. It returns whether every scope was listed; a scope whose list failed
  keeps trying in the background (:attr:`LabelWatch.listed` says when done).
* Events (``ADDED``, ``MODIFIED``, ``DELETED``; a Secret that loses the label
  comes as ``DELETED``) go to ``on_event`` with the object as sent.
* A watch that ends (the server's timeout) resumes from the last
  resourceVersion (bookmarks included). One too old to resume (410 Gone) lists
  the scope again: each listed Secret comes as ``MODIFIED`` and each one seen
  before but not listed any more as ``DELETED``. API errors are retried with
  exponential back-off (:func:`~certctl_operator.kube.secret_watch.backoff_seconds`).
* The watches use a client of their own: each holds a connection for as long
  as it runs and must not take those of the operator's other calls.

Nothing of a Secret is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from certctl_operator.kube.secret_watch import SHORT_WATCH_SECONDS, WATCH_SECONDS, backoff_seconds
from certctl_operator.kube.secrets import LIST_PAGE, list_json

logger = logging.getLogger("certctl.label-watch")

OnEvent = Callable[[str, Mapping[str, Any]], None]
"""Called with the event type and the Secret as the API server sent it."""

Known = Callable[[str | None], Iterable[tuple[str, str]]]
"""The (namespace, name) of every Secret of a scope the consumer holds: a list that
replaces a watch too old to resume reports those it no longer finds as deleted."""

_ERRORS = (ApiException, aiohttp.ClientError, TimeoutError, OSError, ValueError)


def _location(item: Mapping[str, Any]) -> tuple[str, str]:
    metadata = item.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


@dataclass
class LabelWatch:
    """Secrets with ``label_selector`` in ``scopes`` (namespaces; None: all), fed to ``on_event``."""

    api: Any
    """An ``ApiClient`` whose configuration the watches' own client copies."""
    label_selector: str
    scopes: tuple[str | None, ...]
    on_event: OnEvent
    known: Known
    watch_seconds: int = WATCH_SECONDS
    watch_requests: int = field(default=0, init=False)
    """Watch requests made so far, over all scopes (first ones, resumptions, reconnections)."""
    lists: int = field(default=0, init=False)
    """Complete listings made so far, over all scopes."""
    _listed: set[str | None] = field(default_factory=set, init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _client: Any = field(default=None, init=False)

    @property
    def listed(self) -> bool:
        """Whether every scope was listed (at start, or since by a scope's retry)."""
        return all(scope in self._listed for scope in self.scopes)

    async def start(self) -> bool:
        """List every scope and start watching each; True when every list succeeded."""
        listed = True
        for scope in self.scopes:
            version: str | None = None
            try:
                version = await self._list(scope, initial=True)
            except asyncio.CancelledError:
                raise
            except _ERRORS as error:
                logger.warning("listing the operator's Secrets failed (%s); trying again", _describe(error))
                listed = False
            self._tasks.append(
                asyncio.create_task(self._run(scope, version), name=f"label watch of {scope or 'all'}")
            )
        return listed

    async def stop(self) -> None:
        """Stop every watch and close the watches' client."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _core(self) -> Any:
        if self._client is None:
            configuration = copy.deepcopy(self.api.configuration)
            configuration.connection_pool_maxsize = len(self.scopes) + 2
            self._client = client.ApiClient(configuration=configuration)
        return client.CoreV1Api(self._client)

    def _list_call(self, scope: str | None) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        core = self._core()
        if scope is None:
            return core.list_secret_for_all_namespaces, ()
        return core.list_namespaced_secret, (scope,)

    async def _list(self, scope: str | None, *, initial: bool) -> str:
        """List the scope; hand over what it holds (and what it no longer holds); its resourceVersion."""
        call, arguments = self._list_call(scope)
        listed: set[tuple[str, str]] = set()
        version = ""
        async for item, page_version in list_json(
            call, *arguments, label_selector=self.label_selector, limit=LIST_PAGE
        ):
            if item is not None:
                listed.add(_location(item))
                self._hand_over("ADDED" if initial else "MODIFIED", item)
            version = page_version
        if not initial:
            for namespace, name in set(self.known(scope)) - listed:
                self._hand_over("DELETED", {"metadata": {"namespace": namespace, "name": name}})
        self._listed.add(scope)
        self.lists += 1
        return version

    def _hand_over(self, kind: str, item: Mapping[str, Any]) -> None:
        """``on_event``, whose failure on one Secret is logged and does not end the watch."""
        try:
            self.on_event(kind, item)
        except Exception as error:
            # Named, never shown: the object holds a private key.
            logger.error(
                "handling %s of Secret %s/%s failed: %s",
                kind,
                *_location(item),
                type(error).__name__,
                exc_info=False,
            )

    async def _run(self, scope: str | None, version: str | None) -> None:
        failures = 0
        while True:
            try:
                if version is None:
                    version = await self._list(scope, initial=False)
                    failures = 0
                call, arguments = self._list_call(scope)
                stream = watch.Watch(return_type="object")
                started, events = time.monotonic(), 0
                self.watch_requests += 1
                try:
                    async for event in stream.stream(
                        call,
                        *arguments,
                        label_selector=self.label_selector,
                        resource_version=version,
                        allow_watch_bookmarks=True,
                        timeout_seconds=self.watch_seconds,
                        _request_timeout=self.watch_seconds + 30,
                    ):
                        events += 1
                        kind = event.get("type")
                        item = event.get("raw_object") or {}
                        resource_version = (item.get("metadata") or {}).get("resourceVersion")
                        if kind in ("ADDED", "MODIFIED", "DELETED"):
                            self._hand_over(kind, item)
                        if resource_version:
                            version = str(resource_version)
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
            except _ERRORS as error:
                if isinstance(error, ApiException) and error.status == 410:
                    version = None  # too old to resume: list again, and compare
                    continue
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    logger.warning(
                        "watch of the operator's Secrets%s failed (%s); retrying in %.1fs",
                        f" in {scope}" if scope else "",
                        _describe(error),
                        backoff_seconds(failures),
                    )
                await asyncio.sleep(backoff_seconds(failures))  # back-off before reconnecting


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return f"API error {error.status} {error.reason or ''}".strip()
    if isinstance(error, TimeoutError):
        return "timed out"
    return type(error).__name__


__all__ = ["LabelWatch", "OnEvent"]
