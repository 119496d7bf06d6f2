"""Real notification receivers on 127.0.0.1 for tests.

* :class:`HTTPReceiver`: a threaded HTTP(S) server that answers from a script
  (for example "503 twice, then 200"), records every request (method, path,
  headers, body) and can hold a response until the test releases it, so
  timeouts are provoked without sleeping.
* :class:`SMTPReceiver`: an aiosmtpd server (plain, STARTTLS or implicit TLS,
  optional AUTH) that records every message and can refuse recipients or
  data with a chosen reply.
* :func:`make_self_signed` makes a throw-away certificate for 127.0.0.1.

Both servers run on their own threads, so they serve synchronous and
asynchronous tests alike; use the ``*_async`` waiters inside a running event
loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import json
import ssl
import tempfile
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOOPBACK = "127.0.0.1"
HOLD_LIMIT = 30.0
"""A held response gives up after this many seconds even if never released."""


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class SelfSigned:
    cert_pem: str
    key_pem: str

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting this certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as directory:
            cert = Path(directory) / "tls.crt"
            key = Path(directory) / "tls.key"
            cert.write_text(self.cert_pem)
            key.write_text(self.key_pem)
            context.load_cert_chain(cert, key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client-side context trusting only this certificate."""
        return ssl.create_default_context(cadata=self.cert_pem)


def make_self_signed(common_name: str = "localhost", ip: str = LOOPBACK) -> SelfSigned:
    """A fresh self-signed ECDSA P-256 certificate valid for ``ip`` and ``localhost``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(ip))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return SelfSigned(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii"),
    )


def _wait(condition: threading.Condition, predicate: Callable[[], bool], seconds: float, what: str) -> None:
    with condition:
        if not condition.wait_for(predicate, timeout=seconds):
            raise TimeoutError(f"gave up waiting for {what} after {seconds}s")


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class ScriptedResponse:
    """One answer of an :class:`HTTPReceiver`; ``hold`` waits for ``release()`` before answering."""

    status: int = 200
    body: bytes = b"ok"
    headers: Mapping[str, str] = field(default_factory=dict)
    hold: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    """Header names lower-cased."""
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 overflows when a restarted operator sends every due
    # attempt at once to a busy test process; the kernel then resets connections that a real
    # receiver (backlog in the hundreds) would have accepted.
    request_queue_size = 128
    receiver: HTTPReceiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
        )
        response = self.server.receiver._record(request)
        if response.hold:
            self.server.receiver._hold()
        try:
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
        except OSError:
            self.close_connection = True

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle


class HTTPReceiver:
    """A scripted, recording HTTP(S) server on 127.0.0.1 (a free port).

    Requests take the scripted responses in order; once the script is used up
    every request gets ``default``.
    """

    def __init__(
        self,
        responses: Iterable[ScriptedResponse] = (),
        *,
        default: ScriptedResponse | None = None,
        tls: SelfSigned | None = None,
    ) -> None:
        self._script: deque[ScriptedResponse] = deque(responses)
        self._default = default or ScriptedResponse()
        self._tls = tls
        self._condition = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._held = 0
        self._release = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def failing(
        cls,
        failures: int,
        status: int = 503,
        *,
        headers: Mapping[str, str] | None = None,
        tls: SelfSigned | None = None,
    ) -> HTTPReceiver:
        """Answer ``status`` to the first ``failures`` requests, then 200."""
        failure = ScriptedResponse(status=status, body=b"failure", headers=dict(headers or {}))
        return cls([failure] * failures, tls=tls)

    # lifecycle

    def start(self) -> Self:
        server = _Server((LOOPBACK, 0), _Handler)
        server.receiver = self
        if self._tls is not None:
            server.socket = self._tls.server_context().wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="http-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # addresses

    @property
    def port(self) -> int:
        assert self._server is not None, "the receiver is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{LOOPBACK}:{self.port}"

    def url_for(self, path: str) -> str:
        return self.url + (path if path.startswith("/") else "/" + path)

    # scripting

    def script(self, *responses: ScriptedResponse) -> None:
        """Append responses to the script."""
        with self._condition:
            self._script.extend(responses)

    def release(self) -> None:
        """Let held responses answer (and any later held ones, immediately)."""
        self._release.set()

    # observations

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._condition:
            return list(self._requests)

    def wait_for_requests(self, count: int, seconds: float = 10.0) -> list[RecordedRequest]:
        """Block until ``count`` requests have arrived (at most ``seconds``)."""
        _wait(self._condition, lambda: len(self._requests) >= count, seconds, f"{count} request(s)")
        return self.requests

    async def wait_for_requests_async(self, count: int, seconds: float = 10.0) -> list[RecordedRequest]:
        return await asyncio.to_thread(self.wait_for_requests, count, seconds)

    def wait_until_held(self, count: int = 1, seconds: float = 10.0) -> None:
        """Block until ``count`` requests are being held (at most ``seconds``)."""
        _wait(self._condition, lambda: self._held >= count, seconds, f"{count} held request(s)")

    async def wait_until_held_async(self, count: int = 1, seconds: float = 10.0) -> None:
        await asyncio.to_thread(self.wait_until_held, count, seconds)

    # called from handler threads

    def _record(self, request: RecordedRequest) -> ScriptedResponse:
        with self._condition:
            self._requests.append(request)
            response = self._script.popleft() if self._script else self._default
            self._condition.notify_all()
            return response

    def _hold(self) -> None:
        with self._condition:
            self._held += 1
            self._condition.notify_all()
        self._release.wait(HOLD_LIMIT)


# --------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    login: str | None
    tls: bool

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _PortZeroController(Controller):
    """aiosmtpd's controller, able to listen on an ephemeral port."""

    def factory(self) -> SMTP:
        # Implicit TLS without auth_require_tls is deliberate here (see SMTPReceiver).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            return cast(SMTP, super().factory())  # type: ignore[no-untyped-call]

    def _trigger_server(self) -> None:
        if self.port == 0:
            server = cast(asyncio.Server, self.server)
            self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SMTPReceiver:
    """An SMTP server on 127.0.0.1 that records what it is sent.

    ``mode``: ``plain``, ``starttls`` (STARTTLS offered and required) or
    ``tls`` (implicit TLS). ``credentials`` (login -> password) makes AUTH
    mandatory. ``refuse`` maps recipient addresses to the reply refusing
    them; ``data_reply`` replaces the reply to DATA (for example
    ``"451 4.3.0 try again later"``).
    """

    def __init__(
        self,
        *,
        mode: Literal["plain", "starttls", "tls"] = "plain",
        tls: SelfSigned | None = None,
        credentials: Mapping[str, str] | None = None,
        auth_require_tls: bool = True,
        refuse: Mapping[str, str] | None = None,
        data_reply: str | None = None,
    ) -> None:
        if mode != "plain" and tls is None:
            tls = make_self_signed()
        self.mode = mode
        self.tls = tls
        self._credentials = dict(credentials or {})
        self._refuse = {address.lower(): reply for address, reply in (refuse or {}).items()}
        self._data_reply = data_reply
        self._condition = threading.Condition()
        self._mail: list[ReceivedMail] = []
        self.auth_attempts: list[tuple[str, bool]] = []
        kwargs: dict[str, Any] = {"auth_require_tls": auth_require_tls}
        if self._credentials:
            kwargs.update(auth_required=True, authenticator=self._authenticate)
        if mode == "starttls":
            assert tls is not None
            kwargs.update(tls_context=tls.server_context(), require_starttls=True)
        if mode == "tls":
            assert tls is not None
            # aiosmtpd only recognises TLS negotiated by STARTTLS; on an implicit-TLS
            # listener every session is encrypted, so AUTH must not wait for STARTTLS.
            kwargs.update(ssl_context=tls.server_context(), auth_require_tls=False)
        self._controller = _PortZeroController(self, hostname=LOOPBACK, port=0, **kwargs)

    def start(self) -> Self:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._condition:
            return list(self._mail)

    def wait_for_messages(self, count: int, seconds: float = 10.0) -> list[ReceivedMail]:
        """Block until ``count`` messages have been accepted (at most ``seconds``)."""
        _wait(self._condition, lambda: len(self._mail) >= count, seconds, f"{count} message(s)")
        return self.messages

    # aiosmtpd hooks (run on the controller's thread)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = False
        login = ""
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            expected = self._credentials.get(login)
            ok = expected is not None and expected.encode("utf-8") == auth_data.password
        with self._condition:
            self.auth_attempts.append((login, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self._refuse.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._data_reply is not None:
            return self._data_reply
        login = None
        auth_data: object = session.auth_data  # typed None in aiosmtpd; a LoginPassword after AUTH
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
        transport = server.transport
        implicit_tls = transport is not None and transport.get_extra_info("sslcontext") is not None
        content = envelope.original_content or b""
        mail = ReceivedMail(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            content=content,
            login=login,
            tls=session.ssl is not None or implicit_tls,
        )
        with self._condition:
            self._mail.append(mail)
            self._condition.notify_all()
        return "250 Message accepted for delivery"
