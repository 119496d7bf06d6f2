"""NotificationChannel + Secrets -> sender channel: requirements, problems and assembly."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from tests.support.receivers import make_self_signed

from certctl_operator.api import NotificationChannelSpec
from certctl_operator.api.notification import NotificationChannel
from certctl_operator.notify import senders
from certctl_operator.notify.channel_config import (
    ChannelConfigError,
    SecretNeed,
    build_channel,
    channel_problems,
    channel_type_label,
    destination_hosts,
    required_secrets,
    resolved_egress_problems,
    secret_names,
    spec_problems,
)
from certctl_operator.notify.egress import EgressPolicy, parse_networks

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CA_PEM = make_self_signed().cert_pem
CA_BUNDLE = base64.b64encode(CA_PEM.encode()).decode()


def spec(**fields: Any) -> NotificationChannelSpec:
    return NotificationChannelSpec.model_validate(fields)


WEBHOOK = spec(
    webhook={
        "urlSecretRef": {"name": "hook", "key": "url"},
        "signingSecretRef": {"name": "hook", "key": "signing"},
        "headers": {"X-Team": "platform"},
        "timeout": "5s",
        "caBundle": CA_BUNDLE,
    }
)
EMAIL = spec(
    email={
        "host": "smtp.example.test",
        "port": 2525,
        "security": "tls",
        "credentialsSecretRef": {"name": "login"},
        "from": "certctl@example.test",
        "to": ["a@example.test", "b@example.test"],
        "timeout": "20s",
        "caBundle": CA_BUNDLE,
    }
)
SLACK = spec(slack={"webhookURLSecretRef": {"name": "chat", "key": "slack"}, "timeout": "3s"})
TEAMS = spec(teams={"webhookURLSecretRef": {"name": "chat", "key": "teams"}})
PAGERDUTY = spec(
    pagerduty={
        "routingKeySecretRef": {"name": "pd", "key": "key"},
        "url": "https://events.eu.pagerduty.com/v2/enqueue",
    }
)

SECRETS: dict[str, dict[str, bytes] | None] = {
    "hook": {"url": b"https://hooks.example.test/t0ken\n", "signing": b"  s3cret-key \n"},
    "login": {"username": b"certctl", "password": b"pa55word"},
    "chat": {"slack": b"https://hooks.slack.test/services/T/B/X", "teams": b"https://teams.example.test/wf"},
    "pd": {"key": b"R0UT1NG"},
}


def test_required_secrets_per_channel_type() -> None:
    assert required_secrets(WEBHOOK) == [
        SecretNeed("hook", "url", "webhook URL"),
        SecretNeed("hook", "signing", "signing key"),
    ]
    assert secret_names(WEBHOOK) == ["hook"]
    assert [(need.secret, need.key) for need in required_secrets(EMAIL)] == [
        ("login", "username"),
        ("login", "password"),
    ]
    assert required_secrets(SLACK) == [SecretNeed("chat", "slack", "Slack webhook URL")]
    assert required_secrets(TEAMS) == [SecretNeed("chat", "teams", "Teams webhook URL")]
    assert required_secrets(PAGERDUTY) == [SecretNeed("pd", "key", "PagerDuty routing key")]
    assert required_secrets(spec(webhook={"url": "http://127.0.0.1/x"})) == []
    assert required_secrets(spec(email={"host": "h", "from": "a@b.c", "to": ["c@d.e"]})) == []


@pytest.mark.parametrize("channel", [WEBHOOK, EMAIL, SLACK, TEAMS, PAGERDUTY], ids=lambda c: c.type.value)
def test_a_complete_channel_has_no_problems(channel: NotificationChannelSpec) -> None:
    assert channel_problems(channel, SECRETS) == []


@pytest.mark.parametrize(
    ("secrets", "expected"),
    [
        ({}, "Secret 'hook' (webhook URL) not found"),
        ({"hook": None}, "Secret 'hook' (webhook URL) not found"),
        ({"hook": {"signing": b"k"}}, "Secret 'hook' has no key 'url' (webhook URL)"),
        ({"hook": {"url": b"  \n", "signing": b"k"}}, "Secret 'hook' key 'url' (webhook URL) is empty"),
        (
            {"hook": {"url": b"ftp://x", "signing": b"k"}},
            "Secret 'hook' key 'url' does not hold an http(s) URL",
        ),
        (
            {"hook": {"url": b"\xff\xfe", "signing": b"k"}},
            "Secret 'hook' key 'url' does not hold an http(s) URL",
        ),
    ],
)
def test_webhook_secret_problems_name_the_secret_and_key_but_not_the_value(
    secrets: dict[str, dict[str, bytes] | None], expected: str
) -> None:
    problems = channel_problems(WEBHOOK, secrets)
    assert problems[0] == expected
    assert all("ftp://x" not in problem for problem in problems)


def test_binary_signing_keys_are_fine_but_other_values_must_be_text() -> None:
    assert channel_problems(WEBHOOK, {"hook": {"url": b"https://h.test/", "signing": b"\xff\x00\x01"}}) == []
    assert channel_problems(PAGERDUTY, {"pd": {"key": b"\xff\xfe"}}) == [
        "Secret 'pd' key 'key' (PagerDuty routing key) is not UTF-8 text"
    ]


def test_email_credentials_need_tls_and_settings_are_checked() -> None:
    plain = spec(
        email={
            "host": "smtp",
            "security": "none",
            "credentialsSecretRef": {"name": "login"},
            "from": "a@b.c",
            "to": ["c@d.e"],
        }
    )
    assert channel_problems(plain, SECRETS) == [
        "SMTP credentials are only sent over TLS: set security to starttls or tls"
    ]
    zero = spec(webhook={"url": "http://127.0.0.1/", "timeout": "0s"})
    assert channel_problems(zero, {}) == ["timeout must be longer than zero"]
    not_pem = base64.b64encode(b"not a certificate").decode()
    bad_ca = spec(webhook={"url": "https://127.0.0.1/", "caBundle": not_pem})
    assert channel_problems(bad_ca, {}) == ["caBundle does not hold PEM CA certificates"]
    not_ascii = base64.b64encode(b"\xff\xfe").decode()
    assert channel_problems(spec(webhook={"url": "https://127.0.0.1/", "caBundle": not_ascii}), {}) == [
        "caBundle does not hold PEM CA certificates"
    ]
    assert channel_problems(
        spec(slack={"webhookURLSecretRef": {"name": "chat", "key": "slack"}, "timeout": "0s"}), SECRETS
    )
    assert channel_problems(
        spec(teams={"webhookURLSecretRef": {"name": "chat", "key": "teams"}, "timeout": "0ms"}), SECRETS
    )
    assert channel_problems(
        spec(pagerduty={"routingKeySecretRef": {"name": "pd", "key": "key"}, "timeout": "0s"}), SECRETS
    ) == ["timeout must be longer than zero"]


def test_build_webhook_channel() -> None:
    channel = build_channel(WEBHOOK, SECRETS)
    assert channel == senders.WebhookTarget(
        url="https://hooks.example.test/t0ken",
        secret=b"s3cret-key",
        headers={"X-Team": "platform"},
        timeout=timedelta(seconds=5),
        ca_bundle=CA_PEM,
    )
    inline = build_channel(spec(webhook={"url": "http://127.0.0.1:8099/certctl"}), {})
    assert inline == senders.WebhookTarget(url="http://127.0.0.1:8099/certctl", timeout=timedelta(seconds=10))


def test_build_email_channel() -> None:
    channel = build_channel(EMAIL, SECRETS)
    assert channel == senders.EmailTarget(
        host="smtp.example.test",
        port=2525,
        sender="certctl@example.test",
        recipients=("a@example.test", "b@example.test"),
        security=senders.SmtpSecurity.TLS,
        username="certctl",
        password="pa55word",
        timeout=timedelta(seconds=20),
        ca_bundle=CA_PEM,
    )
    anonymous = build_channel(spec(email={"host": "h", "from": "a@b.c", "to": ["c@d.e"]}), {})
    assert isinstance(anonymous, senders.EmailTarget)
    assert (anonymous.username, anonymous.password, anonymous.port) == (None, None, 587)
    assert anonymous.security is senders.SmtpSecurity.STARTTLS


def test_build_chat_and_paging_channels() -> None:
    assert build_channel(SLACK, SECRETS) == senders.SlackTarget(
        webhook_url="https://hooks.slack.test/services/T/B/X", timeout=timedelta(seconds=3)
    )
    assert build_channel(TEAMS, SECRETS) == senders.TeamsTarget(
        webhook_url="https://teams.example.test/wf", timeout=timedelta(seconds=10)
    )
    assert build_channel(PAGERDUTY, SECRETS) == senders.PagerDutyTarget(
        routing_key="R0UT1NG", url="https://events.eu.pagerduty.com/v2/enqueue", timeout=timedelta(seconds=10)
    )
    default = build_channel(spec(pagerduty={"routingKeySecretRef": {"name": "pd", "key": "key"}}), SECRETS)
    assert isinstance(default, senders.PagerDutyTarget)
    assert default.url == senders.PAGERDUTY_EVENTS_URL


def test_build_refuses_a_channel_with_problems() -> None:
    with pytest.raises(ChannelConfigError, match="Secret 'pd' \\(PagerDuty routing key\\) not found"):
        build_channel(PAGERDUTY, {})


def test_channel_type_labels() -> None:
    assert [channel_type_label(c) for c in (WEBHOOK, EMAIL, SLACK, TEAMS, PAGERDUTY, None)] == [
        "webhook",
        "email",
        "slack",
        "teams",
        "pagerduty",
        "unknown",
    ]


# --------------------------------------------------------------------------- egress and stored specs


def test_destination_hosts_of_every_channel_type() -> None:
    assert destination_hosts(WEBHOOK, SECRETS) == ["hooks.example.test"]
    assert destination_hosts(EMAIL, SECRETS) == ["smtp.example.test"]
    assert destination_hosts(SLACK, SECRETS) == ["hooks.slack.test"]
    assert destination_hosts(TEAMS, SECRETS) == ["teams.example.test"]
    assert destination_hosts(PAGERDUTY, SECRETS) == ["events.eu.pagerduty.com"]
    inline = spec(webhook={"url": "http://[fd00:ec2::254]:8080/x"})
    assert destination_hosts(inline, {}) == ["fd00:ec2::254"]
    assert destination_hosts(WEBHOOK, {}) == [], "a missing Secret is its own problem"


def test_literal_destinations_are_judged_by_the_egress_policy() -> None:
    policy = EgressPolicy()
    metadata = spec(webhook={"url": "http://169.254.169.254/latest/meta-data/"})
    assert channel_problems(metadata, {}, egress=policy) == [
        "egress policy refuses 169.254.169.254, a cloud metadata address, which notifications reach only "
        "when the egress allow-list (CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS) names exactly this address"
    ]
    assert channel_problems(metadata, {}) == [], "no policy, no egress problems"
    smtp = spec(email={"host": "10.1.2.3", "from": "a@example.test", "to": ["b@example.test"]})
    (problem,) = channel_problems(smtp, {}, egress=policy)
    assert problem.startswith(
        "egress policy refuses 10.1.2.3, a private address outside the egress allow-list"
    )
    allowed = EgressPolicy(allowed=parse_networks(["10.0.0.0/8"]))
    assert channel_problems(smtp, {}, egress=allowed) == []
    slack = {"chat": {"slack": b"https://127.0.0.1:8443/services/T/B/X"}}
    (problem,) = channel_problems(SLACK, slack, egress=policy)
    assert "127.0.0.1, a loopback address" in problem
    assert "services" not in problem, "the URL, a credential, is never quoted"
    assert channel_problems(WEBHOOK, SECRETS, egress=policy) == [], "names are judged when resolved"
    with pytest.raises(ChannelConfigError, match=r"egress policy refuses 169\.254\.169\.254"):
        build_channel(metadata, {}, egress=policy)


async def test_resolved_names_are_judged_when_asked() -> None:
    problems = await resolved_egress_problems(["localhost", "127.0.0.1"], EgressPolicy())
    (problem,) = problems
    assert problem.startswith("egress policy refuses localhost: it resolves to ")
    assert "a loopback address" in problem
    allowed = EgressPolicy(allowed=parse_networks(["127.0.0.0/8", "::1/128"]))
    assert await resolved_egress_problems(["localhost"], allowed) == []
    assert await resolved_egress_problems(["does-not-resolve.invalid"], EgressPolicy()) == []


def test_a_stored_spec_the_schema_now_refuses_is_described_without_its_values() -> None:
    body = {
        "metadata": {"name": "legacy", "namespace": "a", "generation": 2},
        "spec": {"webhook": {"url": "http://127.0.0.1/x", "headers": {"X-Token": "s3cr3t\r\nX-Evil: 1"}}},
        "status": {"type": "Webhook", "conditions": []},
    }
    with pytest.raises(ValidationError) as error:
        NotificationChannel.from_body(
            {"apiVersion": "certctl.io/v1alpha1", "kind": "NotificationChannel", **body}
        )
    problems = spec_problems(error.value)
    assert problems == (
        "spec.webhook.headers: header 'X-Token' is invalid: header values must not contain CR, LF, NUL "
        "or other control characters (a tab is allowed)",
    )
    assert spec_problems(ValueError("anything")) == ("the channel's spec is not valid",)
    assert not any("s3cr3t" in problem for problem in problems)
