"""Connections that obey the egress policy at the moment they are made.

The host name is resolved here, every address is judged by
:class:`~certctl_operator.notify.egress.EgressPolicy`, and the connection
goes to a permitted *address*, never to the name again: a second lookup
could answer differently (DNS rebinding). TLS still verifies the server
against the host name of the URL, which is what the certificate names.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable

import httpcore
import httpx

from certctl_operator.notify.egress import (
    EGRESS_REFUSES,
    EgressPolicy,
    EgressRefused,
    IPAddress,
    literal_refusal_text,
    parse_address,
    resolved_refusal_text,
)

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
"""Host name and port -> the addresses to try, in order."""


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` resolves to now (the system resolver, TCP), without duplicates."""
    literal = parse_address(host)
    if literal is not None:
        return [literal]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: dict[IPAddress, None] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        address = parse_address(str(sockaddr[0]))
        if address is not None:
            found[address] = None
    return list(found)


async def permitted_addresses(
    policy: EgressPolicy, resolver: Resolver, host: str, port: int
) -> list[IPAddress]:
    """The addresses of ``host`` the policy permits; EgressRefused when there is none."""
    addresses = await resolver(host, port)
    permitted = [address for address in addresses if policy.permits(address)]
    if permitted:
        return permitted
    if not addresses:
        raise OSError(f"{host} resolved to no address")
    refusal = policy.refusal(addresses[0]) or ""
    if parse_address(host) is None:
        raise EgressRefused(resolved_refusal_text(host, refusal), port)
    raise EgressRefused(literal_refusal_text(refusal), port)


class EgressCheckingBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, checks, then connects to an address."""

    def __init__(
        self,
        policy: EgressPolicy,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await permitted_addresses(self._policy, self._resolver, host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as error:
            raise httpcore.ConnectError(str(error)) from error
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last = error
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused(f"{EGRESS_REFUSES} Unix sockets", 0)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class EgressCheckingTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, with its connection pool on an :class:`EgressCheckingBackend`."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(verify=verify, limits=limits)
        ssl_context = (
            verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        )
        # The pool httpx built is replaced by the same pool on the checking backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=EgressCheckingBackend(policy, resolver),
        )


async def connect_checked(
    policy: EgressPolicy,
    host: str,
    port: int,
    resolver: Resolver = system_resolver,
) -> socket.socket:
    """A TCP socket connected to a permitted address of ``host`` (for SMTP); EgressRefused otherwise.

    The caller bounds the time (``asyncio.timeout``).
    """
    loop = asyncio.get_running_loop()
    addresses = await permitted_addresses(policy, resolver, host, port)
    last: OSError | None = None
    for address in addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (str(address), port))
        except OSError as error:
            sock.close()
            last = error
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    assert last is not None
    raise last
