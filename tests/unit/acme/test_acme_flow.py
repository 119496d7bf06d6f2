"""The pure parts of the ACME flow: solver choice, problem naming, resumption, CSRs, the API model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from pydantic import ValidationError

from certctl_operator.acme import ACMEProblem, build_csr_pem, order_identifiers, select_solver
from certctl_operator.acme.flow import generate_account_key_pem, resumable
from certctl_operator.acme.rfc2136 import split_nameserver
from certctl_operator.api import Issuer
from certctl_operator.api.certificate import ACMEOrderStatus
from certctl_operator.api.issuer import ACMESolver, IssuerType
from certctl_operator.dev.pebble import PebbleBuildError, parse_go_mod, targets
from certctl_operator.policy.issuers import REASON_ACME_SERVER, evaluate_issuer

HTTP: dict[str, Any] = {"http01": {}}
DNS: dict[str, Any] = {"dns01": {"rfc2136": {"nameserver": "127.0.0.1:53"}}}


def solvers(*specs: dict[str, Any]) -> list[ACMESolver]:
    return [ACMESolver.model_validate(spec) for spec in specs]


def test_solver_without_selector_takes_every_name() -> None:
    only = solvers(HTTP)
    assert select_solver(only, "a.example.com") is only[0]


def test_dns_names_beat_zones_and_longer_zones_beat_shorter() -> None:
    chosen = solvers(
        HTTP,
        {**DNS, "selector": {"dnsZones": ["example.com"]}},
        {**DNS, "selector": {"dnsZones": ["apps.example.com"]}},
        {**HTTP, "selector": {"dnsNames": ["exact.apps.example.com"]}},
    )
    assert select_solver(chosen, "exact.apps.example.com") is chosen[3]
    assert select_solver(chosen, "x.apps.example.com") is chosen[2]
    assert select_solver(chosen, "*.apps.example.com") is chosen[2]
    assert select_solver(chosen, "www.example.com") is chosen[1]
    assert select_solver(chosen, "other.org") is chosen[0]


def test_no_solver_when_every_selector_misses() -> None:
    assert (
        select_solver(solvers({**HTTP, "selector": {"dnsZones": ["example.com"]}}), "a.example.org") is None
    )


def test_first_solver_wins_a_tie() -> None:
    tied = solvers(HTTP, DNS)
    assert select_solver(tied, "a.example.com") is tied[0]


@pytest.mark.parametrize(
    ("type_", "reason"),
    [
        ("urn:ietf:params:acme:error:rejectedIdentifier", "ACMERejectedIdentifier"),
        ("urn:ietf:params:acme:error:externalAccountRequired", "ACMEExternalAccountRequired"),
        ("dnsUpdate", "ACMEDnsUpdate"),
        ("about:blank", "ACMEAboutblank"),
    ],
)
def test_problem_reason_names_the_problem_type(type_: str, reason: str) -> None:
    problem = ACMEProblem(type_, "detail")
    assert problem.reason == reason
    assert problem.message == f"ACME problem {type_}: detail"


def order(state: str, identifiers: list[str]) -> ACMEOrderStatus:
    return ACMEOrderStatus(url="https://ca/order/1", state=state, identifiers=identifiers)


def test_only_unfinished_orders_for_the_same_names_are_resumed() -> None:
    names = order_identifiers(["b.example", "a.example"], ["::1"])
    assert names == ["::1", "a.example", "b.example"]
    assert resumable(order("pending", names), names)
    assert resumable(order("ready", names), names)
    assert not resumable(order("valid", names), names)
    assert not resumable(order("invalid", names), names)
    assert not resumable(order("pending", ["a.example"]), names)
    assert not resumable(None, names)


@pytest.mark.parametrize(
    "key", [ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()]
)
def test_csr_carries_the_names_and_the_key(key: Any) -> None:
    csr = x509.load_pem_x509_csr(build_csr_pem(key, ["a.example", "*.b.example"], ["127.0.0.1"]))
    assert csr.is_signature_valid
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["a.example", "*.b.example"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert csr.public_key() == key.public_key()


def test_account_key_is_p256() -> None:
    key = serialization.load_pem_private_key(generate_account_key_pem(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


def acme_issuer(**acme: Any) -> dict[str, Any]:
    spec = {
        "server": "https://acme.example/directory",
        "privateKeySecretRef": {"name": "account"},
        "solvers": [HTTP],
        **acme,
    }
    return {
        "apiVersion": "certctl.io/v1alpha1",
        "kind": "Issuer",
        "metadata": {"name": "a"},
        "spec": {"acme": spec},
    }


def test_acme_issuer_model() -> None:
    issuer = Issuer.model_validate(acme_issuer())
    assert issuer.spec.type is IssuerType.ACME
    assert issuer.spec.acme is not None and issuer.spec.acme.solvers[0].http01 is not None


@pytest.mark.parametrize(
    ("acme", "message"),
    [
        ({"server": "http://plain.example/dir"}, "String should match pattern"),
        ({"solvers": []}, "at least 1 item"),
        ({"solvers": [{}]}, "no solver type is set"),
        ({"solvers": [{**HTTP, **DNS}]}, "only one solver type may be set"),
        ({"solvers": [{"dns01": {"rfc2136": {"nameserver": "ns", "tsigAlgorithm": "SHA1"}}}]}, "HMACSHA256"),
    ],
)
def test_acme_issuer_refused(acme: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        Issuer.model_validate(acme_issuer(**acme))
    assert message in str(excinfo.value)


def test_pebble_version_comes_from_the_helper_module() -> None:
    text = "module x\n\ngo 1.26.0\n\nrequire github.com/letsencrypt/pebble/v2 v2.10.3\n"
    assert parse_go_mod(text) == "v2.10.3"
    pebble, challtestsrv = targets("v2.10.3")
    assert "-X main.version=v2.10.3" in pebble.ldflags
    assert challtestsrv.package.endswith("/cmd/pebble-challtestsrv")
    with pytest.raises(PebbleBuildError):
        parse_go_mod("module x\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ns1.example.com", ("ns1.example.com", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:5353", ("::1", 5353)),
        ("[::1]", ("::1", 53)),
    ],
)
def test_nameserver_forms(text: str, expected: tuple[str, int]) -> None:
    assert split_nameserver(text) == expected


def test_acme_issuer_is_ready_without_contacting_the_ca() -> None:
    spec = Issuer.model_validate(acme_issuer()).spec
    check = evaluate_issuer(spec, None, datetime.now(UTC))
    assert check.ready and check.reason == REASON_ACME_SERVER
    assert "https://acme.example/directory" in check.message
