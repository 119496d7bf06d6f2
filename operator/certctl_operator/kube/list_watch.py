"""Objects of one kind, listed and then watched without Kopf: the operator's Secrets, ManagedCertificates.

Ten thousand certificates mean ten thousand ManagedCertificates and ten
thousand Secrets the operator wrote for them (each labelled
``certctl.io/managed-by-certificate``). Kopf would keep a per-object memory
for each (about 1.2 KB) and run its handler machinery (causes, handler
invocation, per-object state) for every event, while all the operator needs
is each event's object. A :class:`ListWatch` is a plain list-then-watch of
one kind (:func:`secrets_list_call`, :func:`custom_objects_list_call`),
filtered by a label selector or not:

* :meth:`ListWatch.start` lists every scope (one namespace, or all) page by
  page and hands each object to ``on_event`` as ``ADDED``, then watches each
  scope from the resourceVersion of its list, so no change between the two is
  missed. It returns whether every scope was listed; a scope whose list failed
  keeps trying in the background (:attr:`ListWatch.listed` says when done).
* Events (``ADDED``, ``MODIFIED``, ``DELETED``; an object that loses the
  selected label comes as ``DELETED``) go to ``on_event`` with the object as
  sent. A failure of ``on_event`` on one object is logged and the watch goes on.
* A watch that ends (the server's timeout) resumes from the last
  resourceVersion (bookmarks included). One too old to resume (410 Gone) lists
  the scope again: each listed object comes as ``MODIFIED`` and each one the
  consumer holds (``known``) but not listed any more as ``DELETED``. API
  errors are retried with exponential back-off. The loop is
  :func:`~certctl_operator.kube.secret_watch.list_then_watch`, shared with
  the watches of single referenced Secrets.
* The watches use a client of their own: each holds a connection for as long
  as it runs and must not take those of the operator's other calls. It is a
  :class:`~certctl_operator.kube.client.TimeoutApiClient` without a rate
  limit: a list request has a deadline, and an event as large as an object
  may be still fits its read buffer.

Nothing of an object but its namespace and name is logged (a Secret holds a
private key).
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

from certctl_operator.kube.client import DEFAULT_REQUEST_TIMEOUT, TimeoutApiClient
from certctl_operator.kube.secret_watch import WATCH_ERRORS, WATCH_SECONDS, describe_error, list_then_watch
from certctl_operator.kube.secrets import LIST_PAGE, list_json

logger = logging.getLogger("certctl.list-watch")

OnEvent = Callable[[str, Mapping[str, Any]], None]
"""Called with the event type and the object as the API server sent it."""

Known = Callable[[str | None], Iterable[tuple[str, str]]]
"""The (namespace, name) of every object of a scope the consumer holds: a list that
replaces a watch too old to resume reports those it no longer finds as deleted."""

ListCall = Callable[[Any, str | None], tuple[Callable[..., Any], tuple[Any, ...]]]
"""Given an ``ApiClient`` and a scope (a namespace; None: all), the list call of the kind and its
positional arguments; the same call with ``watch=True`` watches."""


def secrets_list_call(api: Any, scope: str | None) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """The :data:`ListCall` of Secrets."""
    core = client.CoreV1Api(api)
    if scope is None:
        return core.list_secret_for_all_namespaces, ()
    return core.list_namespaced_secret, (scope,)


def custom_objects_list_call(group: str, version: str, plural: str) -> ListCall:
    """The :data:`ListCall` of the namespaced custom resource ``plural`` of ``group``/``version``."""

    def list_call(api: Any, scope: str | None) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        objects = client.CustomObjectsApi(api)
        if scope is None:
            return objects.list_cluster_custom_object, (group, version, plural)
        return objects.list_namespaced_custom_object, (group, version, scope, plural)

    return list_call


def _location(item: Mapping[str, Any]) -> tuple[str, str]:
    metadata = item.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


@dataclass
class ListWatch:
    """What ``list_call`` lists (with ``label_selector``) in ``scopes`` (None: all), fed to ``on_event``."""

    api: Any
    """An ``ApiClient`` whose configuration the watches' own client copies."""
    list_call: ListCall
    scopes: tuple[str | None, ...]
    on_event: OnEvent
    known: Known
    label_selector: str | None = None
    kind: str = "object"
    """What log lines call one object (``Secret``)."""
    what: str = "objects"
    """What log lines call the objects watched (``the operator's Secrets``)."""
    watch_seconds: int = WATCH_SECONDS
    page_size: int = LIST_PAGE
    """Objects per list request."""
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
                    "listing %s failed (%s); trying again", self._what(scope), describe_error(error)
                )
                listed = False
            self._tasks.append(
                asyncio.create_task(self._run(scope, version), name=f"watch of {self._what(scope)}")
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

    def _what(self, scope: str | None) -> str:
        return self.what + (f" in {scope}" if scope else "")

    def _selectors(self) -> dict[str, str]:
        return {} if self.label_selector is None else {"label_selector": self.label_selector}

    def _call(self, scope: str | None) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        if self._client is None:
            configuration = copy.deepcopy(self.api.configuration)
            configuration.connection_pool_maxsize = len(self.scopes) + 2
            # Its read buffer holds the largest object's event; requests without a deadline of their
            # own (the lists) get the operator's default.
            self._client = TimeoutApiClient(configuration, DEFAULT_REQUEST_TIMEOUT)
        return self.list_call(self._client, scope)

    async def _list(self, scope: str | None, *, initial: bool) -> str:
        """List the scope; hand over what it holds (and what it no longer holds); its resourceVersion."""
        call, arguments = self._call(scope)
        listed: set[tuple[str, str]] = set()
        version = ""
        async for item, page_version in list_json(
            call, *arguments, limit=self.page_size, **self._selectors()
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

    def _hand_over(self, event_type: str, item: Mapping[str, Any]) -> None:
        """``on_event``, whose failure on one object is logged and does not end the watch."""
        try:
            self.on_event(event_type, item)
        except Exception as error:
            # Named, never shown: a Secret holds a private key.
            logger.error(
                "handling %s of %s %s/%s failed: %s",
                event_type,
                self.kind,
                *_location(item),
                type(error).__name__,
            )

    async def _run(self, scope: str | None, version: str | None) -> None:
        call, arguments = self._call(scope)

        def count_request() -> None:
            self.watch_requests += 1

        await list_then_watch(
            list_now=lambda: self._list(scope, initial=False),
            call=call,
            arguments=arguments,
            selectors=self._selectors(),
            on_event=self._hand_over,
            watch_seconds=self.watch_seconds,
            what=self._what(scope),
            log=logger,
            version=version,
            # A watch that failed resumes where it was: listing every object again is not needed.
            relist_after_error=False,
            on_request=count_request,
        )


__all__ = ["Known", "ListCall", "ListWatch", "OnEvent", "custom_objects_list_call", "secrets_list_call"]
