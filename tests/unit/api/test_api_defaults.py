"""Schema defaults never clash with the validation rules, and every duration is bounded.

Each defaulted field is checked next to the values of other fields that a rule
compares it with; the same combinations go through the real API server in
tests/integration/test_api_admission.py.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from certctl_operator.api import (
    API_GROUP_VERSION,
    CRLSettings,
    ManagedCertificate,
    PrivateKeyAlgorithm,
    PrivateKeySpec,
    parse_object,
)
from certctl_operator.api.certificate import PrivateKeyEncoding
from certctl_operator.durations import (
    DURATION_PATTERN,
    MAX_DURATION,
    MAX_DURATION_SECONDS,
    DurationError,
    duration_seconds,
)


def certificate(**spec: Any) -> dict[str, Any]:
    base = {"secretName": "web-tls", "dnsNames": ["web.example.com"], "issuerRef": {"name": "ca"}}
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": "ManagedCertificate",
        "metadata": {"name": "web"},
        "spec": {**base, **spec},
    }


# --------------------------------------------------------------------------- privateKey.encoding


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        (PrivateKeyAlgorithm.RSA, PrivateKeyEncoding.PKCS1),
        (PrivateKeyAlgorithm.ECDSA, PrivateKeyEncoding.PKCS1),
        (PrivateKeyAlgorithm.ED25519, PrivateKeyEncoding.PKCS8),
    ],
)
def test_an_unset_encoding_is_the_algorithms_own(
    algorithm: PrivateKeyAlgorithm, expected: PrivateKeyEncoding
) -> None:
    key = PrivateKeySpec(algorithm=algorithm)
    assert key.encoding is None
    assert key.effective_encoding is expected
    assert "encoding" not in key.dump()


def test_an_explicit_encoding_wins() -> None:
    assert PrivateKeySpec(encoding=PrivateKeyEncoding.PKCS8).effective_encoding is PrivateKeyEncoding.PKCS8
    ed25519 = PrivateKeySpec(algorithm=PrivateKeyAlgorithm.ED25519, encoding=PrivateKeyEncoding.PKCS8)
    assert ed25519.effective_encoding is PrivateKeyEncoding.PKCS8


def test_ed25519_with_pkcs1_is_refused_with_the_admission_message() -> None:
    with pytest.raises(ValidationError) as excinfo:
        ManagedCertificate.model_validate(
            certificate(privateKey={"algorithm": "Ed25519", "encoding": "PKCS1"})
        )
    assert "Ed25519 private keys have no PKCS1 encoding, they are always PKCS#8" in str(excinfo.value)


def test_the_default_certificate_key_is_rsa_pkcs1() -> None:
    spec = ManagedCertificate.model_validate(certificate()).spec
    assert spec.key.effective_encoding is PrivateKeyEncoding.PKCS1
    assert spec.key.effective_size == 2048


# --------------------------------------------------------------------------- CRL settings


@pytest.mark.parametrize(
    ("settings_", "validity", "refresh"),
    [
        ({}, timedelta(hours=24), timedelta(hours=1)),
        ({"validity": "30m"}, timedelta(minutes=30), timedelta(minutes=15)),
        ({"validity": "7d"}, timedelta(days=7), timedelta(hours=1)),
        ({"refreshInterval": "48h"}, timedelta(hours=96), timedelta(hours=48)),
        ({"refreshInterval": "10m"}, timedelta(hours=24), timedelta(minutes=10)),
        ({"validity": "2s", "refreshInterval": "1s"}, timedelta(seconds=2), timedelta(seconds=1)),
    ],
)
def test_each_crl_default_follows_the_other_setting(
    settings_: dict[str, str], validity: timedelta, refresh: timedelta
) -> None:
    crl = CRLSettings.model_validate(settings_)
    assert (crl.validity_delta, crl.refresh_interval_delta) == (validity, refresh)


durations_1s_up = st.integers(min_value=1, max_value=int(MAX_DURATION_SECONDS)).map(lambda s: f"{s}s")


@given(st.one_of(st.none(), durations_1s_up), st.one_of(st.none(), durations_1s_up))
@settings(max_examples=300)
def test_the_crl_refresh_interval_in_force_is_always_shorter_than_the_validity(
    validity: str | None, refresh: str | None
) -> None:
    try:
        crl = CRLSettings(validity=validity, refresh_interval=refresh)
    except ValidationError as error:
        assert validity is not None and refresh is not None, error
        assert duration_seconds(refresh) >= duration_seconds(validity)
        return
    assert timedelta(0) < crl.refresh_interval_delta < crl.validity_delta


@pytest.mark.parametrize(
    "crl",
    [
        {"validity": "0s"},
        {"refreshInterval": "999ms"},
        {"validity": "36501d"},
        {"validity": "1h", "refreshInterval": "1h"},
    ],
)
def test_crl_settings_out_of_bounds_are_refused(crl: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        CRLSettings.model_validate(crl)


# --------------------------------------------------------------------------- durations in every kind


def _issuer(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": "Issuer",
        "metadata": {"name": "ca"},
        "spec": {"ca": {"secretName": "ca"}, **spec},
    }


def _channel(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": "NotificationChannel",
        "metadata": {"name": "ops"},
        "spec": spec,
    }


REF = {"name": "hooks", "key": "url"}
DURATION_FIELDS = {
    "duration": lambda v: certificate(duration=v),
    "renewBefore": lambda v: certificate(duration="36500d", renewBefore=v),
    "expiryThresholds": lambda v: certificate(notifications={"channels": ["ops"], "expiryThresholds": [v]}),
    "crl.validity": lambda v: _issuer(crl={"validity": v}),
    "crl.refreshInterval": lambda v: _issuer(crl={"refreshInterval": v}),
    "ocsp.responseValidity": lambda v: _issuer(ocsp={"responseValidity": v}),
    "webhook.timeout": lambda v: _channel(webhook={"url": "http://127.0.0.1/", "timeout": v}),
    "email.timeout": lambda v: _channel(
        email={"host": "127.0.0.1", "from": "a@b.c", "to": ["c@d.e"], "timeout": v}
    ),
    "slack.timeout": lambda v: _channel(slack={"webhookURLSecretRef": REF, "timeout": v}),
    "teams.timeout": lambda v: _channel(teams={"webhookURLSecretRef": REF, "timeout": v}),
    "pagerduty.timeout": lambda v: _channel(pagerduty={"routingKeySecretRef": REF, "timeout": v}),
}
AT_LEAST_ONE_SECOND = {"crl.validity", "crl.refreshInterval", "ocsp.responseValidity"}


@pytest.mark.parametrize("field", DURATION_FIELDS)
def test_every_duration_field_is_bounded_by_the_models(field: str) -> None:
    build = DURATION_FIELDS[field]
    # renewBefore must also stay shorter than the duration, 36500d here.
    parse_object(build("36499d23h59m59.999s" if field == "renewBefore" else "36500d"))
    for too_long in ("36500d1ms", "9999999999999999999999999999d"):
        with pytest.raises(ValidationError, match="at most 36500d"):
            parse_object(build(too_long))
    if field in AT_LEAST_ONE_SECOND:
        with pytest.raises(ValidationError, match="must be at least 1s and at most 36500d"):
            parse_object(build("999ms"))
    else:
        parse_object(build("0s"))


@pytest.mark.parametrize("field", DURATION_FIELDS)
@given(text=st.text(alphabet="0123456789.mshd", min_size=1, max_size=34))
@settings(max_examples=150)
def test_models_accept_a_duration_exactly_when_it_is_well_formed_and_in_bounds(field: str, text: str) -> None:
    try:
        seconds = duration_seconds(text)
    except DurationError:
        seconds = None
    least = 1.0 if field in AT_LEAST_ONE_SECOND else 0.0
    expected = (
        2 <= len(text) <= 32
        and re.fullmatch(DURATION_PATTERN.strip("^$"), text) is not None
        and seconds is not None
        and seconds >= least
        and (field != "renewBefore" or seconds < MAX_DURATION_SECONDS)
    )
    try:
        parse_object(DURATION_FIELDS[field](text))
    except ValidationError:
        assert not expected, text
    else:
        assert expected, text
        assert timedelta(0) <= timedelta(seconds=duration_seconds(text)) <= MAX_DURATION
