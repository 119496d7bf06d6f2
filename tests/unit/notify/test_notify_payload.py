from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certctl_operator.api.notification import NotificationEventType, Severity
from certctl_operator.notify.payload import (
    CertificateRef,
    Message,
    email_subject,
    expiry_severity,
    render_email,
    render_pagerduty,
    render_slack,
    render_teams,
    render_webhook,
)

WHEN = datetime(2025, 3, 4, 5, 6, 7, 890, tzinfo=UTC)
EVENT_ID = "5f0c7a5e-2f57-4f7a-9d7e-3b6c1f6d2a10"


def make_message(**overrides: Any) -> Message:
    values: dict[str, Any] = {
        "event_id": EVENT_ID,
        "type": NotificationEventType.EXPIRING,
        "severity": Severity.WARNING,
        "subject": "Certificate shop/web expires in 7 days",
        "message": "The certificate shop/web expires at 2025-03-11T05:06:07Z and has not been renewed.",
        "timestamp": WHEN,
        "certificate": CertificateRef("shop", "web"),
        "details": {"notAfter": "2025-03-11T05:06:07Z", "dnsNames": ["web.shop.example", "shop.example"]},
    }
    values.update(overrides)
    return Message(**values)


# ------------------------------------------------------------------ webhook


def test_webhook_body_is_deterministic_json() -> None:
    first = render_webhook(make_message(details={"b": 1, "a": 2}))
    second = render_webhook(make_message(details={"a": 2, "b": 1}))
    assert first == second
    document = json.loads(first)
    assert list(document) == sorted(document)
    assert document == {
        "specVersion": "certctl.io/notification/v1",
        "id": EVENT_ID,
        "type": "Expiring",
        "severity": "warning",
        "subject": "Certificate shop/web expires in 7 days",
        "message": "The certificate shop/web expires at 2025-03-11T05:06:07Z and has not been renewed.",
        "timestamp": "2025-03-04T05:06:07Z",
        "source": "certctl-operator",
        "certificate": {"namespace": "shop", "name": "web"},
        "details": {"a": 2, "b": 1},
    }
    compact = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert first == compact.encode("utf-8")


def test_webhook_body_without_certificate_and_unicode() -> None:
    body = render_webhook(
        make_message(type=NotificationEventType.TEST, certificate=None, subject="Test \u2713")
    )
    assert json.loads(body)["certificate"] is None
    assert "\u2713".encode() in body


def test_message_requires_aware_timestamp_and_id() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_message(timestamp=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="event_id"):
        make_message(event_id="")


# ------------------------------------------------------------------ slack


def test_slack_payload() -> None:
    payload = render_slack(make_message())
    assert payload["text"] == ":warning: [WARNING] Certificate shop/web expires in 7 days"
    blocks = payload["blocks"]
    assert isinstance(blocks, list)
    assert [block["type"] for block in blocks if isinstance(block, dict)] == [
        "header",
        "section",
        "section",
        "context",
    ]
    fields = json.dumps(blocks[2])
    assert "*Certificate*\\nshop/web" in fields
    assert "web.shop.example, shop.example" in fields
    assert EVENT_ID in json.dumps(blocks[3])


def test_slack_escapes_control_characters_and_respects_limits() -> None:
    payload = render_slack(
        make_message(
            subject="x" * 400,
            message="<!channel> & <https://evil|click>",
            details={f"k{i}": i for i in range(20)},
        )
    )
    blocks = payload["blocks"]
    assert isinstance(blocks, list)
    header, section, fields, _ = blocks
    assert isinstance(header, dict) and isinstance(section, dict) and isinstance(fields, dict)
    header_text = header["text"]
    assert isinstance(header_text, dict)
    assert len(str(header_text["text"])) == 150
    section_text = section["text"]
    assert isinstance(section_text, dict)
    assert section_text["text"] == "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;"
    field_list = fields["fields"]
    assert isinstance(field_list, list)
    assert len(field_list) == 10


# ------------------------------------------------------------------ teams


def test_teams_adaptive_card() -> None:
    payload = render_teams(make_message(severity=Severity.CRITICAL))
    assert payload["type"] == "message"
    attachments = payload["attachments"]
    assert isinstance(attachments, list) and len(attachments) == 1
    attachment = attachments[0]
    assert isinstance(attachment, dict)
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert isinstance(card, dict)
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    body = card["body"]
    assert isinstance(body, list)
    title = body[0]
    assert isinstance(title, dict)
    assert title["text"] == "Certificate shop/web expires in 7 days"
    assert title["color"] == "Attention"
    facts = json.dumps(body[2])
    assert '{"title": "Certificate", "value": "shop/web"}' in facts


# ------------------------------------------------------------------ pagerduty


@pytest.mark.parametrize("severity", list(Severity))
def test_pagerduty_trigger(severity: Severity) -> None:
    event = render_pagerduty(make_message(severity=severity), "R0UT1NGKEY")
    assert event["routing_key"] == "R0UT1NGKEY"
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == EVENT_ID
    payload = event["payload"]
    assert isinstance(payload, dict)
    assert payload["severity"] == severity.value
    assert payload["summary"] == "Certificate shop/web expires in 7 days"
    assert payload["source"] == "certctl-operator"
    assert payload["component"] == "shop/web"
    assert payload["group"] == "shop"
    assert payload["class"] == "Expiring"
    assert payload["timestamp"] == "2025-03-04T05:06:07Z"
    custom = payload["custom_details"]
    assert isinstance(custom, dict)
    assert custom["certificate"] == "shop/web"
    assert custom["event_id"] == EVENT_ID


def test_pagerduty_summary_limit() -> None:
    payload = render_pagerduty(make_message(subject="s" * 5000), "key")["payload"]
    assert isinstance(payload, dict)
    assert len(str(payload["summary"])) == 1024


# ------------------------------------------------------------------ email


def test_email_message() -> None:
    email = render_email(
        make_message(),
        sender="certctl <certctl@example.test>",
        recipients=["ops@example.test", "sec@example.test"],
    )
    assert email["Subject"] == "[certctl] WARNING: Certificate shop/web expires in 7 days"
    assert email["From"] == "certctl <certctl@example.test>"
    assert email["To"] == "ops@example.test, sec@example.test"
    assert email["Message-ID"] == f"<{EVENT_ID}@certctl-operator>"
    assert email["X-Certctl-Event-Id"] == EVENT_ID
    assert email.get_content_type() == "text/plain"
    body = email.get_content()
    assert body.startswith("The certificate shop/web expires at 2025-03-11T05:06:07Z")
    assert "Certificate: shop/web" in body
    assert f"Event ID:    {EVENT_ID}" in body
    assert "  dnsNames: web.shop.example, shop.example" in body


def test_email_subject_cannot_inject_headers() -> None:
    message = make_message(subject="hello\r\nBcc: victim@example.test")
    email = render_email(message, sender="a@example.test", recipients=["b@example.test"])
    assert email["Bcc"] is None
    assert email_subject(message) == "[certctl] WARNING: hello Bcc: victim@example.test"


def test_expiry_severity() -> None:
    assert expiry_severity(timedelta(days=30)) is Severity.WARNING
    assert expiry_severity(timedelta(days=14)) is Severity.WARNING
    assert expiry_severity(timedelta(days=7)) is Severity.CRITICAL
    assert expiry_severity(timedelta(0)) is Severity.CRITICAL
