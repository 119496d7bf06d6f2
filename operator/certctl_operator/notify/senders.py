"""Deliver one :class:`~certctl_operator.notify.payload.Message` to one channel.

Every sender returns a :class:`DeliveryResult` and never raises for a failed
delivery: the outcome is classified into a
:class:`~certctl_operator.policy.notification.DeliveryError` that the state
machine consumes.

Classification:

* HTTP 2xx: delivered;
* timeouts (connect, read, or the channel's total timeout), HTTP 408:
  ``Timeout``; connection refused/reset, name resolution: ``ConnectionError``;
  HTTP 5xx: ``ServerError``; HTTP 429: ``RateLimited`` (``Retry-After`` is
  honoured by the retry policy, up to its cap): all transient;
* any other HTTP status (redirects are not followed, so a 3xx lands here),
  including 4xx: ``ClientError``; TLS verification: ``TLSError``; a bad URL,
  CA bundle or email header: ``InvalidConfiguration``. These still follow the
  retry budget.

Error messages are short and carry no secrets: no request headers, no
passwords, no URL paths or query strings (Slack and Teams webhook URLs are
credentials in themselves), only ``host:port``. As a second line of defence
every message is scrubbed of the channel's secret values before it leaves
this module.

HTTP senders use an injected :class:`httpx.AsyncClient` so connections are
pooled across deliveries; :class:`HttpClientPool` keeps one client for the
system trust store and one per distinct CA bundle, because httpx fixes TLS
verification per client.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr, parsedate_to_datetime
from enum import StrEnum
from http import HTTPStatus
from types import TracebackType
from typing import TypeAlias
from urllib.parse import parse_qsl, urlsplit

import aiosmtplib
import httpx

from certctl_operator import __version__
from certctl_operator.notify.egress import EgressPolicy, EgressRefused
from certctl_operator.notify.egress_transport import EgressCheckingTransport, connect_checked
from certctl_operator.notify.payload import (
    DEFAULT_SUBJECT_PREFIX,
    JSONObject,
    Message,
    encode_json,
    render_email,
    render_pagerduty,
    render_slack,
    render_teams,
    render_webhook,
)
from certctl_operator.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, signing_timestamp
from certctl_operator.policy.clock import utc_now
from certctl_operator.policy.notification import DeliveryError, ErrorKind

USER_AGENT = f"certctl-operator/{__version__}"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_TYPE_HEADER = "X-Certctl-Event"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_TIMEOUT = timedelta(seconds=10)
RETRY_AFTER_LIMIT = timedelta(days=1)
RESPONSE_READ_LIMIT = 64 * 1024
_MIN_SECRET_SEGMENT = 6
"""URL path segments this long or longer are scrubbed from error messages (tokens hide there)."""
_MIN_SCRUBBED_LENGTH = 4
ERROR_BODY_SNIPPET = 100
"""At most this many characters of a 4xx response body are quoted in the error."""

_RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "user-agent",
        IDEMPOTENCY_HEADER.lower(),
        SIGNATURE_HEADER.lower(),
        TIMESTAMP_HEADER.lower(),
        EVENT_TYPE_HEADER.lower(),
    }
)
"""Headers a channel's custom headers may not override."""

Clock: TypeAlias = Callable[[], datetime]


# --------------------------------------------------------------------------- channels


@dataclass(frozen=True)
class WebhookTarget:
    """A generic HTTPS endpoint receiving :func:`~certctl_operator.notify.payload.render_webhook` bodies."""

    url: str = field(repr=False)
    secret: bytes | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: timedelta = DEFAULT_TIMEOUT
    ca_bundle: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SlackTarget:
    webhook_url: str = field(repr=False)
    timeout: timedelta = DEFAULT_TIMEOUT
    ca_bundle: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TeamsTarget:
    webhook_url: str = field(repr=False)
    timeout: timedelta = DEFAULT_TIMEOUT
    ca_bundle: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PagerDutyTarget:
    routing_key: str = field(repr=False)
    url: str = PAGERDUTY_EVENTS_URL
    timeout: timedelta = DEFAULT_TIMEOUT
    ca_bundle: str | None = field(default=None, repr=False)


class SmtpSecurity(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


_DEFAULT_SMTP_PORT = {SmtpSecurity.NONE: 25, SmtpSecurity.STARTTLS: 587, SmtpSecurity.TLS: 465}


@dataclass(frozen=True)
class EmailTarget:
    """An SMTP relay. ``port`` defaults to 25, 587 or 465 by ``security``.

    Credentials are only sent over TLS unless ``allow_insecure_auth`` is set.
    """

    host: str
    sender: str
    recipients: tuple[str, ...]
    port: int | None = None
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: timedelta = DEFAULT_TIMEOUT
    ca_bundle: str | None = field(default=None, repr=False)
    allow_insecure_auth: bool = False
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else _DEFAULT_SMTP_PORT[self.security]


DeliveryTarget: TypeAlias = WebhookTarget | SlackTarget | TeamsTarget | PagerDutyTarget | EmailTarget


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one attempt: ``ok`` with a ``detail``, or an ``error``."""

    ok: bool
    duration: timedelta
    detail: str
    status_code: int | None = None
    error: DeliveryError | None = None
    egress_refusal: str | None = None
    """Set when the egress policy refused the destination: the refusal, naming host and address."""

    @classmethod
    def success(cls, duration: timedelta, detail: str, status_code: int | None = None) -> DeliveryResult:
        return cls(ok=True, duration=duration, detail=detail, status_code=status_code)

    @classmethod
    def failure(
        cls, duration: timedelta, error: DeliveryError, *, egress_refusal: str | None = None
    ) -> DeliveryResult:
        return cls(
            ok=False,
            duration=duration,
            detail=error.message,
            status_code=error.status_code,
            error=error,
            egress_refusal=egress_refusal,
        )


class InvalidCABundle(ValueError):
    """The PEM CA bundle of a channel could not be loaded."""


# --------------------------------------------------------------------------- redaction


INVALID_URL = "<invalid URL>"


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: no credentials, path, query or fragment."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return INVALID_URL
    if not parts.scheme or not parts.hostname:
        return INVALID_URL
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def _target(url: str) -> str:
    """``host:port`` of ``url`` for error messages."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "invalid URL"
    host = parts.hostname or "unknown host"
    if ":" in host:
        host = f"[{host}]"
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme)
    return f"{host}:{port}" if port is not None else host


def _url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be credentials: path, path segments, query, its values, password."""
    values = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return values
    if len(parts.path) > 1:
        values.append(parts.path)
        values.extend(segment for segment in parts.path.split("/") if len(segment) >= _MIN_SECRET_SEGMENT)
    values.extend(value for value in (parts.query, parts.fragment, parts.password) if value)
    values.extend(value for _, value in parse_qsl(parts.query, keep_blank_values=True) if value)
    return values


def _scrub(text: str, secrets: Iterable[str | bytes | None]) -> str:
    """Replace every secret value in ``text`` with ``***`` (longest first).

    Values shorter than four characters are left alone: they are not secrets
    worth the name and replacing them would garble the message (a custom
    header ``X-Version: 1`` must not turn ``HTTP 401`` into ``HTTP 40***``).
    """
    values: set[str] = set()
    for secret in secrets:
        if isinstance(secret, bytes):
            try:
                secret = secret.decode("utf-8")
            except UnicodeDecodeError:
                continue
        if secret and len(secret) >= _MIN_SCRUBBED_LENGTH:
            values.add(secret)
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def _scrubbed(error: DeliveryError, secrets: Iterable[str | bytes | None]) -> DeliveryError:
    return DeliveryError(
        kind=error.kind,
        message=_scrub(error.message, secrets),
        status_code=error.status_code,
        retry_after=error.retry_after,
    )


# --------------------------------------------------------------------------- classification


def _seconds_text(timeout: timedelta) -> str:
    return f"{timeout.total_seconds():g}s"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def network_error(exc: BaseException, target: str) -> DeliveryError:
    """Classify a transport-level failure by the most specific cause in its chain."""
    chain = list(_chain(exc))
    for cause in chain:
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or "verification failed"
            return DeliveryError(ErrorKind.TLS, f"TLS certificate verification failed: {reason} ({target})")
    for cause in chain:
        if isinstance(cause, ssl.SSLError):
            return DeliveryError(ErrorKind.TLS, f"TLS handshake failed ({target})")
    checks: tuple[tuple[type[BaseException], str], ...] = (
        (ConnectionRefusedError, "connection refused"),
        (socket.gaierror, "name resolution failed"),
        (ConnectionResetError, "connection reset"),
        (ConnectionAbortedError, "connection aborted"),
        (httpx.ProxyError, "proxy error"),
        (httpx.RemoteProtocolError, "connection closed by server"),
        (aiosmtplib.SMTPServerDisconnected, "connection closed by server"),
        (httpx.ConnectError, "connection failed"),
        (httpx.ReadError, "connection lost"),
        (httpx.WriteError, "connection lost"),
    )
    for kind, text in checks:
        if any(isinstance(cause, kind) for cause in chain):
            return DeliveryError(ErrorKind.CONNECTION, f"{text} ({target})")
    return DeliveryError(ErrorKind.CONNECTION, f"network error ({target})")


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Read an HTTP ``Retry-After`` (delta seconds or an HTTP date), bounded to a day."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(timedelta(seconds=int(text[:9])), RETRY_AFTER_LIMIT)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(when - now, timedelta(0)), RETRY_AFTER_LIMIT)


def _status_text(status_code: int) -> str:
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        phrase = ""
    return f"HTTP {status_code} {phrase}".strip()


def classify_status(
    status_code: int, headers: Mapping[str, str] | None = None, *, now: datetime | None = None, body: str = ""
) -> DeliveryError | None:
    """None for 2xx, otherwise the error an HTTP status stands for."""
    if 200 <= status_code < 300:
        return None
    text = _status_text(status_code)
    retry_after = parse_retry_after((headers or {}).get("retry-after"), now or utc_now())
    if status_code == 408:
        return DeliveryError(ErrorKind.TIMEOUT, text, status_code)
    if status_code == 429:
        return DeliveryError(ErrorKind.RATE_LIMITED, text, status_code, retry_after)
    if 500 <= status_code < 600:
        return DeliveryError(ErrorKind.SERVER_ERROR, text, status_code, retry_after)
    if 300 <= status_code < 400:
        # Following one could carry the signed payload to a host the channel never named.
        # The Location is not quoted: it may hold a token.
        text = f"{text}: redirects are not followed; set the channel's URL to the final address"
        return DeliveryError(ErrorKind.CLIENT_ERROR, text, status_code)
    snippet = " ".join(body.split())[:ERROR_BODY_SNIPPET]
    if 400 <= status_code < 500 and snippet and snippet.isprintable():
        text = f"{text}: {snippet}"
    return DeliveryError(ErrorKind.CLIENT_ERROR, text, status_code)


# --------------------------------------------------------------------------- HTTP


def ssl_context_for(ca_bundle: str) -> ssl.SSLContext:
    """A verifying TLS context trusting only the CAs of the PEM ``ca_bundle``."""
    try:
        return ssl.create_default_context(cadata=ca_bundle)
    except (ssl.SSLError, ValueError) as exc:
        raise InvalidCABundle("the CA bundle is not valid PEM certificate data") from exc


_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def _default_client(verify: ssl.SSLContext | None, egress: EgressPolicy | None = None) -> httpx.AsyncClient:
    """A client verifying with ``verify`` (the system trust store when None).

    With an egress policy every connection is checked on the address it goes
    to; such a client ignores proxy environment variables, since a proxy
    would connect on its behalf, out of the policy's sight.
    """
    if egress is None:
        return httpx.AsyncClient(
            verify=verify if verify is not None else True,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            limits=_LIMITS,
        )
    transport = EgressCheckingTransport(egress, verify=verify if verify is not None else True, limits=_LIMITS)
    return httpx.AsyncClient(transport=transport, follow_redirects=False, headers={"User-Agent": USER_AGENT})


class HttpClientPool:
    """Shared HTTP clients: the injected (or a default) one, plus one per CA bundle.

    Clients the pool creates are closed by :meth:`aclose`; an injected client
    belongs to its owner.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        client_factory: Callable[[ssl.SSLContext | None], httpx.AsyncClient] | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        self._factory = client_factory or (lambda verify: _default_client(verify, egress))
        self._owned: list[httpx.AsyncClient] = []
        if client is None:
            client = self._factory(None)
            self._owned.append(client)
        self._default = client
        self._by_bundle: dict[str, httpx.AsyncClient] = {}

    def client_for(self, ca_bundle: str | None) -> httpx.AsyncClient:
        """The client verifying against ``ca_bundle`` (PEM), or the default one; may raise InvalidCABundle."""
        if not ca_bundle:
            return self._default
        key = hashlib.sha256(ca_bundle.encode("utf-8")).hexdigest()
        client = self._by_bundle.get(key)
        if client is None:
            client = self._factory(ssl_context_for(ca_bundle))
            self._by_bundle[key] = client
            self._owned.append(client)
        return client

    async def aclose(self) -> None:
        owned, self._owned = self._owned, []
        self._by_bundle.clear()
        for client in owned:
            await client.aclose()

    async def __aenter__(self) -> HttpClientPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def _elapsed(started: float) -> timedelta:
    return timedelta(seconds=time.monotonic() - started)


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str],
    time_limit: timedelta,
    secrets: Iterable[str | bytes | None] = (),
) -> DeliveryResult:
    """POST ``body`` and classify the outcome; ``time_limit`` bounds the whole exchange."""
    started = time.monotonic()
    hidden = [*_url_secrets(url), *secrets]
    seconds = time_limit.total_seconds()
    target = _target(url)
    request_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
    failure: DeliveryError | None
    try:
        async with (
            asyncio.timeout(seconds),
            client.stream(
                "POST", url, content=body, headers=request_headers, timeout=httpx.Timeout(seconds)
            ) as response,
        ):
            # Read a small body to the end so the connection goes back to the pool;
            # a large one is cut short (and its connection dropped).
            content = b""
            async for chunk in response.aiter_bytes():
                content += chunk
                if len(content) > RESPONSE_READ_LIMIT:
                    break
            status_code = response.status_code
            response_headers = {key.lower(): value for key, value in response.headers.items()}
    except (TimeoutError, httpx.TimeoutException):
        failure = DeliveryError(ErrorKind.TIMEOUT, f"timeout after {_seconds_text(time_limit)} ({target})")
    except httpx.UnsupportedProtocol:
        shown = redact_url(url)
        text = "invalid URL" if shown == INVALID_URL else f"unsupported URL scheme in {shown}"
        failure = DeliveryError(ErrorKind.CONFIGURATION, text)
    except httpx.InvalidURL:
        failure = DeliveryError(ErrorKind.CONFIGURATION, "invalid URL")
    except EgressRefused as denial:
        failure = DeliveryError(ErrorKind.CONFIGURATION, str(denial))
        return DeliveryResult.failure(
            _elapsed(started), _scrubbed(failure, hidden), egress_refusal=_scrub(denial.problem, hidden)
        )
    except httpx.LocalProtocolError:
        # The request itself is malformed (a header with a line break): sending again cannot help.
        failure = DeliveryError(ErrorKind.CONFIGURATION, f"invalid HTTP request header ({target})")
    except (httpx.TransportError, OSError) as exc:
        failure = network_error(exc, target)
    except Exception as exc:
        failure = DeliveryError(ErrorKind.UNEXPECTED, f"unexpected error: {type(exc).__name__} ({target})")
    else:
        snippet = content[: 4 * ERROR_BODY_SNIPPET].decode("utf-8", "replace")
        failure = classify_status(status_code, response_headers, body=snippet)
        if failure is None:
            return DeliveryResult.success(_elapsed(started), _status_text(status_code), status_code)
    return DeliveryResult.failure(_elapsed(started), _scrubbed(failure, hidden))


async def send_webhook(
    client: httpx.AsyncClient, channel: WebhookTarget, message: Message, *, now: datetime | None = None
) -> DeliveryResult:
    """POST the generic JSON body, signed when the channel has a secret.

    Headers: ``Content-Type: application/json``, ``User-Agent``,
    ``Idempotency-Key`` (the event id, equal on every retry),
    ``X-Certctl-Event`` (the event type), ``X-Certctl-Timestamp`` and, with a
    secret, ``X-Certctl-Signature: sha256=<hex>`` (see
    :mod:`certctl_operator.notify.signing`), plus the channel's own headers,
    which cannot replace any of those.
    """
    body = render_webhook(message)
    timestamp = signing_timestamp(now or utc_now())
    headers = {key: value for key, value in channel.headers.items() if key.lower() not in _RESERVED_HEADERS}
    headers[IDEMPOTENCY_HEADER] = message.event_id
    headers[EVENT_TYPE_HEADER] = message.type.value
    headers[TIMESTAMP_HEADER] = timestamp
    if channel.secret:
        headers[SIGNATURE_HEADER] = sign(channel.secret, timestamp, body)
    return await post_json(
        client,
        channel.url,
        body,
        headers=headers,
        time_limit=channel.timeout,
        secrets=[channel.secret, *channel.headers.values()],
    )


async def _post_document(
    client: httpx.AsyncClient,
    url: str,
    document: JSONObject,
    time_limit: timedelta,
    secrets: Iterable[str | bytes | None] = (),
) -> DeliveryResult:
    return await post_json(
        client, url, encode_json(document), headers={}, time_limit=time_limit, secrets=secrets
    )


async def send_slack(client: httpx.AsyncClient, channel: SlackTarget, message: Message) -> DeliveryResult:
    """POST a Slack incoming-webhook payload (the URL is a secret and never reported)."""
    return await _post_document(client, channel.webhook_url, render_slack(message), channel.timeout)


async def send_teams(client: httpx.AsyncClient, channel: TeamsTarget, message: Message) -> DeliveryResult:
    """POST an Adaptive Card to a Teams Workflows (or incoming) webhook URL."""
    return await _post_document(client, channel.webhook_url, render_teams(message), channel.timeout)


async def send_pagerduty(
    client: httpx.AsyncClient, channel: PagerDutyTarget, message: Message
) -> DeliveryResult:
    """Trigger a PagerDuty Events API v2 alert, de-duplicated by the event id."""
    document = render_pagerduty(message, channel.routing_key)
    return await _post_document(client, channel.url, document, channel.timeout, [channel.routing_key])


# --------------------------------------------------------------------------- email


def _smtp_error(exc: BaseException, target: str, timeout: timedelta) -> DeliveryError:
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return DeliveryError(ErrorKind.CLIENT_ERROR, f"SMTP authentication failed ({exc.code})", exc.code)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = sorted({refused.code for refused in exc.recipients})
        transient = bool(codes) and all(400 <= code < 500 for code in codes)
        kind = ErrorKind.SERVER_ERROR if transient else ErrorKind.CLIENT_ERROR
        listed = ", ".join(str(code) for code in codes)
        return DeliveryError(kind, f"SMTP all recipients refused ({listed})")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = " ".join(str(exc.message).split())[:ERROR_BODY_SNIPPET]
        if 400 <= exc.code < 500:
            return DeliveryError(
                ErrorKind.SERVER_ERROR, f"SMTP {exc.code} temporary failure: {text}", exc.code
            )
        return DeliveryError(ErrorKind.CLIENT_ERROR, f"SMTP {exc.code} rejected: {text}", exc.code)
    if isinstance(exc, TimeoutError):
        return DeliveryError(ErrorKind.TIMEOUT, f"timeout after {_seconds_text(timeout)} ({target})")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        text = " ".join(str(exc).split())[:ERROR_BODY_SNIPPET]
        return DeliveryError(ErrorKind.CONFIGURATION, f"SMTP server: {text}")
    if isinstance(exc, (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, OSError)):
        return network_error(exc, target)
    if isinstance(exc, aiosmtplib.SMTPException):
        # The client's own protocol complaints, such as a server without AUTH or STARTTLS.
        text = " ".join(str(exc).split())[:ERROR_BODY_SNIPPET]
        return DeliveryError(ErrorKind.CONFIGURATION, f"SMTP: {text}")
    if isinstance(exc, ValueError):
        return DeliveryError(ErrorKind.CONFIGURATION, "invalid email address or header")
    return DeliveryError(ErrorKind.UNEXPECTED, f"unexpected error: {type(exc).__name__} ({target})")


def _address(value: str) -> str:
    return parseaddr(value)[1] or value


async def send_email(
    channel: EmailTarget, message: Message, *, egress: EgressPolicy | None = None
) -> DeliveryResult:
    """Send a plain-text email through the channel's SMTP relay (connected as ``egress`` permits)."""
    started = time.monotonic()
    target = f"{channel.host}:{channel.effective_port}"
    secrets = [channel.password]

    def fail(error: DeliveryError) -> DeliveryResult:
        return DeliveryResult.failure(_elapsed(started), _scrubbed(error, secrets))

    if not channel.recipients:
        return fail(DeliveryError(ErrorKind.CONFIGURATION, "no recipients"))
    if (channel.username is None) != (channel.password is None):
        return fail(DeliveryError(ErrorKind.CONFIGURATION, "SMTP username and password go together"))
    if channel.username and channel.security is SmtpSecurity.NONE and not channel.allow_insecure_auth:
        return fail(DeliveryError(ErrorKind.CONFIGURATION, "refusing to send SMTP credentials without TLS"))
    try:
        tls_context: ssl.SSLContext | None = None
        if channel.security is not SmtpSecurity.NONE:
            tls_context = (
                ssl_context_for(channel.ca_bundle) if channel.ca_bundle else ssl.create_default_context()
            )
        email = render_email(
            message,
            sender=channel.sender,
            recipients=channel.recipients,
            subject_prefix=channel.subject_prefix,
        )
    except InvalidCABundle:
        return fail(DeliveryError(ErrorKind.CONFIGURATION, "invalid CA bundle"))
    except ValueError:
        return fail(DeliveryError(ErrorKind.CONFIGURATION, "invalid email address or header"))

    seconds = channel.timeout.total_seconds()
    try:
        async with asyncio.timeout(seconds):
            # With a policy the socket is connected here, to a checked address; the
            # host name still names the server for TLS verification.
            sock = await connect_checked(egress, channel.host, channel.effective_port) if egress else None
            try:
                refused, _reply = await aiosmtplib.send(
                    email,
                    sender=_address(channel.sender),
                    recipients=[_address(recipient) for recipient in channel.recipients],
                    hostname=channel.host,
                    port=channel.effective_port if sock is None else None,
                    sock=sock,
                    username=channel.username,
                    password=channel.password,
                    timeout=seconds,
                    use_tls=channel.security is SmtpSecurity.TLS,
                    start_tls=channel.security is SmtpSecurity.STARTTLS,
                    tls_context=tls_context,
                )
            finally:
                if sock is not None:
                    sock.close()  # a no-op when the SMTP client closed it already
    except asyncio.CancelledError:
        raise
    except EgressRefused as denial:
        error = DeliveryError(ErrorKind.CONFIGURATION, str(denial))
        return DeliveryResult.failure(
            _elapsed(started), _scrubbed(error, secrets), egress_refusal=_scrub(denial.problem, secrets)
        )
    except Exception as exc:
        return fail(_smtp_error(exc, target, channel.timeout))

    accepted = len(channel.recipients) - len(refused)
    detail = f"SMTP accepted {accepted} of {len(channel.recipients)} recipients"
    if refused:
        listed = ", ".join(f"{address} ({reply.code})" for address, reply in sorted(refused.items()))
        detail += f"; refused: {listed}"
    return DeliveryResult.success(_elapsed(started), _scrub(detail, secrets))


# --------------------------------------------------------------------------- dispatch


class Notifier:
    """Deliver a message to any kind of channel, sharing HTTP connection pools."""

    def __init__(
        self, http: HttpClientPool, *, clock: Clock | None = None, egress: EgressPolicy | None = None
    ) -> None:
        self._http = http
        self._clock = clock or utc_now
        self._egress = egress

    async def deliver(self, channel: DeliveryTarget, message: Message) -> DeliveryResult:
        if isinstance(channel, EmailTarget):
            return await send_email(channel, message, egress=self._egress)
        started = time.monotonic()
        try:
            client = self._http.client_for(channel.ca_bundle)
        except InvalidCABundle:
            return DeliveryResult.failure(
                _elapsed(started), DeliveryError(ErrorKind.CONFIGURATION, "invalid CA bundle")
            )
        if isinstance(channel, WebhookTarget):
            return await send_webhook(client, channel, message, now=self._clock())
        if isinstance(channel, SlackTarget):
            return await send_slack(client, channel, message)
        if isinstance(channel, TeamsTarget):
            return await send_teams(client, channel, message)
        return await send_pagerduty(client, channel, message)
