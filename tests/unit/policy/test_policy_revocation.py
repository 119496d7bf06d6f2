"""Revocation decisions: serial spelling, who asked, what a Revocation revokes, how the list moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from certctl_operator.api import (
    IssuerKind,
    IssuerReference,
    IssuerStatus,
    IssuerType,
    RequestedBySource,
    RevocationReason,
    RevokedCertificate,
)
from certctl_operator.policy.revocation import (
    MAX_JOURNAL_ENTRIES,
    PENDING_RETRY_CAP,
    SHARD_COUNT,
    ArchivedEntry,
    CRLState,
    CurrentCertificate,
    IssuerKey,
    Outcome,
    RevocationListFull,
    RevokingIssuer,
    crl_refresh_due,
    decode_issued,
    decode_revoked,
    encode_issued,
    encode_revoked,
    entry_leaving,
    find_entry,
    issuer_notification,
    listed_on,
    merge_issued,
    merge_revoked,
    new_crl_due,
    next_crl,
    normalize_serial,
    pending_retry_delay,
    requested_by,
    resolve_target,
    severity_of,
    shard_index,
    union_of,
    unlisted,
)

NOW = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
ISSUER = IssuerKey(IssuerKind.ISSUER, "team-ca", "team-a")


def entry(
    serial: str, revoked_at: datetime = NOW, not_after: datetime | None = None, **extra: object
) -> RevokedCertificate:
    return RevokedCertificate(
        serial_number=serial,
        revoked_at=revoked_at,
        reason=RevocationReason.KEY_COMPROMISE,
        not_after=not_after,
        **extra,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- serials


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("0A:FF", "0aff"),
        ("aff", "0aff"),
        (2815, "0aff"),
        ("0x1234", "1234"),
        ("  DEADBEEF ", "deadbeef"),
        ("00ff", "ff"),
    ],
)
def test_serials_are_spelled_one_way(given: str | int, expected: str) -> None:
    assert normalize_serial(given) == expected


@pytest.mark.parametrize("bad", ["", "xyz", "12-34", 0, -5, "0"])
def test_serials_that_are_not_serials_are_refused(bad: str | int) -> None:
    with pytest.raises(ValueError):
        normalize_serial(bad)


# --------------------------------------------------------------------------- issuers


def test_issuer_keys_name_namespaced_and_cluster_issuers() -> None:
    namespaced = IssuerKey.of(IssuerReference(name="ca"), "team-a")
    cluster = IssuerKey.of(IssuerReference(name="root", kind=IssuerKind.CLUSTER_ISSUER), "team-a")
    assert namespaced == IssuerKey(IssuerKind.ISSUER, "ca", "team-a")
    assert (namespaced.crl_path(), namespaced.ocsp_path()) == ("/crl/team-a/ca.crl", "/ocsp/team-a/ca")
    assert cluster.namespace is None and cluster.cluster
    assert (cluster.crl_path(), cluster.ocsp_path(), cluster.label) == (
        "/crl/_cluster/root.crl",
        "/ocsp/_cluster/root",
        "_cluster/root",
    )
    assert IssuerKey.from_segment("_cluster", "root") == cluster
    assert IssuerKey.from_segment("team-a", "ca") == namespaced
    assert cluster.reference == IssuerReference(name="root", kind=IssuerKind.CLUSTER_ISSUER)


# --------------------------------------------------------------------------- who asked


def test_the_annotation_says_who_asked_when_set() -> None:
    metadata = {
        "annotations": {"certctl.io/requested-by": "alice@example.com"},
        "managedFields": [{"manager": "kubectl-create", "operation": "Update"}],
    }
    assert requested_by(metadata) == ("alice@example.com", RequestedBySource.ANNOTATION)


def test_the_field_manager_owning_the_spec_is_used_otherwise() -> None:
    metadata = {
        "managedFields": [
            {
                "manager": "kopf",
                "operation": "Update",
                "time": "2031-01-01T00:00:01Z",
                "fieldsV1": {"f:metadata": {"f:finalizers": {}}},
            },
            {
                "manager": "certctl-operator",
                "operation": "Update",
                "subresource": "status",
                "fieldsV1": {"f:status": {}},
            },
            {
                "manager": "kubectl-create",
                "operation": "Update",
                "time": "2031-01-01T00:00:00Z",
                "fieldsV1": {"f:spec": {"f:reason": {}}},
            },
        ]
    }
    assert requested_by(metadata) == ("kubectl-create", RequestedBySource.FIELD_MANAGER)


def test_without_a_spec_owner_the_earliest_main_resource_manager_is_used() -> None:
    metadata = {
        "managedFields": [
            {"manager": "late", "operation": "Update", "time": "2031-01-01T00:00:09Z"},
            {
                "manager": "status-writer",
                "operation": "Update",
                "subresource": "status",
                "time": "2030-01-01T00:00:00Z",
            },
            {"manager": "early", "operation": "Update", "time": "2031-01-01T00:00:01Z"},
        ]
    }
    assert requested_by(metadata) == ("early", RequestedBySource.FIELD_MANAGER)
    assert requested_by({}) == (None, None)


# --------------------------------------------------------------------------- what to revoke


def current(serial: str = "0abc", *, self_signed: bool = False, issued: bool = True) -> CurrentCertificate:
    return CurrentCertificate(serial, NOW + 30 * DAY, self_signed, issued)


def ca_issuer(*revoked: RevokedCertificate, problem: str | None = None) -> RevokingIssuer:
    return RevokingIssuer(ISSUER, IssuerType.CA, problem, revoked)


def decide(**changes: object):  # type: ignore[no-untyped-def]
    arguments: dict[str, object] = {
        "certificate_name": "web",
        "certificate_exists": True,
        "secret_name": "web-tls",
        "current": current(),
        "issuer": ca_issuer(),
        "revoked_serials": (),
        "created_at": NOW,
    }
    arguments.update(changes)
    return resolve_target(**arguments)  # type: ignore[arg-type]


def test_the_certificate_in_the_secret_is_the_target() -> None:
    resolution = decide()
    assert resolution.outcome is Outcome.TARGET
    assert (resolution.serial, resolution.issuer, resolution.not_after) == ("0abc", ISSUER, NOW + 30 * DAY)


def test_a_missing_certificate_or_an_unissued_one_waits() -> None:
    missing = decide(certificate_exists=False, current=None, issuer=None)
    assert (missing.outcome, missing.reason) == (Outcome.PENDING, "CertificateNotFound")
    unissued = decide(current=None)
    assert (unissued.outcome, unissued.reason) == (Outcome.PENDING, "CertificateNotIssued")
    assert "web-tls" in unissued.message


def test_self_signed_certificates_fail_at_once_with_the_reason() -> None:
    by_issuer = decide(issuer=RevokingIssuer(ISSUER, IssuerType.SELF_SIGNED), current=None)
    assert (by_issuer.outcome, by_issuer.reason) == (Outcome.FAILED, "SelfSignedNotRevocable")
    assert "no CRL or OCSP responder" in by_issuer.message
    by_leaf = decide(current=current(self_signed=True))
    assert (by_leaf.outcome, by_leaf.reason) == (Outcome.FAILED, "SelfSignedNotRevocable")


def test_a_missing_issuer_or_an_unusable_ca_waits() -> None:
    assert decide(issuer=None).reason == "IssuerNotFound"
    assert decide(issuer=RevokingIssuer(ISSUER, None)).outcome is Outcome.PENDING
    not_ready = decide(issuer=ca_issuer(problem="the CA Secret team-a/ca does not exist"))
    assert (not_ready.outcome, not_ready.reason) == (Outcome.PENDING, "IssuerNotReady")
    assert "does not exist" in not_ready.message


def test_a_certificate_signed_by_another_ca_is_refused() -> None:
    mismatch = decide(current=current(issued=False))
    assert (mismatch.outcome, mismatch.reason) == (Outcome.FAILED, "IssuerMismatch")


def test_a_revocation_means_the_certificate_current_when_it_was_created() -> None:
    # Another Revocation revoked 0aaa one second after this one was created, and the
    # certificate was reissued (0abc) since: this Revocation still means 0aaa.
    earlier = entry("0aaa", revoked_at=NOW + timedelta(seconds=1), not_after=NOW + DAY, crl_number=4)
    resolution = decide(issuer=ca_issuer(earlier), revoked_serials=["0AAA"])
    assert (resolution.outcome, resolution.serial, resolution.reason) == (
        Outcome.TARGET,
        "0aaa",
        "AlreadyRevoked",
    )
    assert resolution.not_after == NOW + DAY


def test_a_revocation_created_after_the_last_one_means_the_replacement() -> None:
    before = entry("0aaa", revoked_at=NOW - timedelta(seconds=1))
    resolution = decide(issuer=ca_issuer(before), revoked_serials=["0aaa"])
    assert (resolution.serial, resolution.reason) == ("0abc", "Resolved")
    # A serial the certificate never had does not count, whenever it was revoked.
    unrelated = entry("0bbb", revoked_at=NOW + HOUR)
    assert decide(issuer=ca_issuer(unrelated), revoked_serials=["0aaa"]).serial == "0abc"


# --------------------------------------------------------------------------- the list


def test_each_crl_gets_the_next_number_and_fresh_dates() -> None:
    state = next_crl(IssuerStatus(), NOW.replace(microsecond=123), DAY, HOUR)
    assert state.number == 1
    assert (state.this_update, state.next_update) == (NOW, NOW + DAY)
    assert state.entries == () and state.added is None

    status = IssuerStatus(crl_number=41, crl_this_update=NOW - HOUR, crl_next_update=NOW + DAY)
    assert next_crl(status, NOW, DAY, HOUR).number == 42


def test_a_revocation_joins_with_the_number_of_the_first_crl_listing_it() -> None:
    status = IssuerStatus(crl_number=7, revoked_certificates=[entry("01", crl_number=3)])
    state = next_crl(status, NOW, DAY, HOUR, add=entry("02"))
    assert state.number == 8
    assert state.added is not None and state.added.crl_number == 8
    assert [e.serial_number for e in state.entries] == ["01", "02"]
    assert state.entries[0].crl_number == 3


def test_a_listed_serial_is_never_listed_twice_nor_changed() -> None:
    first = entry("02", revoked_at=NOW - DAY, crl_number=5)
    status = IssuerStatus(crl_number=7, revoked_certificates=[first])
    again = RevokedCertificate(serial_number="02", revoked_at=NOW, reason=RevocationReason.SUPERSEDED)
    state = next_crl(status, NOW, DAY, HOUR, add=again)
    assert state.added is None
    assert state.entries == (first,)
    assert find_entry(status, "0x02") == first
    assert find_entry(status, "03") is None


def test_entries_leave_only_after_expiry_and_one_more_refresh() -> None:
    expired_long_ago = entry("01", not_after=NOW - 2 * HOUR)
    expired_just_now = entry("02", not_after=NOW - timedelta(minutes=30))
    valid = entry("03", not_after=NOW + DAY)
    forever = entry("04")
    status = IssuerStatus(
        crl_number=1, revoked_certificates=[expired_long_ago, expired_just_now, valid, forever]
    )
    state = next_crl(status, NOW, DAY, HOUR)
    assert [e.serial_number for e in state.entries] == ["02", "03", "04"]
    assert state.dropped == ("01",)


def test_the_number_continues_above_what_was_published() -> None:
    status = IssuerStatus(crl_number=2)
    assert next_crl(status, NOW, DAY, HOUR, floor=9).number == 10
    assert next_crl(status, NOW, DAY, HOUR, floor=1).number == 3


def test_a_full_list_refuses_new_entries() -> None:
    full = IssuerStatus(
        crl_number=1,
        revoked_certificates=[entry(normalize_serial(n)) for n in range(1, MAX_JOURNAL_ENTRIES + 1)],
    )
    with pytest.raises(RevocationListFull):
        next_crl(full, NOW, DAY, HOUR, add=entry("ffffff"))


def test_status_fields_carry_the_whole_crl_state() -> None:
    state = next_crl(IssuerStatus(crl_number=3), NOW, DAY, HOUR, add=entry("0a", not_after=NOW + DAY))
    fields = state.status_fields()
    assert fields["crlNumber"] == 4
    assert (fields["crlThisUpdate"], fields["crlNextUpdate"]) == (
        "2031-03-04T05:06:07Z",
        "2031-03-05T05:06:07Z",
    )
    assert fields["revokedCertificates"] == [
        {
            "serialNumber": "0a",
            "revokedAt": "2031-03-04T05:06:07Z",
            "reason": "keyCompromise",
            "notAfter": "2031-03-05T05:06:07Z",
            "crlNumber": 4,
        }
    ]
    assert IssuerStatus.model_validate(fields).crl_number == 4


def test_a_new_crl_is_due_on_refresh_expiry_or_pruning() -> None:
    fresh = IssuerStatus(crl_number=3, crl_this_update=NOW - timedelta(minutes=10), crl_next_update=NOW + DAY)
    assert not crl_refresh_due(fresh, NOW, HOUR, HOUR)
    assert crl_refresh_due(IssuerStatus(), NOW, HOUR, HOUR)
    assert crl_refresh_due(fresh, NOW + HOUR, HOUR, HOUR)
    past_next = fresh.model_copy(update={"crl_next_update": NOW - timedelta(seconds=1)})
    assert crl_refresh_due(past_next, NOW, 2 * DAY, HOUR)
    pruning = fresh.model_copy(update={"revoked_certificates": [entry("01", not_after=NOW - 2 * HOUR)]})
    assert crl_refresh_due(pruning, NOW, DAY, HOUR)


def test_the_timer_starts_a_new_crl_for_a_new_ca_or_a_status_behind_the_published_crl() -> None:
    fresh = IssuerStatus(crl_number=3, crl_this_update=NOW - timedelta(minutes=10), crl_next_update=NOW + DAY)
    assert not new_crl_due(fresh, NOW, HOUR, published=(3, "ca-1"), ca_fingerprint="ca-1")
    assert not new_crl_due(fresh, NOW, HOUR, published=None, ca_fingerprint="ca-1")
    assert new_crl_due(fresh, NOW, HOUR, published=(3, "ca-1"), ca_fingerprint="ca-2")
    assert new_crl_due(fresh, NOW, HOUR, published=(9, "ca-1"), ca_fingerprint="ca-1")
    assert new_crl_due(fresh, NOW + HOUR, HOUR, published=(3, "ca-1"), ca_fingerprint="ca-1")


# --------------------------------------------------------------------------- the archive


def test_archived_entries_round_trip_through_the_text_form() -> None:
    entries = [
        entry("0a", not_after=NOW + DAY, crl_number=4),
        RevokedCertificate(
            serial_number="ff01", revoked_at=NOW - DAY, reason=RevocationReason.PRIVILEGE_WITHDRAWN
        ),
        entry("7f" * 20, crl_number=None),
    ]
    text = encode_revoked(entries)
    assert text.splitlines()[0] == f"0a,{int(NOW.timestamp())},1,{int((NOW + DAY).timestamp())},4"
    assert text.splitlines()[1] == f"ff01,{int((NOW - DAY).timestamp())},9,-,-"
    assert len(text.splitlines()[2]) < 75, "a 20-octet serial takes one short line"
    decoded = decode_revoked(text)
    assert {serial: e.as_revoked_certificate() for serial, e in decoded.items()} == {
        e.serial_number: e for e in entries
    }
    assert decoded["0a"] == ArchivedEntry.of(entries[0]) and ArchivedEntry.of(decoded["0a"]) is decoded["0a"]
    assert decode_revoked("") == {}


@pytest.mark.parametrize("bad", ["0a,1,1,-", "0a,x,1,-,-", "0a,1,8,-,-", "zz,1,1,-,-", "0a,-,1,-,-"])
def test_an_archived_line_that_does_not_parse_is_an_error_not_a_gap(bad: str) -> None:
    with pytest.raises(ValueError, match="line 2"):
        decode_revoked(f"01,1,1,-,-\n{bad}\n")


def test_issued_serials_round_trip_and_leave_after_expiry() -> None:
    serials = {"0b": NOW + DAY, "0c": NOW - timedelta(seconds=1)}
    assert decode_issued(encode_issued(serials)) == serials
    merged = merge_issued(serials, {"0x0D": NOW + 2 * DAY, "0e": NOW - DAY}, NOW)
    assert merged == {"0b": NOW + DAY, "0d": NOW + 2 * DAY}
    with pytest.raises(ValueError):
        decode_issued("0b,-\n")


def test_serials_spread_over_the_shards_and_always_land_in_the_same_one() -> None:
    counts = [0] * SHARD_COUNT
    for number in range(1, 16001):
        counts[shard_index(number)] += 1
    assert min(counts) > 800 and max(counts) < 1200, counts
    assert shard_index("0A:FF") == shard_index(0x0AFF) == shard_index("aff")


def test_moving_entries_into_a_shard_keeps_what_is_there_and_drops_what_no_crl_lists() -> None:
    kept = entry("01", crl_number=2)
    stale = entry("02", not_after=NOW - 2 * HOUR, crl_number=1)
    recent = entry("03", not_after=NOW - timedelta(minutes=30), crl_number=1)
    changed = entry("01", revoked_at=NOW - DAY, crl_number=9)
    merged = merge_revoked(
        {"01": kept, "02": stale, "03": recent}, [changed, entry("04", crl_number=9)], NOW, HOUR
    )
    assert merged == {"01": kept, "03": recent, "04": entry("04", crl_number=9)}
    assert set(merge_revoked({"02": stale}, [], None, HOUR)) == {"02"}, "without a CRL nothing is dropped"


def test_entries_no_crl_lists_any_more_may_be_deleted() -> None:
    entries = [
        entry("01", not_after=NOW - 2 * HOUR),
        entry("02", not_after=NOW - timedelta(minutes=30)),
        entry("03"),
        ArchivedEntry.of(entry("04", not_after=NOW - DAY)),
    ]
    assert unlisted(entries, NOW, HOUR) == ["01", "04"]
    assert unlisted(entries, None, HOUR) == []
    kept = merge_revoked({e.serial_number: e for e in entries}, (), NOW, HOUR)
    assert set(kept) == {"02", "03"}


def test_each_crl_number_lists_what_was_listed_by_then_and_not_yet_gone() -> None:
    entries = [
        entry("01", crl_number=3),
        entry("02", crl_number=5),
        entry("03", crl_number=None),
        entry("04", crl_number=2, not_after=NOW - 2 * HOUR),
    ]
    assert [e.serial_number for e in listed_on(entries, 4, NOW, HOUR)] == ["01", "03"]
    assert [e.serial_number for e in listed_on(entries, 5, NOW - 2 * HOUR, HOUR)] == ["01", "02", "03", "04"]
    assert entry_leaving(entries, NOW - 2 * HOUR, NOW, HOUR)
    assert not entry_leaving(entries, NOW - timedelta(minutes=30), NOW, HOUR), "already gone from that CRL"


def test_a_crl_lists_journal_and_archive_once_each() -> None:
    journal_entry = entry("05", crl_number=6)
    state = next_crl(IssuerStatus(crl_number=6, revoked_certificates=[journal_entry]), NOW, DAY, HOUR)
    archived = [entry("01", crl_number=1), entry("05", crl_number=6), entry("09", crl_number=8)]
    full = state.with_archive(archived, HOUR)
    assert full.number == 7
    assert sorted(e.serial_number for e in full.entries) == ["01", "05"]
    assert full.status_fields()["revokedCertificates"] == state.status_fields()["revokedCertificates"]
    assert len(union_of(archived, [journal_entry])) == 3
    assert CRLState(7, NOW, NOW + DAY, ()).with_archive(archived, HOUR).journal == ()


def test_an_archived_entry_leaving_the_list_starts_a_new_crl() -> None:
    fresh = IssuerStatus(crl_number=3, crl_this_update=NOW - timedelta(minutes=10), crl_next_update=NOW + DAY)
    leaving = [entry("01", not_after=NOW - timedelta(minutes=70))]
    assert not crl_refresh_due(fresh, NOW, DAY, HOUR)
    assert crl_refresh_due(fresh, NOW, DAY, HOUR, archived=leaving)
    assert new_crl_due(fresh, NOW, HOUR, published=(3, "ca"), ca_fingerprint="ca", archived=leaving)
    assert not new_crl_due(fresh, NOW, HOUR, published=(3, "ca"), ca_fingerprint="ca")


# --------------------------------------------------------------------------- after revoking


def test_the_built_in_ca_is_not_notified_and_says_why() -> None:
    notified, reason = issuer_notification(IssuerType.CA)
    assert notified is False and "no external CA" in reason
    assert issuer_notification(IssuerType.SELF_SIGNED)[0] is False


def test_waiting_revocations_back_off_up_to_a_cap() -> None:
    delays = [pending_retry_delay(n) for n in range(12)]
    assert delays[0] == timedelta(seconds=2)
    assert delays[1] == timedelta(seconds=4)
    assert delays == sorted(delays)
    assert delays[-1] == PENDING_RETRY_CAP


def test_compromised_keys_are_critical_news() -> None:
    assert severity_of(RevocationReason.KEY_COMPROMISE) == "critical"
    assert severity_of(RevocationReason.CA_COMPROMISE) == "critical"
    assert severity_of(RevocationReason.SUPERSEDED) == "warning"
