"""Property tests: the real API server and the pydantic models accept exactly the same values.

Every duration field of every kind and every numeric size field is filled with
generated values (well-formed durations of any size, the values right at the
bounds, zero, negative, huge, and arbitrary text or numbers), each manifest is
created with a server-side dry run, and the API server's verdict must equal
the models'. A value the models accept must also parse into a finite
timedelta, so nothing the API server stores can make the operator fail.
The number of examples is bounded so the module runs in well under a minute.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from certctl_operator.api import API_GROUP_VERSION, parse_object, resource_class
from certctl_operator.durations import MAX_DURATION, parse_duration

EXAMPLES = 150

# --------------------------------------------------------------------------- strategies

_UNITS = ("ms", "s", "m", "h", "d")
_MAX_IN_UNIT = {"ms": 3_153_600_000_000, "s": 3_153_600_000, "m": 52_560_000, "h": 876_000, "d": 36_500}

numbers = st.one_of(
    st.integers(min_value=0, max_value=10**40).map(str),
    st.from_regex(r"[0-9]{1,30}", fullmatch=True),
    st.tuples(st.integers(0, 10**12), st.from_regex(r"[0-9]{1,12}", fullmatch=True)).map(
        lambda parts: f"{parts[0]}.{parts[1]}"
    ),
)
well_formed = st.lists(st.tuples(numbers, st.sampled_from(_UNITS)).map("".join), min_size=1, max_size=4).map(
    "".join
)
at_the_bounds = st.sampled_from(
    [f"{value + delta}{unit}" for unit, value in _MAX_IN_UNIT.items() for delta in (-1, 0, 1)]
    + ["36499d23h59m59.999s", "36499d23h59m59s1000ms", "36500d0.001ms", "0s", "0ms", "0.0d", "999ms", "1s"]
)
malformed = st.one_of(
    st.sampled_from(
        ["", "-5m", "-0s", "1e3s", ".5s", "1.s", "1y", "1h 30m", " 1s", "1s\n", "\uff11s", "NaNs"]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70),
)
durations = st.one_of(well_formed, at_the_bounds, malformed)

sizes = st.one_of(
    st.sampled_from([0, -1, 1, 2048, 3072, 4096, 256, 384, 521, 99, 100, 65535, 65536, 2**31, 2**63 - 1]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=2**63, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=-(2**63) - 1),
)

# --------------------------------------------------------------------------- manifests

SECRET_REF = {"name": "hooks", "key": "url"}
MAIL = {"host": "127.0.0.1", "from": "certctl@example.com", "to": ["ops@example.com"]}


def _cert(**spec: Any) -> dict[str, Any]:
    base = {"secretName": "web-tls", "dnsNames": ["web.example.com"], "issuerRef": {"name": "ca"}}
    return {"kind": "ManagedCertificate", "spec": {**base, **spec}}


def _issuer(**spec: Any) -> dict[str, Any]:
    return {"kind": "Issuer", "spec": {"ca": {"secretName": "ca"}, **spec}}


def _channel(**spec: Any) -> dict[str, Any]:
    return {"kind": "NotificationChannel", "spec": spec}


DURATION_FIELDS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "cert.duration": lambda value: _cert(duration=value),
    "cert.renewBefore": lambda value: _cert(duration="36500d", renewBefore=value),
    "cert.expiryThresholds": lambda value: _cert(
        notifications={"channels": ["ops"], "expiryThresholds": [value]}
    ),
    "issuer.crl.validity": lambda value: _issuer(crl={"validity": value}),
    "issuer.crl.refreshInterval": lambda value: _issuer(crl={"refreshInterval": value}),
    "issuer.ocsp.responseValidity": lambda value: _issuer(ocsp={"responseValidity": value}),
    "webhook.timeout": lambda value: _channel(webhook={"url": "http://127.0.0.1:9/", "timeout": value}),
    "email.timeout": lambda value: _channel(email={**MAIL, "timeout": value}),
    "slack.timeout": lambda value: _channel(slack={"webhookURLSecretRef": SECRET_REF, "timeout": value}),
    "teams.timeout": lambda value: _channel(teams={"webhookURLSecretRef": SECRET_REF, "timeout": value}),
    "pagerduty.timeout": lambda value: _channel(
        pagerduty={"routingKeySecretRef": SECRET_REF, "timeout": value}
    ),
}

SIZE_FIELDS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "privateKey.size RSA": lambda value: _cert(privateKey={"algorithm": "RSA", "size": value}),
    "privateKey.size ECDSA": lambda value: _cert(privateKey={"algorithm": "ECDSA", "size": value}),
    "privateKey.size default algorithm": lambda value: _cert(privateKey={"size": value}),
    "renewBeforePercentage": lambda value: _cert(renewBeforePercentage=value),
    "email.port": lambda value: _channel(email={**MAIL, "port": value}),
}

# --------------------------------------------------------------------------- verdicts


@pytest.fixture(scope="module")
def fuzz_namespace(kube: Any) -> Iterator[str]:
    name = f"api-fuzz-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def server_accepts(kube: Any, namespace: str, manifest: dict[str, Any]) -> bool:
    """The API server's verdict on creating ``manifest`` (a dry run: nothing is stored)."""
    body = {"apiVersion": API_GROUP_VERSION, "metadata": {"name": "fuzz"}, **manifest}
    plural = resource_class(manifest["kind"]).PLURAL
    try:
        client.CustomObjectsApi(kube).create_namespaced_custom_object(
            "certctl.io", "v1alpha1", namespace, plural, body, dry_run="All"
        )
    except ApiException as error:
        # 422 Invalid for schema and CEL failures, 400 for a value the decoder refuses outright.
        assert error.status in (400, 422), f"unexpected answer {error.status}: {error.body}"
        return False
    return True


def models_accept(manifest: dict[str, Any]) -> bool:
    body = {"apiVersion": API_GROUP_VERSION, "metadata": {"name": "fuzz"}, **manifest}
    try:
        parse_object(body)
    except ValidationError:
        return False
    return True


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("field", DURATION_FIELDS, ids=str)
@FUZZ_SETTINGS
@given(value=durations)
def test_durations_are_judged_alike(field: str, value: Any, kube: Any, fuzz_namespace: str) -> None:
    manifest = DURATION_FIELDS[field](value)
    accepted = models_accept(manifest)
    assert server_accepts(kube, fuzz_namespace, manifest) == accepted, f"{field}={value!r}"
    if accepted:
        assert isinstance(value, str)
        assert parse_duration(value) <= MAX_DURATION


@pytest.mark.parametrize("field", SIZE_FIELDS, ids=str)
@FUZZ_SETTINGS
@given(value=sizes)
def test_sizes_are_judged_alike(field: str, value: int, kube: Any, fuzz_namespace: str) -> None:
    manifest = SIZE_FIELDS[field](value)
    assert server_accepts(kube, fuzz_namespace, manifest) == models_accept(manifest), f"{field}={value!r}"
