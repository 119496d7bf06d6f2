"""The issuance policy's spec checks: key encodings in force, and specs the models refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from certctl_operator.api import API_GROUP_VERSION, ManagedCertificate, ManagedCertificateSpec
from certctl_operator.api.certificate import PrivateKeyAlgorithm, PrivateKeyEncoding, PrivateKeySpec
from certctl_operator.pki import KeyEncoding
from certctl_operator.policy.issuance import (
    Reason,
    key_encoding_for,
    spec_error_message,
    spec_problems,
)
from certctl_operator.status.certificates import (
    status_unreadable,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def body(**spec: Any) -> dict[str, Any]:
    base = {"secretName": "web-tls", "dnsNames": ["web.example.com"], "issuerRef": {"name": "ca"}}
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": "ManagedCertificate",
        "metadata": {"name": "web", "namespace": "demo", "generation": 3},
        "spec": {**base, **spec},
    }


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ({}, KeyEncoding.PKCS1),
        ({"algorithm": "ECDSA"}, KeyEncoding.PKCS1),
        ({"algorithm": "Ed25519"}, KeyEncoding.PKCS8),
        ({"algorithm": "RSA", "encoding": "PKCS8"}, KeyEncoding.PKCS8),
        ({"algorithm": "ECDSA", "encoding": "PKCS1"}, KeyEncoding.PKCS1),
    ],
)
def test_key_encoding_in_force(key: dict[str, str], expected: KeyEncoding) -> None:
    spec = ManagedCertificate.model_validate(body(privateKey=key)).spec
    assert key_encoding_for(spec) is expected
    assert spec_problems(spec, "demo", timedelta(seconds=10)) == []


def test_a_spec_built_without_validation_still_reports_ed25519_pkcs1() -> None:
    spec = ManagedCertificate.model_validate(body()).spec
    key = PrivateKeySpec.model_construct(
        algorithm=PrivateKeyAlgorithm.ED25519, size=None, encoding=PrivateKeyEncoding.PKCS1
    )
    unchecked = ManagedCertificateSpec.model_construct(**{**dict(spec), "private_key": key})
    assert spec_problems(unchecked, "demo", timedelta(seconds=10)) == [
        "Ed25519 private keys have no PKCS1 encoding: leave privateKey.encoding unset or set it to PKCS8"
    ]


def refusal(manifest: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as excinfo:
        ManagedCertificate.model_validate(manifest)
    return excinfo.value


def test_the_message_names_each_field_and_reason_without_pydantic_noise() -> None:
    error = refusal(body(duration="9999999999999999999999999999d", renewBeforePercentage=0))
    message = spec_error_message(error)
    assert message == (
        "invalid spec: spec.duration: must be at most 36500d (100 years); "
        "spec.renewBeforePercentage: Input should be greater than or equal to 1"
    )
    cross = spec_error_message(refusal(body(privateKey={"algorithm": "Ed25519", "encoding": "PKCS1"})))
    assert cross.startswith("invalid spec: spec.privateKey: Ed25519 private keys have no PKCS1 encoding")
    assert "errors.pydantic.dev" not in message and "input_value" not in message


def test_an_unreadable_spec_gets_invalid_spec_conditions_and_keeps_the_rest() -> None:
    manifest = body(duration="36501d")
    manifest["status"] = {
        "revision": 2,
        "serialNumber": "0abc",
        "nextAttemptTime": "2026-03-01T11:00:00Z",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Issued",
                "message": "ok",
                "lastTransitionTime": "2026-02-01T00:00:00Z",
            }
        ],
    }
    message = spec_error_message(refusal(manifest))
    current, wanted = status_unreadable(manifest, message, now=NOW)
    assert current.revision == wanted.revision == 2 and wanted.serial_number == "0abc"
    assert wanted.next_attempt_time is None
    assert wanted.observed_generation == 3
    ready = {c.type: c for c in wanted.conditions}["Ready"]
    assert (ready.status, ready.reason, ready.message) == ("False", Reason.INVALID_SPEC, message)
    assert ready.last_transition_time == NOW and ready.observed_generation == 3
    issuing = {c.type: c for c in wanted.conditions}["Issuing"]
    assert (issuing.status, issuing.reason) == ("False", Reason.INVALID_SPEC)


def test_an_unreadable_status_is_replaced() -> None:
    manifest = body(duration="36501d")
    manifest["status"] = {"revision": "many"}
    current, wanted = status_unreadable(manifest, "invalid spec: x", now=NOW)
    assert current.revision is None and wanted.revision is None
    assert [c.type for c in wanted.conditions] == ["Ready", "Issuing"]
