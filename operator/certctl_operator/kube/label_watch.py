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
  exponential back-off. The loop is
  :func:`~certctl_operator.kube.secret_watch.list_then_watch`, shared with
  the watches of single referenced Secrets.
* The watches use a client of their own: each holds a connection for as long
  as it runs and must not take those of the operator's other calls.

Nothing of a Secret is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client

from certctl_operator.kube.secret_watch import WATCH_ERRORS, WATCH_SECONDS, describe_error, list_then_watch
from certctl_operator.kube.secrets import LIST_PAGE, list_json

logger = logging.getLogger("certctl.label-watch")

OnEvent = Callable[[str, Mapping[str, Any]], None]
"""Called with the event type and the Secret as the API server sent it."""

Known = Callable[[str | None], Iterable[tuple[str, str]]]
"""The (namespace, name) of every Secret of a scope the consumer holds: a list that
replaces a watch too old to resume reports those it no longer finds as deleted."""


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
            except WATCH_ERRORS as error:
                logger.warning(
                    "listing the operator's Secrets failed (%s); trying again", describe_error(error)
                )
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
            )

    async def _run(self, scope: str | None, version: str | None) -> None:
        call, arguments = self._list_call(scope)

        def count_request() -> None:
            self.watch_requests += 1

        await list_then_watch(
            list_now=lambda: self._list(scope, initial=False),
            call=call,
            arguments=arguments,
            selectors={"label_selector": self.label_selector},
            on_event=self._hand_over,
            watch_seconds=self.watch_seconds,
            what="the operator's Secrets" + (f" in {scope}" if scope else ""),
            log=logger,
            version=version,
            # A watch that failed resumes where it was: listing every Secret again is not needed.
            relist_after_error=False,
            on_request=count_request,
        )


__all__ = ["LabelWatch", "OnEvent"]
