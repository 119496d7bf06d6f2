"""Names, CRL state and responder renewal of an issuer's published PKI material."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certctl_operator.api import IssuerKind, IssuerStatus
from certctl_operator.pki import (
    GeneratedCA,
    KeyAlgorithm,
    KeySpec,
    create_ocsp_responder_certificate,
    create_self_signed_ca,
)
from certctl_operator.policy.publishing import (
    crl_configmap_name,
    responder_due,
    responder_matches,
    responder_secret_name,
    state_of,
)
from certctl_operator.policy.revocation import IssuerKey

EC = KeySpec(KeyAlgorithm.ECDSA, 256)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> GeneratedCA:
    return create_self_signed_ca("Team CA", EC, timedelta(days=365), NOW - timedelta(days=1))


def test_names_keep_an_issuer_and_a_cluster_issuer_of_one_name_apart() -> None:
    issuer = IssuerKey(IssuerKind.ISSUER, "team-ca", "team-a")
    cluster = IssuerKey(IssuerKind.CLUSTER_ISSUER, "team-ca", None)
    assert crl_configmap_name(issuer) == "team-ca-crl"
    assert crl_configmap_name(cluster) == "team-ca-cluster-crl"
    assert responder_secret_name(issuer) == "team-ca-ocsp-responder"
    assert responder_secret_name(cluster) == "team-ca-cluster-ocsp-responder"


def test_no_crl_state_before_the_first_crl() -> None:
    assert state_of(IssuerStatus()) is None
    state = state_of(
        IssuerStatus(crl_number=3, crl_this_update=NOW, crl_next_update=NOW + timedelta(hours=1))
    )
    assert state is not None and state.number == 3 and state.entries == ()


def test_a_responder_is_replaced_with_a_third_of_its_life_left(ca: GeneratedCA) -> None:
    responder = create_ocsp_responder_certificate(ca.authority, EC, timedelta(days=30), NOW)
    assert not responder_due(responder, NOW + timedelta(days=19))
    assert responder_due(responder, NOW + timedelta(days=20, minutes=1))


def test_a_responder_matches_only_the_ca_that_issued_it(ca: GeneratedCA) -> None:
    other = create_self_signed_ca("Other CA", EC, timedelta(days=365), NOW - timedelta(days=1))
    responder = create_ocsp_responder_certificate(ca.authority, EC, timedelta(days=30), NOW)
    assert responder_matches(responder, ca.authority)
    assert not responder_matches(responder, other.authority)
