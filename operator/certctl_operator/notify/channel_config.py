"""Turn a NotificationChannel and the Secrets it references into something a sender can use.

:func:`required_secrets` lists what a channel needs from Secrets,
:func:`channel_problems` says what is wrong with a channel given those
Secrets' data, and :func:`build_channel` assembles the sender's
:data:`~certctl_operator.notify.senders.DeliveryTarget`. No Kubernetes here:
:mod:`certctl_operator.kube.channels` reads the objects.

Problems are short sentences that name Secrets and keys but never quote a
value: they end up in conditions (written by
:mod:`certctl_operator.status.channels`) and in the status of
NotificationEvents.
Destinations are judged by the egress policy
(:mod:`certctl_operator.notify.egress`): literal addresses in the pure half,
host names as they resolve now in :func:`resolved_egress_problems`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from pydantic import ValidationError

from certctl_operator.api.common import HTTP_URL_PATTERN
from certctl_operator.api.notification import (
    ChannelType,
    EmailSecurity,
    NotificationChannelSpec,
)
from certctl_operator.durations import parse_duration
from certctl_operator.notify import senders
from certctl_operator.notify.egress import (
    EgressPolicy,
    literal_refusal_text,
    parse_address,
    resolved_refusal_text,
)
from certctl_operator.notify.egress_transport import system_resolver

SecretData = Mapping[str, bytes]
"""The decoded ``data`` of one Secret."""

SecretsByName = Mapping[str, SecretData | None]
"""Secrets by name; ``None`` for a Secret that does not exist."""

BASIC_AUTH_USERNAME = "username"
BASIC_AUTH_PASSWORD = "password"  # noqa: S105 (a key name, not a password)

_URL = re.compile(HTTP_URL_PATTERN)


@dataclass(frozen=True)
class SecretNeed:
    """One key of one Secret a channel cannot work without; ``purpose`` says what it is for."""

    secret: str
    key: str
    purpose: str


class ChannelConfigError(ValueError):
    """The channel cannot be used as configured; the message is safe to show."""


def required_secrets(spec: NotificationChannelSpec) -> list[SecretNeed]:
    """Every Secret key ``spec`` refers to, in a stable order."""
    needs: list[SecretNeed] = []
    if spec.webhook is not None:
        if spec.webhook.url_secret_ref is not None:
            ref = spec.webhook.url_secret_ref
            needs.append(SecretNeed(ref.name, ref.key, "webhook URL"))
        if spec.webhook.signing_secret_ref is not None:
            ref = spec.webhook.signing_secret_ref
            needs.append(SecretNeed(ref.name, ref.key, "signing key"))
    elif spec.email is not None:
        if spec.email.credentials_secret_ref is not None:
            name = spec.email.credentials_secret_ref.name
            needs.append(SecretNeed(name, BASIC_AUTH_USERNAME, "SMTP username"))
            needs.append(SecretNeed(name, BASIC_AUTH_PASSWORD, "SMTP password"))
    elif spec.slack is not None:
        ref = spec.slack.webhook_url_secret_ref
        needs.append(SecretNeed(ref.name, ref.key, "Slack webhook URL"))
    elif spec.teams is not None:
        ref = spec.teams.webhook_url_secret_ref
        needs.append(SecretNeed(ref.name, ref.key, "Teams webhook URL"))
    elif spec.pagerduty is not None:
        ref = spec.pagerduty.routing_key_secret_ref
        needs.append(SecretNeed(ref.name, ref.key, "PagerDuty routing key"))
    return needs


def secret_names(spec: NotificationChannelSpec) -> list[str]:
    """The distinct Secret names ``spec`` refers to."""
    return list(dict.fromkeys(need.secret for need in required_secrets(spec)))


def _text(value: bytes) -> str | None:
    try:
        return value.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None


def _secret_problem(need: SecretNeed, secrets: SecretsByName) -> str | None:
    data = secrets.get(need.secret)
    if data is None:
        return f"Secret {need.secret!r} ({need.purpose}) not found"
    value = data.get(need.key)
    if value is None:
        return f"Secret {need.secret!r} has no key {need.key!r} ({need.purpose})"
    if not value.strip():
        return f"Secret {need.secret!r} key {need.key!r} ({need.purpose}) is empty"
    if need.purpose.endswith("URL"):
        text = _text(value)
        if text is None or not _URL.match(text):
            return f"Secret {need.secret!r} key {need.key!r} does not hold an http(s) URL"
    elif need.purpose != "signing key" and _text(value) is None:
        return f"Secret {need.secret!r} key {need.key!r} ({need.purpose}) is not UTF-8 text"
    return None


def _timeout_problem(text: str) -> str | None:
    if parse_duration(text) <= timedelta(0):
        return "timeout must be longer than zero"
    return None


def _ca_bundle_problem(encoded: str | None) -> str | None:
    if encoded is None:
        return None
    try:
        pem = _decode_ca_bundle(encoded)
        senders.ssl_context_for(pem)
    except (senders.InvalidCABundle, ChannelConfigError, ssl.SSLError):
        return "caBundle does not hold PEM CA certificates"
    return None


def destination_hosts(spec: NotificationChannelSpec, secrets: SecretsByName) -> list[str]:
    """The hosts the channel connects to, as far as they can be read (a missing Secret gives none)."""
    urls: list[str | None] = []
    if spec.webhook is not None:
        if spec.webhook.url_secret_ref is not None:
            urls.append(
                _secret_text(secrets, spec.webhook.url_secret_ref.name, spec.webhook.url_secret_ref.key)
            )
        else:
            urls.append(spec.webhook.url)
    elif spec.email is not None:
        return [spec.email.host]
    elif spec.slack is not None:
        ref = spec.slack.webhook_url_secret_ref
        urls.append(_secret_text(secrets, ref.name, ref.key))
    elif spec.teams is not None:
        ref = spec.teams.webhook_url_secret_ref
        urls.append(_secret_text(secrets, ref.name, ref.key))
    elif spec.pagerduty is not None:
        urls.append(spec.pagerduty.url)
    hosts: list[str] = []
    for url in urls:
        try:
            host = urlsplit(url).hostname if url else None
        except ValueError:
            host = None
        if host:
            hosts.append(host)
    return hosts


def _secret_text(secrets: SecretsByName, secret: str, key: str) -> str | None:
    value = (secrets.get(secret) or {}).get(key)
    return _text(value) if value is not None else None


def egress_problems(hosts: Iterable[str], egress: EgressPolicy) -> list[str]:
    """The egress refusals of literal IP ``hosts`` (host names are judged when resolved)."""
    return [
        literal_refusal_text(refusal) for host in hosts if (refusal := egress.host_refusal(host)) is not None
    ]


RESOLVE_TIMEOUT = 5.0
"""Seconds a channel check waits for a host name to resolve."""


async def resolved_egress_problems(hosts: Iterable[str], egress: EgressPolicy) -> list[str]:
    """The refusals of host names that resolve now only to refused addresses.

    A name that does not resolve is no problem here: delivery resolves again
    and checks every connection; this only makes the channel's condition
    tell early what deliveries would meet.
    """
    problems: list[str] = []
    for host in hosts:
        if parse_address(host) is not None:
            continue
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                addresses = await system_resolver(host, 0)
        except (OSError, TimeoutError):
            continue
        if addresses and not any(egress.permits(address) for address in addresses):
            problems.append(resolved_refusal_text(host, egress.refusal(addresses[0]) or ""))
    return problems


def channel_problems(
    spec: NotificationChannelSpec, secrets: SecretsByName, *, egress: EgressPolicy | None = None
) -> list[str]:
    """What keeps the channel from working, given the referenced Secrets (empty when it is usable).

    With ``egress``, a destination that is a literal IP address the policy
    refuses is a problem too.
    """
    problems = [
        problem for need in required_secrets(spec) if (problem := _secret_problem(need, secrets)) is not None
    ]
    if egress is not None:
        problems.extend(egress_problems(destination_hosts(spec, secrets), egress))
    timeout: str | None = None
    ca_bundle: str | None = None
    if spec.webhook is not None:
        timeout, ca_bundle = spec.webhook.timeout, spec.webhook.ca_bundle
    elif spec.email is not None:
        timeout, ca_bundle = spec.email.timeout, spec.email.ca_bundle
        if spec.email.credentials_secret_ref is not None and spec.email.security is EmailSecurity.NONE:
            problems.append("SMTP credentials are only sent over TLS: set security to starttls or tls")
    elif spec.slack is not None:
        timeout = spec.slack.timeout
    elif spec.teams is not None:
        timeout = spec.teams.timeout
    elif spec.pagerduty is not None:
        timeout = spec.pagerduty.timeout
    for problem in (_timeout_problem(timeout) if timeout else None, _ca_bundle_problem(ca_bundle)):
        if problem is not None:
            problems.append(problem)
    return problems


def _decode_ca_bundle(encoded: str) -> str:
    try:
        raw = base64.b64decode(encoded.replace("\r", "").replace("\n", ""), validate=True)
        return raw.decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise ChannelConfigError("caBundle does not hold PEM CA certificates") from None


def _value(secrets: SecretsByName, secret: str, key: str) -> bytes:
    data = secrets.get(secret)
    if data is None or key not in data:
        raise ChannelConfigError(f"Secret {secret!r} key {key!r} not found")
    return data[key]


def _string(secrets: SecretsByName, secret: str, key: str) -> str:
    text = _text(_value(secrets, secret, key))
    if not text:
        raise ChannelConfigError(f"Secret {secret!r} key {key!r} is empty or not UTF-8 text")
    return text


def build_channel(
    spec: NotificationChannelSpec, secrets: SecretsByName, *, egress: EgressPolicy | None = None
) -> senders.DeliveryTarget:
    """The sender's view of ``spec``; ChannelConfigError names the first problem found."""
    problems = channel_problems(spec, secrets, egress=egress)
    if problems:
        raise ChannelConfigError(problems[0])
    if spec.webhook is not None:
        hook = spec.webhook
        if hook.url_secret_ref is not None:
            url = _string(secrets, hook.url_secret_ref.name, hook.url_secret_ref.key)
        else:
            url = hook.url or ""
        secret = None
        if hook.signing_secret_ref is not None:
            secret = _value(secrets, hook.signing_secret_ref.name, hook.signing_secret_ref.key).strip()
        return senders.WebhookTarget(
            url=url,
            secret=secret,
            headers=dict(hook.headers or {}),
            timeout=parse_duration(hook.timeout),
            ca_bundle=_decode_ca_bundle(hook.ca_bundle) if hook.ca_bundle else None,
        )
    if spec.email is not None:
        mail = spec.email
        username = password = None
        if mail.credentials_secret_ref is not None:
            username = _string(secrets, mail.credentials_secret_ref.name, BASIC_AUTH_USERNAME)
            password = _string(secrets, mail.credentials_secret_ref.name, BASIC_AUTH_PASSWORD)
        return senders.EmailTarget(
            host=mail.host,
            port=mail.port,
            sender=mail.from_,
            recipients=tuple(mail.to),
            security=senders.SmtpSecurity(mail.security.value),
            username=username,
            password=password,
            timeout=parse_duration(mail.timeout),
            ca_bundle=_decode_ca_bundle(mail.ca_bundle) if mail.ca_bundle else None,
        )
    if spec.slack is not None:
        ref = spec.slack.webhook_url_secret_ref
        return senders.SlackTarget(
            webhook_url=_string(secrets, ref.name, ref.key), timeout=parse_duration(spec.slack.timeout)
        )
    if spec.teams is not None:
        ref = spec.teams.webhook_url_secret_ref
        return senders.TeamsTarget(
            webhook_url=_string(secrets, ref.name, ref.key), timeout=parse_duration(spec.teams.timeout)
        )
    if spec.pagerduty is not None:
        ref = spec.pagerduty.routing_key_secret_ref
        return senders.PagerDutyTarget(
            routing_key=_string(secrets, ref.name, ref.key),
            url=spec.pagerduty.url,
            timeout=parse_duration(spec.pagerduty.timeout),
        )
    raise ChannelConfigError("no channel type is set")  # the model validator makes this unreachable


def spec_problems(error: ValueError) -> tuple[str, ...]:
    """Why a stored channel does not parse, one problem per field, without quoting any value.

    Objects stored before a schema rule existed can break it; what a field
    holds may be a credential (a header value), so only its place and the
    rule's own words are shown.
    """
    if not isinstance(error, ValidationError):
        return ("the channel's spec is not valid",)
    problems: list[str] = []
    for entry in error.errors(include_url=False, include_input=False, include_context=False):
        place = ".".join(str(part) for part in entry["loc"])
        message = str(entry["msg"]).removeprefix("Value error, ")
        problems.append(f"{place}: {message}" if place else message)
    return tuple(dict.fromkeys(problems)) or ("the channel's spec is not valid",)


def channel_type_label(spec: NotificationChannelSpec | None) -> str:
    """The ``channel_type`` metric label: webhook, email, slack, teams, pagerduty or unknown."""
    if spec is None:
        return "unknown"
    return {
        ChannelType.WEBHOOK: "webhook",
        ChannelType.EMAIL: "email",
        ChannelType.SLACK: "slack",
        ChannelType.TEAMS: "teams",
        ChannelType.PAGERDUTY: "pagerduty",
    }[spec.type]
