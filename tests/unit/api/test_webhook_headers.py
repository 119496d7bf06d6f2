"""Webhook header rules: the model and the CRD's CEL rules refuse the same headers, in the same words."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from certctl_operator.api.notification import (
    HEADER_NAME_RULE,
    HEADER_VALUE_RULE,
    WebhookChannel,
    header_problems,
)
from certctl_operator.crdgen import model_schema

GOOD = {
    "X-Team": "platform",
    "x_custom.1": "a\tb",
    "!#$%&'*+-.^_`|~": "symbols",
    "Authorization": "Bearer abc.def",
    "X-Empty": "",
    "X-Unicode": "caf\u00e9",
}


def hook(headers: dict[str, str]) -> WebhookChannel:
    return WebhookChannel.model_validate({"url": "https://hooks.example.test/x", "headers": headers})


def test_valid_headers_pass() -> None:
    assert hook(GOOD).headers == GOOD
    assert header_problems(GOOD) == []


@pytest.mark.parametrize(
    "name", ["X Team", "X-Team:", "", "X-Team\r\n", "X-Team\n", "Caf\u00e9", "X(Team)", "X/Team", "X@Team"]
)
def test_names_must_be_tokens(name: str) -> None:
    with pytest.raises(ValidationError, match="header names must be HTTP tokens"):
        hook({name: "ok"})
    (problem,) = header_problems({name: "ok"})
    assert problem.startswith(f"header name {name!r} is invalid")


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00", "\x1b[31m", "a\x7f"])
def test_values_must_not_hold_control_characters(value: str) -> None:
    with pytest.raises(ValidationError, match="header values must not contain CR, LF, NUL"):
        hook({"X-Token": value})
    (problem,) = header_problems({"X-Token": value})
    assert problem == f"header 'X-Token' is invalid: {HEADER_VALUE_RULE.message}"
    assert value not in problem


def test_the_crd_carries_the_same_rules() -> None:
    schema = model_schema(WebhookChannel, "webhook")
    rules = schema["properties"]["headers"]["x-kubernetes-validations"]
    assert rules == [HEADER_NAME_RULE.schema(), HEADER_VALUE_RULE.schema()]
    # The CEL source escapes the backslashes of the RE2 pattern once more.
    assert "'[\\\\x00-\\\\x08\\\\x0a-\\\\x1f\\\\x7f]'" in HEADER_VALUE_RULE.rule
    assert "\\'" in HEADER_NAME_RULE.rule
