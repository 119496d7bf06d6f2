"""A NotificationChannel's status: its type and a Ready condition whose reason names the kind of problem."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from certctl_operator.api import ConditionStatus, NotificationChannelSpec, NotificationChannelStatus
from certctl_operator.status.channels import channel_status, unparsable_channel_status

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

WEBHOOK = NotificationChannelSpec.model_validate(
    {"webhook": {"urlSecretRef": {"name": "hook", "key": "url"}, "timeout": "5s"}}
)

EGRESS_REFUSAL = (
    "egress policy refuses 169.254.169.254, a cloud metadata address, which notifications reach only "
    "when the egress allow-list (CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS) names exactly this address"
)


def test_channel_status_ready_and_not_ready() -> None:
    ready = channel_status(NotificationChannelStatus(), WEBHOOK, [], now=NOW, generation=3)
    assert ready.type is not None and ready.type.value == "Webhook"
    assert ready.observed_generation == 3
    (condition,) = ready.conditions
    assert (condition.type, condition.status, condition.reason) == ("Ready", ConditionStatus.TRUE, "Ready")
    assert condition.observed_generation == 3

    later = NOW + timedelta(minutes=5)
    missing = channel_status(
        ready, WEBHOOK, ["Secret 'hook' (webhook URL) not found"], now=later, generation=3
    )
    (condition,) = missing.conditions
    assert (condition.status, condition.reason) == (ConditionStatus.FALSE, "SecretNotFound")
    assert condition.message == "Secret 'hook' (webhook URL) not found"
    assert condition.last_transition_time == later

    problems = ["timeout must be longer than zero", "caBundle does not hold PEM CA certificates"]
    invalid = channel_status(missing, WEBHOOK, problems, now=later + timedelta(minutes=1), generation=4)
    (condition,) = invalid.conditions
    assert (condition.status, condition.reason) == (ConditionStatus.FALSE, "InvalidConfiguration")
    assert condition.message == "; ".join(problems)
    assert condition.last_transition_time == later, "unchanged status keeps its transition time"


def test_egress_refusals_make_the_reason_egress_denied() -> None:
    status = channel_status(NotificationChannelStatus(), WEBHOOK, [EGRESS_REFUSAL], now=NOW, generation=1)
    (condition,) = status.conditions
    assert (condition.status, condition.reason, condition.message) == (
        ConditionStatus.FALSE,
        "EgressDenied",
        EGRESS_REFUSAL,
    )


def stored(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "legacy", "namespace": "a", "generation": 2},
        "spec": spec,
        "status": status if status is not None else {"type": "Webhook", "conditions": []},
    }


def test_a_stored_spec_the_schema_now_refuses_is_not_ready_and_invalid() -> None:
    problem = (
        "spec.webhook.headers: header 'X-Token' is invalid: header values must not contain CR, LF, NUL "
        "or other control characters (a tab is allowed)"
    )
    body = stored({"webhook": {"url": "http://127.0.0.1/x", "headers": {"X-Token": "s3cr3t\r\nX-Evil: 1"}}})
    before, after = unparsable_channel_status(body, (problem,), now=NOW)
    assert before.type is not None and before.type.value == "Webhook"
    (condition,) = after.conditions
    assert (condition.status, condition.reason) == (ConditionStatus.FALSE, "InvalidConfiguration")
    assert condition.message == problem
    assert "s3cr3t" not in condition.message
    assert after.observed_generation == 2 and after.type is not None and after.type.value == "Webhook"


def test_an_unparsable_channel_gets_a_type_only_when_exactly_one_is_configured() -> None:
    _, slack = unparsable_channel_status(stored({"slack": {"timeout": "zero"}}, {}), (), now=NOW)
    assert slack.type is not None and slack.type.value == "Slack"
    (condition,) = slack.conditions
    assert condition.message == "the channel's spec is not valid"
    _, both = unparsable_channel_status(stored({"slack": {}, "teams": {}}, {}), ("two types",), now=NOW)
    assert both.type is None
    _, damaged = unparsable_channel_status(stored({}, {"type": 17, "conditions": "x"}), ("bad",), now=NOW)
    assert damaged.type is None and damaged.conditions[0].reason == "InvalidConfiguration"
