"""A TLS reverse proxy on 127.0.0.1 in front of the API server that injects faults.

The operator is given a kubeconfig that points at the proxy (its own
throw-away serving certificate, a dummy bearer token); the proxy forwards
every request to the real kube-apiserver as the control plane's admin (client
certificate), streaming responses so watches work through it.

While a fault is switched on, the proxy answers a share of requests itself:

* ``429 Too Many Requests`` with ``Retry-After`` (API priority and fairness
  pushing back), or ``500`` / ``503`` (an etcd or API server in trouble);
* adds latency to every request that is not a watch (a slow etcd);
* or it holds requests the test picks (``stall``) without ever answering, the
  way a half-dead connection behaves, until the client gives up.

It records the arrival time, method and path of every request, so a test can
state the operator's request rate during a fault window.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp import web

from certctl_operator.dev import pki
from certctl_operator.dev.controlplane import ControlPlane
from tests.support.receivers import LOOPBACK, make_self_signed

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
    "content-length",
}


@dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it."""

    at: float
    method: str
    path: str
    watch: bool
    injected: int | None
    """The status the proxy answered itself, or None when it was forwarded."""


@dataclass
class Faults:
    """What the proxy does to requests while switched on."""

    share: float = 0.0
    """Fraction of requests answered by the proxy with one of ``statuses``."""
    statuses: tuple[int, ...] = (429, 500, 503)
    retry_after: int = 1
    latency: float = 0.0
    """Seconds added before every non-watch request is answered or forwarded (a slow etcd)."""
    stall: Callable[[str, str], bool] | None = None
    """``stall(method, path)``: hold this request unanswered until the client gives up."""


class FaultProxy:
    """The proxy, served from its own thread and event loop."""

    def __init__(self, plane: ControlPlane, seed: int = 12) -> None:
        self._plane = plane
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._faults = Faults()
        self._tls = make_self_signed()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stalled: set[asyncio.Future[None]] = set()
        self.port = 0
        self.seen: list[Seen] = []

    # ------------------------------------------------------------------ control

    def faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults

    def heal(self) -> None:
        """Stop injecting; held requests stay held until their clients give up."""
        self.faults(Faults())

    def requests_between(self, start: float, end: float, *, watches: bool = False) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if start <= s.at < end and (watches or not s.watch)]

    def busiest(self, start: float, end: float, top: int = 8) -> list[tuple[str, int]]:
        """The most requested (method, path without query) in [start, end), for reports."""
        counts = Counter(f"{s.method} {s.path.split('?')[0]}" for s in self.requests_between(start, end))
        return counts.most_common(top)

    def peak_rate(self, start: float, end: float, window: float = 1.0) -> float:
        """Highest count of non-watch requests in any ``window``-second slice of [start, end)."""
        times = sorted(s.at for s in self.requests_between(start, end))
        peak, low = 0, 0
        for high, moment in enumerate(times):
            while moment - times[low] >= window:
                low += 1
            peak = max(peak, high - low + 1)
        return peak / window

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig pointing at the proxy."""
        text = pki.render_kubeconfig(
            f"https://{LOOPBACK}:{self.port}",
            self._tls.cert_pem.encode(),
            user="through-the-proxy",
            token="not-a-real-token",
        )
        path.write_text(text)
        return path

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    async def _start(self) -> None:
        upstream = ssl.create_default_context(cafile=str(self._plane.ca_file))
        upstream.load_cert_chain(self._plane.admin_cert_file, self._plane.admin_key_file)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=upstream, limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, 0, ssl_context=self._tls.server_context())
        await site.start()
        server = site._server  # the port the system chose for port 0
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _stop(self) -> None:
        for future in self._stalled:
            future.cancel()
        # Closing the upstream session first ends the streamed watches, so no handler is left waiting.
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ proxying

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch") in ("true", "1")
        with self._lock:
            faults = self._faults
            roll = self._random.random()
            status = self._random.choice(faults.statuses) if roll < faults.share else None
            stall = faults.stall is not None and faults.stall(request.method, request.path)
            self.seen.append(Seen(time.time(), request.method, request.path_qs, watch, status))
        if faults.latency and not watch:
            await asyncio.sleep(faults.latency)  # the injected slowness itself
        if stall:
            held: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._stalled.add(held)
            try:
                await held  # never set: cancelled when the client disconnects or the proxy stops
            finally:
                self._stalled.discard(held)
        if status is not None:
            headers = {"Content-Type": "application/json"}
            if status == 429:
                headers["Retry-After"] = str(faults.retry_after)
            body = (
                '{"kind":"Status","apiVersion":"v1","status":"Failure",'
                f'"message":"injected by the fault proxy","code":{status}}}'
            )
            return web.Response(status=status, text=body, headers=headers)
        return await self._forward(request)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        url = f"{self._plane.server}{request.path_qs}"
        async with self._session.request(
            request.method, url, headers=headers, data=body or None, allow_redirects=False
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for key, value in upstream.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    response.headers[key] = value
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (aiohttp.ClientError, ConnectionError):
                # A watch cut off by either side (the proxy stopping, the client leaving).
                request.transport and request.transport.close()
            return response
