"""One notification, rendered for each kind of channel.

A :class:`Message` is built once per NotificationEvent and rendered the same
way on every attempt, so a retry sends byte-for-byte the same body (the
webhook ``Idempotency-Key`` and the PagerDuty ``dedup_key`` are its
``event_id``).

Formats:

* generic webhook: the JSON document of :func:`webhook_document`, encoded by
  :func:`encode_json` with sorted keys, compact separators and UTF-8, so equal
  messages give equal bytes (which is what the signature covers);
* Slack incoming webhook: ``text`` (the notification fallback) and Block Kit
  ``blocks``;
* Microsoft Teams: an Adaptive Card (schema 1.4) in a ``message`` envelope
  with one ``application/vnd.microsoft.card.adaptive`` attachment. That is
  the format accepted by the Teams Workflows "post to a channel when a
  webhook request is received" flows that replace the retired Office 365
  connectors, and by the remaining incoming webhooks; the legacy
  MessageCard format is not produced;
* PagerDuty Events API v2: a ``trigger`` event, ``dedup_key`` = event id;
* email: a plain-text :class:`email.message.EmailMessage`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TypeAlias

from certctl_operator import API_GROUP
from certctl_operator.api.notification import NotificationEventType, Severity
from certctl_operator.policy.clock import format_rfc3339, require_aware

JSONValue: TypeAlias = "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"
JSONObject: TypeAlias = dict[str, JSONValue]

WEBHOOK_SPEC_VERSION = f"{API_GROUP}/notification/v1"
DEFAULT_SOURCE = "certctl-operator"
DEFAULT_SUBJECT_PREFIX = "[certctl]"

# Limits of the receiving services; longer text is cut with an ellipsis.
SLACK_HEADER_LIMIT = 150
SLACK_TEXT_LIMIT = 3000
SLACK_FIELD_LIMIT = 2000
SLACK_MAX_FIELDS = 10
PAGERDUTY_SUMMARY_LIMIT = 1024
PAGERDUTY_DEDUP_KEY_LIMIT = 255
EMAIL_SUBJECT_LIMIT = 200


DEFAULT_SEVERITY: Mapping[NotificationEventType, Severity] = {
    NotificationEventType.ISSUED: Severity.INFO,
    NotificationEventType.RENEWED: Severity.INFO,
    NotificationEventType.RENEWAL_FAILED: Severity.CRITICAL,
    NotificationEventType.EXPIRING: Severity.WARNING,
    NotificationEventType.REVOKED: Severity.WARNING,
    NotificationEventType.TEST: Severity.INFO,
}


def expiry_severity(threshold: timedelta) -> Severity:
    """Severity of an expiry alert: critical from seven days out (and once expired), else warning."""
    return Severity.CRITICAL if threshold <= timedelta(days=7) else Severity.WARNING


@dataclass(frozen=True)
class CertificateRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Message:
    """Everything a channel is told about one event.

    ``event_id`` is stable across retries (the NotificationEvent's uid);
    ``timestamp`` is when the event happened, not when an attempt is made.
    """

    event_id: str
    type: NotificationEventType
    severity: Severity
    subject: str
    message: str
    timestamp: datetime
    certificate: CertificateRef | None = None
    details: Mapping[str, JSONValue] = field(default_factory=dict)
    source: str = DEFAULT_SOURCE

    def __post_init__(self) -> None:
        require_aware(self.timestamp, "timestamp")
        if not self.event_id:
            raise ValueError("event_id must not be empty")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _detail_text(value: JSONValue) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(str(item) for item in value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def encode_json(document: JSONValue) -> bytes:
    """Deterministic JSON bytes: sorted keys, compact separators, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def webhook_document(message: Message) -> JSONObject:
    """The generic webhook body.

    ``{"specVersion", "id", "type", "severity", "subject", "message",
    "timestamp", "source", "certificate": {"namespace", "name"} | null,
    "details": {...}}``; ``timestamp`` is RFC 3339 UTC.
    """
    certificate: JSONValue = None
    if message.certificate is not None:
        certificate = {"namespace": message.certificate.namespace, "name": message.certificate.name}
    return {
        "specVersion": WEBHOOK_SPEC_VERSION,
        "id": message.event_id,
        "type": message.type.value,
        "severity": message.severity.value,
        "subject": message.subject,
        "message": message.message,
        "timestamp": format_rfc3339(message.timestamp),
        "source": message.source,
        "certificate": certificate,
        "details": dict(message.details),
    }


def render_webhook(message: Message) -> bytes:
    """The generic webhook body as the exact bytes that are signed and sent."""
    return encode_json(webhook_document(message))


def _facts(message: Message) -> list[tuple[str, str]]:
    facts = [("Event", message.type.value), ("Severity", message.severity.value)]
    if message.certificate is not None:
        facts.append(("Certificate", str(message.certificate)))
    facts.extend((key, _detail_text(value)) for key, value in sorted(message.details.items()))
    return facts


_SLACK_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SLACK_SPECIAL = re.compile(r"[&<>]")

_SLACK_ICON = {
    Severity.INFO: ":information_source:",
    Severity.WARNING: ":warning:",
    Severity.CRITICAL: ":rotating_light:",
}


def _slack_escape(text: str) -> str:
    return _SLACK_SPECIAL.sub(lambda match: _SLACK_ESCAPES[match.group(0)], text)


def render_slack(message: Message) -> JSONObject:
    """A Slack incoming-webhook payload: fallback ``text`` plus Block Kit ``blocks``."""
    icon = _SLACK_ICON[message.severity]
    fields: list[JSONValue] = [
        {
            "type": "mrkdwn",
            "text": _cut(f"*{_slack_escape(title)}*\n{_slack_escape(value)}", SLACK_FIELD_LIMIT),
        }
        for title, value in _facts(message)[:SLACK_MAX_FIELDS]
    ]
    context = (
        f"{_slack_escape(message.source)} | {format_rfc3339(message.timestamp)} | "
        f"event {_slack_escape(message.event_id)}"
    )
    blocks: list[JSONValue] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(_one_line(message.subject), SLACK_HEADER_LIMIT)},
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _cut(_slack_escape(message.message), SLACK_TEXT_LIMIT)},
        },
        {"type": "section", "fields": fields},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(context, SLACK_TEXT_LIMIT)}]},
    ]
    text = f"{icon} [{message.severity.value.upper()}] {_slack_escape(_one_line(message.subject))}"
    return {"text": _cut(text, SLACK_TEXT_LIMIT), "blocks": blocks}


_TEAMS_COLOR = {Severity.INFO: "Accent", Severity.WARNING: "Warning", Severity.CRITICAL: "Attention"}


def render_teams(message: Message) -> JSONObject:
    """A Teams message carrying one Adaptive Card (schema 1.4)."""
    facts: list[JSONValue] = [{"title": title, "value": value} for title, value in _facts(message)]
    card: JSONObject = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": [
            {
                "type": "TextBlock",
                "text": _one_line(message.subject),
                "weight": "Bolder",
                "size": "Medium",
                "color": _TEAMS_COLOR[message.severity],
                "wrap": True,
            },
            {"type": "TextBlock", "text": message.message, "wrap": True},
            {"type": "FactSet", "facts": facts},
            {
                "type": "TextBlock",
                "text": f"{message.source} | {format_rfc3339(message.timestamp)} | event {message.event_id}",
                "isSubtle": True,
                "size": "Small",
                "wrap": True,
            },
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def render_pagerduty(message: Message, routing_key: str) -> JSONObject:
    """A PagerDuty Events API v2 ``trigger`` event; retries share the ``dedup_key``."""
    custom: JSONObject = {
        "message": message.message,
        "event_id": message.event_id,
        "type": message.type.value,
    }
    if message.certificate is not None:
        custom["certificate"] = str(message.certificate)
    if message.details:
        custom["details"] = dict(message.details)
    payload: JSONObject = {
        "summary": _cut(_one_line(message.subject), PAGERDUTY_SUMMARY_LIMIT),
        "source": message.source,
        "severity": message.severity.value,
        "timestamp": format_rfc3339(message.timestamp),
        "component": str(message.certificate) if message.certificate else message.source,
        "class": message.type.value,
        "custom_details": custom,
    }
    if message.certificate is not None:
        payload["group"] = message.certificate.namespace
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": message.event_id[:PAGERDUTY_DEDUP_KEY_LIMIT],
        "client": DEFAULT_SOURCE,
        "payload": payload,
    }


def email_subject(message: Message, prefix: str = DEFAULT_SUBJECT_PREFIX) -> str:
    """``[certctl] WARNING: <subject>`` on one line."""
    subject = f"{prefix} {message.severity.value.upper()}: {_one_line(message.subject)}".strip()
    return _cut(subject, EMAIL_SUBJECT_LIMIT)


def email_body(message: Message) -> str:
    """The readable plain-text body: the message, a fact table, the details."""
    rows = [("Event", message.type.value), ("Severity", message.severity.value)]
    if message.certificate is not None:
        rows.append(("Certificate", str(message.certificate)))
    rows.append(("Time", format_rfc3339(message.timestamp)))
    rows.append(("Event ID", message.event_id))
    width = max(len(title) for title, _ in rows) + 2
    lines = [message.message.strip(), ""]
    lines.extend(f"{title + ':':<{width}}{value}" for title, value in rows)
    if message.details:
        lines.extend(["", "Details:"])
        lines.extend(f"  {key}: {_detail_text(value)}" for key, value in sorted(message.details.items()))
    lines.extend(["", "-- ", f"Sent by {message.source}."])
    return "\n".join(lines) + "\n"


_MESSAGE_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.\-_]")


def render_email(
    message: Message,
    *,
    sender: str,
    recipients: Sequence[str],
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
) -> EmailMessage:
    """A plain-text email; its Message-ID derives from the event id, so retries are recognisable."""
    email = EmailMessage()
    email["Subject"] = email_subject(message, subject_prefix)
    email["From"] = sender
    email["To"] = ", ".join(recipients)
    email["Date"] = format_datetime(message.timestamp)
    email["Message-ID"] = f"<{_MESSAGE_ID_UNSAFE.sub('-', message.event_id)}@{DEFAULT_SOURCE}>"
    email["X-Certctl-Event-Id"] = message.event_id
    email["X-Certctl-Event-Type"] = message.type.value
    email.set_content(email_body(message))
    return email
