"""The in-memory PKI state and the CRL / OCSP HTTP endpoints, without a cluster.

The endpoints are served by the real aiohttp application on a loopback port;
requests and responses are built and read with the cryptography library, as
an outside OCSP client would.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certctl_operator import metrics
from certctl_operator.api import IssuerKind, IssuerStatus, RevocationReason, RevokedCertificate
from certctl_operator.context import OperatorContext
from certctl_operator.pki import (
    CertificateRequest,
    GeneratedCA,
    KeyAlgorithm,
    KeySpec,
    create_ocsp_responder_certificate,
    create_self_signed_ca,
    generate_private_key,
    issue_certificate,
    read_crl,
)
from certctl_operator.policy.publishing import (
    render_crl,
    state_of,
)
from certctl_operator.policy.revocation import ArchivedEntry, IssuerKey, next_crl
from certctl_operator.settings import Settings
from certctl_operator.web import pki_endpoints  # noqa: F401  (registers the routes)
from certctl_operator.web.pki_state import COLD_BUDGET, IssuedIndex, PKIRegistry, PublishedCRL, registry_of
from certctl_operator.web.server import build_app

EC = KeySpec(KeyAlgorithm.ECDSA, 256)
KEY = IssuerKey(IssuerKind.ISSUER, "team-ca", "team-a")
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def ca() -> GeneratedCA:
    return create_self_signed_ca("Team CA", EC, timedelta(days=30), NOW - timedelta(hours=1))


def leaf(ca: GeneratedCA, name: str) -> x509.Certificate:
    request = CertificateRequest(dns_names=[name], duration=timedelta(days=1))
    return issue_certificate(request, generate_private_key(EC), ca.authority, NOW).certificate


def mcert(name: str, serial: int | None, issuer: str = "team-ca", **status: Any) -> dict[str, Any]:
    body_status: dict[str, Any] = {"issuerRef": {"name": issuer, "kind": "Issuer"}, **status}
    if serial is not None:
        body_status["serialNumber"] = f"{serial:x}"
    return {
        "metadata": {"namespace": "team-a", "name": name},
        "spec": {"issuerRef": {"name": issuer}},
        "status": body_status,
    }


# --------------------------------------------------------------------------- state


def test_the_index_knows_current_and_recently_replaced_serials() -> None:
    index = IssuedIndex()
    index.update(mcert("web", 0x10, notAfter="2099-01-01T00:00:00Z"))
    assert index.is_issued(KEY, 0x10, NOW)
    index.update(mcert("web", 0x11, notAfter="2099-02-01T00:00:00Z"))
    assert index.is_issued(KEY, 0x11, NOW)
    assert index.is_issued(KEY, 0x10, NOW), "a renewed-away certificate is still ours until it expires"
    assert not index.is_issued(KEY, 0x10, datetime(2099, 1, 2, tzinfo=UTC))
    assert not index.is_issued(IssuerKey(IssuerKind.ISSUER, "other", "team-a"), 0x11, NOW)
    assert not index.is_issued(KEY, 0x99, NOW)


def test_the_certificates_of_one_issuer_share_one_issuer_key() -> None:
    index = IssuedIndex()
    for number in range(3):
        index.update(mcert(f"web-{number}", 0x40 + number))
    kept = {id(issued.issuer) for issued in index._current.values()}
    assert len(kept) == 1
    assert all(index.is_issued(KEY, 0x40 + number, NOW) for number in range(3))


def test_the_index_drops_revoked_serials_and_follows_the_issuer_reference() -> None:
    index = IssuedIndex()
    index.update(mcert("web", 0x21, revokedSerialNumbers=["20"]))
    index.update(mcert("api", 0x20))
    assert not index.is_issued(KEY, 0x20, NOW)
    cluster = IssuerKey(IssuerKind.CLUSTER_ISSUER, "root")
    body = mcert("db", 0x30)
    body["status"]["issuerRef"] = {"name": "root", "kind": "ClusterIssuer"}
    index.update(body)
    assert index.is_issued(cluster, 0x30, NOW) and not index.is_issued(KEY, 0x30, NOW)
    index.update(mcert("no-serial-yet", None))
    assert index.count(KEY) == 2


def test_older_revocation_lists_and_crls_never_replace_newer_ones() -> None:
    registry = PKIRegistry()
    newer = IssuerStatus(
        crl_number=5,
        revoked_certificates=[
            RevokedCertificate(serial_number="0a", revoked_at=NOW, reason=RevocationReason.SUPERSEDED)
        ],
    )
    assert registry.update_revoked(KEY, newer)
    assert not registry.update_revoked(KEY, IssuerStatus(crl_number=4))
    status = registry.certificate_status(KEY, 0x0A, NOW)
    assert status.kind.value == "revoked" and status.reason is not None and status.reason.name == "superseded"

    assert registry.set_crl(KEY, PublishedCRL(b"five", 5, NOW, None, "fp"))
    assert not registry.set_crl(KEY, PublishedCRL(b"four", 4, NOW, None, "fp"))
    assert registry.issuer(KEY).crl is not None and registry.issuer(KEY).crl.der == b"five"


def revoked(serial: str, crl_number: int) -> RevokedCertificate:
    return RevokedCertificate(
        serial_number=serial, revoked_at=NOW, reason=RevocationReason.KEY_COMPROMISE, crl_number=crl_number
    )


def archived(*entries: RevokedCertificate) -> dict[str, ArchivedEntry]:
    return {e.serial_number: ArchivedEntry.of(e) for e in entries}


def test_a_journal_from_a_head_the_archive_copy_is_behind_never_forgets_an_entry() -> None:
    registry = PKIRegistry()
    state = registry.issuer(KEY)
    state.set_archive(archived(revoked("01", 1)), 1)
    registry.update_revoked(
        KEY,
        IssuerStatus(crl_number=5, revocation_archive_generation=1, revoked_certificates=[revoked("0a", 5)]),
    )
    # Another process moved 0a to the archive (generation 2); this copy has not read it yet.
    assert registry.update_revoked(KEY, IssuerStatus(crl_number=5, revocation_archive_generation=2))
    assert registry.certificate_status(KEY, 0x0A, NOW).kind.value == "revoked"
    assert registry.certificate_status(KEY, 0x01, NOW).kind.value == "revoked"
    assert not registry.update_revoked(KEY, IssuerStatus(crl_number=5, revocation_archive_generation=1)), (
        "older head"
    )
    # Once the archive copy is at generation 2, the journal of that head is taken as it is.
    state.set_archive(archived(revoked("01", 1), revoked("0a", 5)), 2)
    registry.update_revoked(KEY, IssuerStatus(crl_number=6, revocation_archive_generation=2))
    assert state.journal == {} and len(state.listed()) == 2
    assert registry.certificate_status(KEY, 0x0A, NOW).kind.value == "revoked"
    assert state.archive_current(2) and not state.archive_current(3)


def test_entries_this_process_moved_join_the_archive_copy_only_in_step() -> None:
    state = PKIRegistry().issuer(KEY)
    state.add_archived([revoked("02", 2)], 1)
    assert state.archive_generation is None, "never read: the next look reads it whole"
    state.set_archive({}, 1)
    state.add_archived([revoked("02", 2)], 2)
    assert state.archive_generation == 2 and set(state.archive) == {"02"}
    state.add_archived([revoked("03", 3)], 4)
    assert state.archive_generation == 2 and "03" not in state.archive, (
        "a move by another process came between"
    )
    state.set_archive({}, 1)
    assert state.archive_generation == 2, "an older read never replaces a newer copy"


def test_the_index_takes_in_the_stored_serials_after_a_restart() -> None:
    index = IssuedIndex()
    index.load(KEY, {"0f": NOW + timedelta(days=1), "10": NOW - timedelta(seconds=1)})
    assert KEY in index.loaded
    assert index.is_issued(KEY, 0x0F, NOW)
    assert not index.is_issued(KEY, 0x10, NOW), "expired: neither good nor revoked"
    index.add(KEY, "11", NOW + timedelta(hours=1))
    assert index.is_issued(KEY, 0x11, NOW)
    index.update(mcert("web", 0x0F, revokedSerialNumbers=["0f"]))
    assert not index.is_issued(KEY, 0x0F, NOW)


def test_requests_read_the_cluster_at_a_bounded_rate() -> None:
    registry = PKIRegistry()
    assert registry.cold_lookup("crl", KEY, 100.0)
    assert not registry.cold_lookup("crl", KEY, 101.0), "the same issuer again within the hold"
    assert registry.cold_lookup("ocsp", KEY, 101.0), "another kind of lookup is counted apart"
    assert registry.cold_lookup("crl", KEY, 102.5)
    names = [IssuerKey(IssuerKind.ISSUER, f"made-up-{n}", "team-a") for n in range(COLD_BUDGET + 5)]
    allowed = [registry.cold_lookup("crl", key, 200.0) for key in names]
    assert allowed.count(True) == COLD_BUDGET, "all issuers together stay within the budget"
    assert registry.cold_lookup("crl", names[-1], 201.5), "the next second has a new budget"


async def test_waiting_revocations_are_woken_by_their_certificate() -> None:
    registry = PKIRegistry()
    with registry.waiting_for("team-a", "web") as web, registry.waiting_for("team-a", "api") as api:
        registry.wake("team-a", "web")
        assert web.is_set() and not api.is_set()
        registry.wake_all()
        assert api.is_set()
    registry.wake("team-a", "web")  # nobody waits any more: nothing happens


def test_crls_render_the_status_deterministically(ca: GeneratedCA) -> None:
    status = IssuerStatus(crl_number=2, crl_this_update=NOW, crl_next_update=NOW + timedelta(hours=1))
    entry = RevokedCertificate(serial_number="7b", revoked_at=NOW, reason=RevocationReason.KEY_COMPROMISE)
    state = next_crl(status, NOW, timedelta(hours=24), timedelta(hours=1), add=entry)
    written = IssuerStatus.model_validate(state.status_fields())
    again = state_of(written)
    assert again is not None
    crl = read_crl(render_crl(ca.authority, again))
    assert crl.crl_number == 3
    assert (crl.this_update, crl.next_update) == (NOW, NOW + timedelta(hours=24))
    assert [(e.serial, e.reason.name) for e in crl.entries] == [(0x7B, "keyCompromise")]


# --------------------------------------------------------------------------- HTTP


@pytest.fixture
async def served(ca: GeneratedCA) -> AsyncIterator[tuple[TestClient[Any, Any], PKIRegistry]]:
    context = OperatorContext(settings=Settings(namespaces=("team-a",)))
    registry = registry_of(context)
    state = registry.issuer(KEY)
    state.authority = ca.authority
    state.responder = create_ocsp_responder_certificate(ca.authority, EC, timedelta(days=1), NOW)
    state.ocsp_validity = timedelta(minutes=30)
    client = TestClient(TestServer(build_app(context), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, registry
    finally:
        await client.close()


def ocsp_request(ca: GeneratedCA, certificate: x509.Certificate, nonce: bytes = b"nonce-0123456789") -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, ca.authority.certificate, hashes.SHA1())  # noqa: S303
    builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def counter(status: str) -> float:
    value = metrics.ocsp_responses_total.labels(status=status)._value.get()
    return float(value)


@pytest.mark.parametrize("written", ["abc", "ABC", "0x0abc", "0a:bc"])
def test_a_revoked_serial_matches_however_it_was_written(written: str) -> None:
    # The journal may hold a serial written by hand or by an older version: odd length, upper case,
    # a prefix or separators. OCSP looks serials up as integers and must still find it.
    registry = PKIRegistry()
    entry = RevokedCertificate(serial_number=written, revoked_at=NOW, reason=RevocationReason.KEY_COMPROMISE)
    registry.update_revoked(KEY, IssuerStatus(crl_number=1, revoked_certificates=[entry]))
    assert registry.certificate_status(KEY, 0xABC, NOW).kind.value == "revoked"
    assert registry.certificate_status(KEY, 0xABD, NOW).kind.value == "unknown"


async def post_ocsp(client: TestClient[Any, Any], path: str, der: bytes) -> ocsp.OCSPResponse:
    response = await client.post(path, data=der, headers={"Content-Type": "application/ocsp-request"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(await response.read())


async def test_ocsp_answers_good_revoked_and_unknown(
    served: tuple[TestClient[Any, Any], PKIRegistry], ca: GeneratedCA
) -> None:
    client, registry = served
    good, revoked, stranger = (
        leaf(ca, "good.example"),
        leaf(ca, "revoked.example"),
        leaf(ca, "stranger.example"),
    )
    registry.index.update(mcert("good", good.serial_number))
    registry.update_revoked(
        KEY,
        IssuerStatus(
            crl_number=1,
            revoked_certificates=[
                RevokedCertificate(
                    serial_number=f"{revoked.serial_number:x}",
                    revoked_at=NOW,
                    reason=RevocationReason.CESSATION_OF_OPERATION,
                )
            ],
        ),
    )
    before = {status: counter(status) for status in ("good", "revoked", "unknown")}

    answer = await post_ocsp(client, "/ocsp/team-a/team-ca", ocsp_request(ca, good))
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"nonce-0123456789"
    assert answer.next_update_utc is not None and answer.this_update_utc is not None
    assert answer.next_update_utc - answer.this_update_utc == timedelta(minutes=30)
    responder = registry.issuer(KEY).responder
    assert responder is not None and answer.certificates == [responder.certificate]

    answer = await post_ocsp(client, "/ocsp/team-a/team-ca", ocsp_request(ca, revoked))
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.cessation_of_operation
    assert answer.revocation_time_utc == NOW

    answer = await post_ocsp(client, "/ocsp/team-a/team-ca", ocsp_request(ca, stranger))
    assert answer.certificate_status is ocsp.OCSPCertStatus.UNKNOWN

    assert [counter(s) - before[s] for s in ("good", "revoked", "unknown")] == [1, 1, 1]


async def test_ocsp_get_requests_are_answered_too(
    served: tuple[TestClient[Any, Any], PKIRegistry], ca: GeneratedCA
) -> None:
    client, registry = served
    certificate = leaf(ca, "get.example")
    registry.index.update(mcert("get", certificate.serial_number))
    encoded = quote(base64.b64encode(ocsp_request(ca, certificate)).decode("ascii"), safe="")
    response = await client.get(f"/ocsp/team-a/team-ca/{encoded}")
    assert response.status == 200
    answer = ocsp.load_der_ocsp_response(await response.read())
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD


async def test_ocsp_refuses_what_it_cannot_answer(
    served: tuple[TestClient[Any, Any], PKIRegistry], ca: GeneratedCA
) -> None:
    client, registry = served
    certificate = leaf(ca, "x.example")
    other_ca = create_self_signed_ca("Other CA", EC, timedelta(days=3), NOW - timedelta(hours=1))
    foreign = leaf(other_ca, "foreign.example")

    answer = await post_ocsp(client, "/ocsp/team-a/no-such-issuer", ocsp_request(ca, certificate))
    assert answer.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    answer = await post_ocsp(client, "/ocsp/team-a/team-ca", ocsp_request(other_ca, foreign))
    assert answer.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    answer = await post_ocsp(client, "/ocsp/team-b/team-ca", ocsp_request(ca, certificate))
    assert answer.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED, "namespace not served"
    answer = await post_ocsp(client, "/ocsp/team-a/team-ca", b"\x30\x03garbage")
    assert answer.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST

    registry.issuer(KEY).ocsp_enabled = False
    answer = await post_ocsp(client, "/ocsp/team-a/team-ca", ocsp_request(ca, certificate))
    assert answer.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    registry.issuer(KEY).ocsp_enabled = True
    registry.issuer(KEY).authority = None
    answer = await post_ocsp(client, "/ocsp/team-a/team-ca", ocsp_request(ca, certificate))
    assert answer.response_status is ocsp.OCSPResponseStatus.TRY_LATER


async def test_ocsp_signs_with_the_ca_until_a_responder_exists(
    served: tuple[TestClient[Any, Any], PKIRegistry], ca: GeneratedCA
) -> None:
    client, registry = served
    registry.issuer(KEY).responder = None
    certificate = leaf(ca, "ca-signed.example")
    registry.index.update(mcert("ca-signed", certificate.serial_number))
    answer = await post_ocsp(client, "/ocsp/team-a/team-ca", ocsp_request(ca, certificate))
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert answer.certificates == []
    assert (
        answer.responder_key_hash
        == x509.SubjectKeyIdentifier.from_public_key(ca.authority.certificate.public_key()).digest
    )


async def test_the_crl_is_served_as_der_with_validators(
    served: tuple[TestClient[Any, Any], PKIRegistry], ca: GeneratedCA
) -> None:
    client, registry = served
    missing = await client.get("/crl/team-a/team-ca.crl")
    assert missing.status == 404, "no CRL published and no API to read one from"

    state = next_crl(IssuerStatus(), NOW, timedelta(hours=24), timedelta(hours=1))
    der = render_crl(ca.authority, state)
    registry.set_crl(KEY, PublishedCRL(der, state.number, state.this_update, state.next_update, "fp"))
    response = await client.get("/crl/team-a/team-ca.crl")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/pkix-crl"
    assert await response.read() == der
    etag = response.headers["ETag"]
    assert response.headers["Last-Modified"] == NOW.strftime("%a, %d %b %Y %H:%M:%S GMT")

    assert (await client.get("/crl/team-a/team-ca.crl", headers={"If-None-Match": etag})).status == 304
    since = {"If-Modified-Since": response.headers["Last-Modified"]}
    assert (await client.get("/crl/team-a/team-ca.crl", headers=since)).status == 304
    assert (await client.get("/crl/team-a/team-ca.crl", headers={"If-None-Match": '"other"'})).status == 200
    assert (await client.get("/crl/team-a/team-ca.der")).status == 404
    assert (await client.get("/crl/team-b/team-ca.crl")).status == 404
