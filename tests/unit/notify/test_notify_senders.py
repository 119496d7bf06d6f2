"""Senders against real receivers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from tests.support.receivers import HTTPReceiver, ScriptedResponse, SMTPReceiver, make_self_signed

from certctl_operator import __version__
from certctl_operator.notify.payload import Message, render_webhook
from certctl_operator.notify.senders import (
    DeliveryResult,
    EmailTarget,
    HttpClientPool,
    Notifier,
    PagerDutyTarget,
    SlackTarget,
    SmtpSecurity,
    TeamsTarget,
    WebhookTarget,
    redact_url,
    send_webhook,
)
from certctl_operator.notify.signing import verify
from certctl_operator.policy.notification import (
    DeliveryPhase,
    DeliveryState,
    ErrorKind,
    is_due,
    on_failure,
    on_success,
)

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
SIGNING_SECRET = b"whsec-0123456789"
SHORT = timedelta(milliseconds=300)

StartHTTP = Callable[..., HTTPReceiver]
StartSMTP = Callable[..., SMTPReceiver]


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections (in the backlog) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def failed(result: DeliveryResult) -> tuple[ErrorKind, str]:
    assert not result.ok
    assert result.error is not None
    return result.error.kind, result.error.message


# ------------------------------------------------------------------ webhook


async def test_webhook_delivery_is_signed_and_idempotent(
    http_receiver: StartHTTP, pool: HttpClientPool, message: Message
) -> None:
    receiver = http_receiver()
    channel = WebhookTarget(
        url=receiver.url_for("/hooks/certs"),
        secret=SIGNING_SECRET,
        headers={"X-Team": "payments", "Idempotency-Key": "forged", "Content-Type": "text/plain"},
    )
    result = await send_webhook(pool.client_for(None), channel, message, now=NOW)

    assert result.ok
    assert result.status_code == 200
    assert result.detail == "HTTP 200 OK"
    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hooks/certs"
    assert request.body == render_webhook(message)
    assert request.header("content-type") == "application/json"
    assert request.header("user-agent") == f"certctl-operator/{__version__}"
    assert request.header("idempotency-key") == message.event_id
    assert request.header("x-certctl-event") == "Renewed"
    assert request.header("x-team") == "payments"
    timestamp = request.header("x-certctl-timestamp")
    signature = request.header("x-certctl-signature")
    assert timestamp == str(int(NOW.timestamp()))
    assert signature is not None and signature.startswith("sha256=")
    assert verify(SIGNING_SECRET, timestamp, request.body, signature, now=NOW)
    assert not verify(b"wrong", timestamp, request.body, signature)
    assert request.json()["id"] == message.event_id


async def test_webhook_without_secret_is_unsigned(
    http_receiver: StartHTTP, pool: HttpClientPool, message: Message
) -> None:
    receiver = http_receiver()
    result = await Notifier(pool).deliver(WebhookTarget(url=receiver.url), message)
    assert result.ok
    (request,) = receiver.requests
    assert request.header("x-certctl-signature") is None
    assert request.header("x-certctl-timestamp") is not None


async def test_retries_reuse_body_and_idempotency_key_until_delivered(
    http_receiver: StartHTTP, pool: HttpClientPool, message: Message
) -> None:
    receiver = http_receiver([ScriptedResponse(503), ScriptedResponse(503)])
    channel = WebhookTarget(url=receiver.url, secret=SIGNING_SECRET)
    notifier = Notifier(pool, clock=lambda: NOW)
    state, now = DeliveryState(), NOW
    while not state.terminal:
        assert is_due(state, now)
        result = await notifier.deliver(channel, message)
        if result.ok:
            state = on_success(state, now, result.duration, detail=result.detail)
        else:
            assert result.error is not None
            assert result.error.kind is ErrorKind.SERVER_ERROR
            assert result.error.retryable
            assert result.error.message == "HTTP 503 Service Unavailable"
            state = on_failure(state, result.error, now)
            assert state.next_retry_at is not None
            now = state.next_retry_at

    assert state.phase is DeliveryPhase.SENT
    assert state.retry_count == 2
    assert state.delivered_on_attempt == 3
    requests = receiver.requests
    assert len(requests) == 3
    assert {r.header("idempotency-key") for r in requests} == {message.event_id}
    assert {r.body for r in requests} == {render_webhook(message)}


async def test_exactly_five_attempts_then_dead(
    http_receiver: StartHTTP, pool: HttpClientPool, message: Message
) -> None:
    receiver = http_receiver(default=ScriptedResponse(500, b"boom"))
    channel = WebhookTarget(url=receiver.url)
    notifier = Notifier(pool)
    state, now = DeliveryState(), NOW
    while not state.terminal:
        result = await notifier.deliver(channel, message)
        assert result.error is not None
        state = on_failure(state, result.error, now)
        now = state.next_retry_at or now
    assert state.phase is DeliveryPhase.DEAD
    assert state.retry_count == 5
    assert state.last_error == "HTTP 500 Internal Server Error"
    assert len(receiver.requests) == 5


@pytest.mark.parametrize(
    ("status", "kind", "retryable", "text"),
    [
        (500, ErrorKind.SERVER_ERROR, True, "HTTP 500 Internal Server Error"),
        (502, ErrorKind.SERVER_ERROR, True, "HTTP 502 Bad Gateway"),
        (503, ErrorKind.SERVER_ERROR, True, "HTTP 503 Service Unavailable"),
        (429, ErrorKind.RATE_LIMITED, True, "HTTP 429 Too Many Requests"),
        (408, ErrorKind.TIMEOUT, True, "HTTP 408 Request Timeout"),
        (400, ErrorKind.CLIENT_ERROR, False, "HTTP 400 Bad Request: failure"),
        (401, ErrorKind.CLIENT_ERROR, False, "HTTP 401 Unauthorized: failure"),
        (404, ErrorKind.CLIENT_ERROR, False, "HTTP 404 Not Found: failure"),
        (
            301,
            ErrorKind.CLIENT_ERROR,
            False,
            "HTTP 301 Moved Permanently: redirects are not followed; "
            "set the channel's URL to the final address",
        ),
    ],
)
async def test_status_classification(
    http_receiver: StartHTTP,
    pool: HttpClientPool,
    message: Message,
    status: int,
    kind: ErrorKind,
    retryable: bool,
    text: str,
) -> None:
    headers = {"Location": "http://127.0.0.1:1/elsewhere"} if status == 301 else {}
    receiver = http_receiver([ScriptedResponse(status, b"failure", headers)])
    result = await Notifier(pool).deliver(WebhookTarget(url=receiver.url), message)
    assert failed(result) == (kind, text)
    assert result.status_code == status
    assert result.error is not None and result.error.retryable is retryable
    assert len(receiver.requests) == 1  # redirects are not followed


async def test_retry_after_is_honoured(
    http_receiver: StartHTTP, pool: HttpClientPool, message: Message
) -> None:
    receiver = http_receiver([ScriptedResponse(429, b"", {"Retry-After": "120"})])
    result = await Notifier(pool).deliver(WebhookTarget(url=receiver.url), message)
    assert result.error is not None
    assert result.error.retry_after == timedelta(seconds=120)
    state = on_failure(DeliveryState(), result.error, NOW)
    assert state.next_retry_at == NOW + timedelta(minutes=2)


async def test_slow_receiver_times_out(
    http_receiver: StartHTTP, pool: HttpClientPool, message: Message
) -> None:
    receiver = http_receiver([ScriptedResponse(200, hold=True)])
    try:
        result = await Notifier(pool).deliver(WebhookTarget(url=receiver.url, timeout=SHORT), message)
        await receiver.wait_until_held_async()
    finally:
        receiver.release()
    assert failed(result) == (ErrorKind.TIMEOUT, f"timeout after 0.3s (127.0.0.1:{receiver.port})")
    assert result.error is not None and result.error.retryable
    assert result.duration >= SHORT


async def test_connection_refused(pool: HttpClientPool, message: Message) -> None:
    port = closed_port()
    result = await Notifier(pool).deliver(WebhookTarget(url=f"http://127.0.0.1:{port}/hook"), message)
    assert failed(result) == (ErrorKind.CONNECTION, f"connection refused (127.0.0.1:{port})")
    assert result.error is not None and result.error.retryable


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("ftp://127.0.0.1/hook", "unsupported URL scheme in ftp://127.0.0.1"),
        ("http://", "invalid URL"),
    ],
)
async def test_bad_urls_are_configuration_errors(
    pool: HttpClientPool, message: Message, url: str, text: str
) -> None:
    result = await Notifier(pool).deliver(WebhookTarget(url=url), message)
    assert failed(result) == (ErrorKind.CONFIGURATION, text)


# ------------------------------------------------------------------ secrets


async def test_errors_never_reveal_secrets(
    http_receiver: StartHTTP, pool: HttpClientPool, message: Message
) -> None:
    token = "tok-SECRET-7d1c"
    bearer = "Bearer hdr-SECRET-99"
    echo = f"bad request for {token} with {bearer}".encode()
    receiver = http_receiver(
        [ScriptedResponse(400, echo), ScriptedResponse(503), ScriptedResponse(200, hold=True)]
    )
    webhook = WebhookTarget(
        url=f"{receiver.url}/hook?token={token}",
        secret=SIGNING_SECRET,
        headers={"Authorization": bearer},
    )
    slack_path = "/services/T000/B000/slk-SECRET-XYZ"
    slack = SlackTarget(webhook_url=receiver.url + slack_path)
    refused_slack = SlackTarget(webhook_url=f"http://127.0.0.1:{closed_port()}{slack_path}")
    slow_teams = TeamsTarget(
        webhook_url=receiver.url + "/workflows/tms-SECRET-1?sig=sig-SECRET-2", timeout=SHORT
    )
    notifier = Notifier(pool)
    try:
        results = [
            await notifier.deliver(webhook, message),
            await notifier.deliver(slack, message),
            await notifier.deliver(refused_slack, message),
            await notifier.deliver(slow_teams, message),
        ]
    finally:
        receiver.release()
    messages = [failed(result)[1] for result in results]
    assert messages[0].startswith("HTTP 400 Bad Request: bad request for *** with ***")
    for text in messages:
        assert "SECRET" not in text
        assert "/services" not in text
        assert "workflows" not in text
        assert "whsec" not in text


def test_channel_reprs_hide_secrets() -> None:
    channels = [
        WebhookTarget(url="https://h.example/x?token=SECRET", secret=b"SECRET", headers={"A": "SECRET"}),
        SlackTarget(webhook_url="https://hooks.slack.example/services/SECRET"),
        TeamsTarget(webhook_url="https://teams.example/SECRET"),
        PagerDutyTarget(routing_key="SECRET"),
        EmailTarget(host="smtp.example", sender="a@b", recipients=("c@d",), username="u", password="SECRET"),
    ]
    for channel in channels:
        assert "SECRET" not in repr(channel)


def test_redact_url() -> None:
    assert (
        redact_url("https://user:pw@hooks.example:8443/services/T/B/X?token=t#f")
        == "https://hooks.example:8443"
    )
    assert redact_url("http://[::1]:80/x") == "http://[::1]:80"
    assert redact_url("not a url") == "<invalid URL>"


# ------------------------------------------------------------------ other HTTP channels


async def test_slack_teams_and_pagerduty_formats(
    http_receiver: StartHTTP, pool: HttpClientPool, message: Message
) -> None:
    receiver = http_receiver(
        [ScriptedResponse(200), ScriptedResponse(200), ScriptedResponse(202, b'{"status":"success"}')]
    )
    notifier = Notifier(pool)
    slack = await notifier.deliver(SlackTarget(webhook_url=receiver.url_for("/slack")), message)
    teams = await notifier.deliver(TeamsTarget(webhook_url=receiver.url_for("/teams")), message)
    pagerduty = await notifier.deliver(
        PagerDutyTarget(routing_key="R0UT1NG", url=receiver.url_for("/v2/enqueue")), message
    )
    assert (slack.ok, teams.ok, pagerduty.ok) == (True, True, True)
    assert pagerduty.detail == "HTTP 202 Accepted"
    slack_request, teams_request, pd_request = receiver.requests
    assert slack_request.path == "/slack"
    assert set(slack_request.json()) == {"text", "blocks"}
    assert teams_request.json()["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    event = pd_request.json()
    assert pd_request.path == "/v2/enqueue"
    assert (event["routing_key"], event["event_action"], event["dedup_key"]) == (
        "R0UT1NG",
        "trigger",
        message.event_id,
    )
    assert event["payload"]["severity"] == "info"
    for request in receiver.requests:
        assert request.header("content-type") == "application/json"
        assert request.header("user-agent") == f"certctl-operator/{__version__}"


async def test_pagerduty_errors_hide_the_routing_key(
    http_receiver: StartHTTP, pool: HttpClientPool, message: Message
) -> None:
    receiver = http_receiver([ScriptedResponse(400, b'{"message":"invalid routing key R0UT1NG"}')])
    result = await Notifier(pool).deliver(PagerDutyTarget(routing_key="R0UT1NG", url=receiver.url), message)
    kind, text = failed(result)
    assert kind is ErrorKind.CLIENT_ERROR
    assert "R0UT1NG" not in text
    assert "***" in text


# ------------------------------------------------------------------ TLS


async def test_https_with_a_ca_bundle(
    http_receiver: StartHTTP, pool: HttpClientPool, message: Message
) -> None:
    certificate = make_self_signed()
    receiver = http_receiver(tls=certificate)
    notifier = Notifier(pool)

    trusted = await notifier.deliver(WebhookTarget(url=receiver.url, ca_bundle=certificate.cert_pem), message)
    assert trusted.ok

    untrusted = await notifier.deliver(WebhookTarget(url=receiver.url), message)
    kind, text = failed(untrusted)
    assert kind is ErrorKind.TLS
    assert text.startswith("TLS certificate verification failed")
    assert untrusted.error is not None and not untrusted.error.retryable

    other = make_self_signed()
    wrong = await notifier.deliver(WebhookTarget(url=receiver.url, ca_bundle=other.cert_pem), message)
    assert failed(wrong)[0] is ErrorKind.TLS


async def test_invalid_ca_bundle(pool: HttpClientPool, message: Message) -> None:
    result = await Notifier(pool).deliver(
        SlackTarget(webhook_url="https://127.0.0.1:1/x", ca_bundle="not a certificate"), message
    )
    assert failed(result) == (ErrorKind.CONFIGURATION, "invalid CA bundle")


async def test_pool_keeps_one_client_per_bundle_and_closes_its_own() -> None:
    first, second = make_self_signed(), make_self_signed()
    async with httpx.AsyncClient() as injected:
        pool = HttpClientPool(injected)
        assert pool.client_for(None) is injected
        a = pool.client_for(first.cert_pem)
        assert pool.client_for(first.cert_pem) is a
        b = pool.client_for(second.cert_pem)
        assert b is not a
        await pool.aclose()
        assert a.is_closed and b.is_closed
        assert not injected.is_closed


# ------------------------------------------------------------------ email


def email_channel(receiver: SMTPReceiver, **overrides: object) -> EmailTarget:
    values: dict[str, object] = {
        "host": receiver.host,
        "port": receiver.port,
        "sender": "certctl <certctl@example.test>",
        "recipients": ("ops@example.test", "sec@example.test"),
        "security": SmtpSecurity.NONE,
        "timeout": timedelta(seconds=10),
    }
    if receiver.tls is not None:
        values["ca_bundle"] = receiver.tls.cert_pem
    values.update(overrides)
    return EmailTarget(**values)  # type: ignore[arg-type]


async def test_email_plain(smtp_receiver: StartSMTP, pool: HttpClientPool, message: Message) -> None:
    receiver = smtp_receiver()
    result = await Notifier(pool).deliver(email_channel(receiver), message)
    assert result.ok, result.detail
    assert result.detail == "SMTP accepted 2 of 2 recipients"
    (mail,) = receiver.wait_for_messages(1)
    assert mail.mail_from == "certctl@example.test"
    assert mail.rcpt_tos == ("ops@example.test", "sec@example.test")
    assert mail.tls is False
    assert mail.login is None
    parsed = mail.message
    assert parsed["Subject"] == "[certctl] INFO: Certificate shop/web renewed"
    assert parsed["To"] == "ops@example.test, sec@example.test"
    assert parsed["Message-ID"] == f"<{message.event_id}@certctl-operator>"
    body = parsed.get_content()
    assert "was renewed" in body
    assert "Certificate: shop/web" in body


@pytest.mark.parametrize(
    ("mode", "security"), [("starttls", SmtpSecurity.STARTTLS), ("tls", SmtpSecurity.TLS)]
)
async def test_email_over_tls_with_auth(
    smtp_receiver: StartSMTP, pool: HttpClientPool, message: Message, mode: str, security: SmtpSecurity
) -> None:
    receiver = smtp_receiver(mode=mode, credentials={"alerts": "pw-SECRET-1"})
    channel = email_channel(receiver, security=security, username="alerts", password="pw-SECRET-1")
    result = await Notifier(pool).deliver(channel, message)
    assert result.ok, result.detail
    (mail,) = receiver.wait_for_messages(1)
    assert mail.tls is True
    assert mail.login == "alerts"
    assert receiver.auth_attempts == [("alerts", True)]


async def test_email_wrong_password(smtp_receiver: StartSMTP, pool: HttpClientPool, message: Message) -> None:
    receiver = smtp_receiver(mode="starttls", credentials={"alerts": "right"})
    channel = email_channel(
        receiver, security=SmtpSecurity.STARTTLS, username="alerts", password="pw-SECRET-2"
    )
    result = await Notifier(pool).deliver(channel, message)
    kind, text = failed(result)
    assert kind is ErrorKind.CLIENT_ERROR
    assert text == "SMTP authentication failed (535)"
    assert "pw-SECRET" not in text
    assert receiver.messages == []


async def test_email_untrusted_certificate(
    smtp_receiver: StartSMTP, pool: HttpClientPool, message: Message
) -> None:
    receiver = smtp_receiver(mode="tls")
    channel = email_channel(receiver, security=SmtpSecurity.TLS, ca_bundle=None)
    kind, text = failed(await Notifier(pool).deliver(channel, message))
    assert kind is ErrorKind.TLS
    assert text.startswith("TLS certificate verification failed")


async def test_email_refuses_credentials_without_tls(
    smtp_receiver: StartSMTP, pool: HttpClientPool, message: Message
) -> None:
    receiver = smtp_receiver(credentials={"alerts": "pw"}, auth_require_tls=False)
    channel = email_channel(receiver, username="alerts", password="pw")
    result = await Notifier(pool).deliver(channel, message)
    assert failed(result) == (ErrorKind.CONFIGURATION, "refusing to send SMTP credentials without TLS")
    assert receiver.auth_attempts == []

    allowed = email_channel(receiver, username="alerts", password="pw", allow_insecure_auth=True)
    assert (await Notifier(pool).deliver(allowed, message)).ok
    assert receiver.auth_attempts == [("alerts", True)]


async def test_email_starttls_is_never_downgraded(
    smtp_receiver: StartSMTP, pool: HttpClientPool, message: Message
) -> None:
    receiver = smtp_receiver()  # plain: no STARTTLS offered
    channel = email_channel(
        receiver, security=SmtpSecurity.STARTTLS, username="alerts", password="pw-SECRET-3"
    )
    kind, text = failed(await Notifier(pool).deliver(channel, message))
    assert kind is ErrorKind.CONFIGURATION
    assert "STARTTLS" in text
    assert "pw-SECRET" not in text
    assert receiver.messages == []


async def test_email_server_without_auth(
    smtp_receiver: StartSMTP, pool: HttpClientPool, message: Message
) -> None:
    receiver = smtp_receiver()  # no credentials: AUTH not offered
    channel = email_channel(receiver, username="alerts", password="pw", allow_insecure_auth=True)
    kind, text = failed(await Notifier(pool).deliver(channel, message))
    assert kind is ErrorKind.CONFIGURATION
    assert "AUTH" in text


async def test_email_partial_refusal_is_delivered(
    smtp_receiver: StartSMTP, pool: HttpClientPool, message: Message
) -> None:
    receiver = smtp_receiver(refuse={"sec@example.test": "550 5.1.1 no such user"})
    result = await Notifier(pool).deliver(email_channel(receiver), message)
    assert result.ok
    assert result.detail == "SMTP accepted 1 of 2 recipients; refused: sec@example.test (550)"
    (mail,) = receiver.wait_for_messages(1)
    assert mail.rcpt_tos == ("ops@example.test",)


@pytest.mark.parametrize(
    ("reply", "kind"),
    [("550 5.1.1 no such user", ErrorKind.CLIENT_ERROR), ("450 4.2.0 mailbox busy", ErrorKind.SERVER_ERROR)],
)
async def test_email_all_recipients_refused(
    smtp_receiver: StartSMTP, pool: HttpClientPool, message: Message, reply: str, kind: ErrorKind
) -> None:
    receiver = smtp_receiver(refuse={"ops@example.test": reply})
    channel = email_channel(receiver, recipients=("ops@example.test",))
    result = await Notifier(pool).deliver(channel, message)
    assert failed(result) == (kind, f"SMTP all recipients refused ({reply[:3]})")


@pytest.mark.parametrize(
    ("reply", "kind", "text"),
    [
        (
            "451 4.3.0 try again later",
            ErrorKind.SERVER_ERROR,
            "SMTP 451 temporary failure: 4.3.0 try again later",
        ),
        ("554 5.7.1 rejected as spam", ErrorKind.CLIENT_ERROR, "SMTP 554 rejected: 5.7.1 rejected as spam"),
    ],
)
async def test_email_data_replies(
    smtp_receiver: StartSMTP, pool: HttpClientPool, message: Message, reply: str, kind: ErrorKind, text: str
) -> None:
    receiver = smtp_receiver(data_reply=reply)
    result = await Notifier(pool).deliver(email_channel(receiver), message)
    assert failed(result) == (kind, text)


async def test_email_connection_refused(pool: HttpClientPool, message: Message) -> None:
    port = closed_port()
    channel = EmailTarget(
        host="127.0.0.1",
        port=port,
        sender="a@example.test",
        recipients=("b@example.test",),
        security=SmtpSecurity.NONE,
    )
    result = await Notifier(pool).deliver(channel, message)
    assert failed(result) == (ErrorKind.CONNECTION, f"connection refused (127.0.0.1:{port})")


async def test_email_timeout(pool: HttpClientPool, message: Message) -> None:
    with silent_listener() as port:
        channel = EmailTarget(
            host="127.0.0.1",
            port=port,
            sender="a@example.test",
            recipients=("b@example.test",),
            security=SmtpSecurity.NONE,
            timeout=SHORT,
        )
        result = await Notifier(pool).deliver(channel, message)
    assert failed(result) == (ErrorKind.TIMEOUT, f"timeout after 0.3s (127.0.0.1:{port})")


async def test_email_configuration_errors(pool: HttpClientPool, message: Message) -> None:
    base = EmailTarget(host="127.0.0.1", port=1, sender="a@example.test", recipients=("b@example.test",))
    notifier = Notifier(pool)
    cases = [
        (EmailTarget(host="127.0.0.1", port=1, sender="a@example.test", recipients=()), "no recipients"),
        (
            EmailTarget(host="127.0.0.1", port=1, sender="a@x", recipients=("b@x",), username="u"),
            "SMTP username and password go together",
        ),
        (
            EmailTarget(host="127.0.0.1", port=1, sender="a@x\r\nBcc: c@x", recipients=("b@x",)),
            "invalid email address or header",
        ),
        (
            EmailTarget(host="127.0.0.1", port=1, sender="a@x", recipients=("b@x",), ca_bundle="junk"),
            "invalid CA bundle",
        ),
    ]
    for channel, text in cases:
        assert failed(await notifier.deliver(channel, message)) == (ErrorKind.CONFIGURATION, text)
    assert base.effective_port == 1
    assert EmailTarget(host="h", sender="a", recipients=("b",)).effective_port == 587
    assert (
        EmailTarget(host="h", sender="a", recipients=("b",), security=SmtpSecurity.TLS).effective_port == 465
    )
    assert (
        EmailTarget(host="h", sender="a", recipients=("b",), security=SmtpSecurity.NONE).effective_port == 25
    )


def test_received_json_is_the_webhook_document(message: Message) -> None:
    assert json.loads(render_webhook(message))["details"] == {"revision": 4, "serialNumber": "0a:1b:2c"}


async def test_short_header_values_do_not_garble_errors(
    http_receiver: StartHTTP, pool: HttpClientPool, message: Message
) -> None:
    receiver = http_receiver([ScriptedResponse(401, b"denied")])
    channel = WebhookTarget(url=receiver.url, headers={"X-Version": "1"})
    result = await Notifier(pool).deliver(channel, message)
    assert failed(result) == (ErrorKind.CLIENT_ERROR, "HTTP 401 Unauthorized: denied")
