"""Asking a certificate's own CRL and OCSP URLs whether it is revoked, and not believing forgeries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from tests.support.cli_pki import PKIWorld

from certctl_operator.cli.revocation_check import (
    Verdict,
    check_ocsp,
    check_revocation,
    find_issuer,
)


@pytest.fixture(scope="module")
def world() -> PKIWorld:
    return PKIWorld()


def test_a_revoked_certificate_is_reported_by_both_sources(world: PKIWorld) -> None:
    leaf = world.issue("revoked.example.test")
    world.revoke(leaf, "keyCompromise")
    with httpx.Client(transport=world.transport()) as http:
        world.requests.clear()
        report = check_revocation(
            leaf.certificate,
            world.authority.certificate,
            crl_urls=[world.crl_url],
            ocsp_urls=[world.ocsp_url],
            now=datetime.now(UTC),
            http=http,
        )
    assert report.verdict is Verdict.REVOKED
    assert [(r.source, r.verdict, r.reason) for r in report.results] == [
        ("CRL", Verdict.REVOKED, "keyCompromise"),
        ("OCSP", Verdict.REVOKED, "keyCompromise"),
    ]
    assert "listed on CRL #7" in report.results[0].detail
    assert "signature verified" in report.results[0].detail
    assert world.requests == [("GET", "/crl"), ("POST", "/ocsp")], "exactly the two named URLs"


def test_a_good_certificate(world: PKIWorld) -> None:
    leaf = world.issue("good.example.test")
    with httpx.Client(transport=world.transport()) as http:
        report = check_revocation(
            leaf.certificate,
            world.authority.certificate,
            crl_urls=[world.crl_url],
            ocsp_urls=[world.ocsp_url],
            now=datetime.now(UTC),
            http=http,
        )
    assert report.verdict is Verdict.GOOD
    assert [r.verdict for r in report.results] == [Verdict.GOOD, Verdict.GOOD]
    assert report.results[0].detail.startswith("not listed on CRL #7; signature verified")


def test_no_urls_means_nothing_is_fetched(world: PKIWorld) -> None:
    leaf = world.issue("plain.example.test", urls=False)
    world.requests.clear()
    report = check_revocation(
        leaf.certificate,
        world.authority.certificate,
        crl_urls=[],
        ocsp_urls=[],
        now=datetime.now(UTC),
        http=httpx.Client(transport=world.transport()),
    )
    assert report.verdict is Verdict.NOT_CHECKED
    assert report.note == "not checked: no CRL/OCSP URL in the certificate"
    assert world.requests == []


def test_only_http_urls_are_fetched(world: PKIWorld) -> None:
    leaf = world.issue("ldap.example.test")
    world.requests.clear()
    report = check_revocation(
        leaf.certificate,
        world.authority.certificate,
        crl_urls=["ldap://directory.example.test/cn=ca?certificateRevocationList"],
        ocsp_urls=[],
        now=datetime.now(UTC),
        http=httpx.Client(transport=world.transport()),
    )
    assert report.verdict is Verdict.NOT_CHECKED
    assert report.results[0].detail == "skipped: only http(s) URLs are fetched"
    assert world.requests == []


def test_a_crl_signed_by_another_key_is_refused() -> None:
    world = PKIWorld()
    impostor = PKIWorld(common_name=world.common_name)  # same name, other key
    world.crl_authority = impostor.authority
    leaf = world.issue()
    world.revoke(leaf)
    with httpx.Client(transport=world.transport()) as http:
        report = check_revocation(
            leaf.certificate,
            world.authority.certificate,
            crl_urls=[world.crl_url],
            ocsp_urls=[],
            now=datetime.now(UTC),
            http=http,
        )
    assert report.verdict is Verdict.ERROR
    assert "signature does not verify" in report.results[0].detail


def test_a_crl_of_another_issuer_is_refused() -> None:
    world = PKIWorld()
    other = PKIWorld(common_name="someone else")
    world.crl_authority = other.authority
    leaf = world.issue()
    with httpx.Client(transport=world.transport()) as http:
        report = check_revocation(
            leaf.certificate, None, crl_urls=[world.crl_url], ocsp_urls=[], now=datetime.now(UTC), http=http
        )
    assert report.verdict is Verdict.ERROR
    assert "not by the certificate's issuer" in report.results[0].detail


def test_a_stale_crl_is_flagged() -> None:
    world = PKIWorld()
    world.crl_now = datetime.now(UTC) - timedelta(days=2)
    leaf = world.issue()
    with httpx.Client(transport=world.transport()) as http:
        report = check_revocation(
            leaf.certificate,
            world.authority.certificate,
            crl_urls=[world.crl_url],
            ocsp_urls=[],
            now=datetime.now(UTC),
            http=http,
        )
    assert report.results[0].verdict is Verdict.GOOD
    assert "STALE: nextUpdate" in report.results[0].detail


def test_without_the_issuer_certificate_the_crl_is_read_but_ocsp_is_not_asked(world: PKIWorld) -> None:
    leaf = world.issue("orphan.example.test")
    world.revoke(leaf, "superseded")
    world.requests.clear()
    with httpx.Client(transport=world.transport()) as http:
        report = check_revocation(
            leaf.certificate,
            None,
            crl_urls=[world.crl_url],
            ocsp_urls=[world.ocsp_url],
            now=datetime.now(UTC),
            http=http,
        )
    assert report.verdict is Verdict.REVOKED
    crl, ocsp_result = report.results
    assert "signature not verified (issuer certificate not in the Secret)" in crl.detail
    assert ocsp_result.verdict is Verdict.NOT_CHECKED
    assert world.requests == [("GET", "/crl")]


def test_an_ocsp_answer_signed_by_a_stranger_is_refused(world: PKIWorld) -> None:
    leaf = world.issue("ocsp.example.test")
    stranger = PKIWorld(common_name=world.common_name)

    def answer(request: httpx.Request) -> httpx.Response:
        # A responder with the right issuer name but the wrong key answers "good".
        status, content_type, content = stranger.answer("POST", "/ocsp", request.read())
        return httpx.Response(status, content=content, headers={"Content-Type": content_type})

    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        result = check_ocsp(
            world.ocsp_url, leaf.certificate, world.authority.certificate, http, datetime.now(UTC)
        )
    assert result.verdict is Verdict.ERROR
    # The stranger is not authoritative for our issuer's key hash, or its signature fails: never "good".
    assert "unauthorized" in result.detail or "not signed by the issuer" in result.detail


def test_ocsp_errors_are_reported(world: PKIWorld) -> None:
    leaf = world.issue("errors.example.test")
    unauthorized = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)

    def reply(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/missing":
            return httpx.Response(404)
        return httpx.Response(200, content=unauthorized.public_bytes(Encoding.DER))

    with httpx.Client(transport=httpx.MockTransport(reply)) as http:
        missing = check_ocsp(
            f"{world.base_url}/missing",
            leaf.certificate,
            world.authority.certificate,
            http,
            datetime.now(UTC),
        )
        refused = check_ocsp(
            world.ocsp_url, leaf.certificate, world.authority.certificate, http, datetime.now(UTC)
        )
    assert (missing.verdict, missing.detail) == (Verdict.ERROR, "HTTP 404 from the OCSP responder")
    assert (refused.verdict, refused.detail) == (Verdict.ERROR, "the responder answered unauthorized")


def test_find_issuer(world: PKIWorld) -> None:
    leaf = world.issue("chain.example.test")
    other = PKIWorld(common_name=world.common_name)
    assert find_issuer(leaf.certificate, [other.authority.certificate]) is None
    assert find_issuer(leaf.certificate, [other.authority.certificate, world.authority.certificate]) == (
        world.authority.certificate
    )
    ca = world.authority.certificate
    assert find_issuer(ca, []) == ca, "a self-signed certificate is its own issuer"
