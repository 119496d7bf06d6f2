"""The issuance decisions: what the reconciler does with one certificate, its Secret and its issuer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certctl_operator.api import (
    ConditionStatus,
    IssuerKind,
    IssuerReference,
    IssuerSpec,
    ManagedCertificate,
    find_condition,
    set_condition,
)
from certctl_operator.api.metadata_keys import (
    ANNOTATION_ALLOW_TAKEOVER,
    ANNOTATION_CERTIFICATE_NAME,
    ANNOTATION_RENEW,
    ANNOTATION_REVISION,
)
from certctl_operator.pki import (
    GeneratedCA,
    KeyAlgorithm,
    KeySpec,
    PrivateKey,
    create_self_signed_ca,
    generate_private_key,
    issue_certificate,
    private_key_to_pem,
)
from certctl_operator.policy.issuance import (
    Action,
    IssuerView,
    Mismatch,
    Reason,
    SecretExamination,
    build_request,
    certificate_renewal_time,
    crl_url,
    decide,
    desired_annotations,
    desired_labels,
    examine_secret,
    expiry_notice_due,
    key_encoding_for,
    key_spec_for,
    managed_by_label_value,
    metadata_differs,
    next_action_time,
    ocsp_url,
    other_owner,
    renew_token,
    request_hash,
    secret_conflict,
    secret_written_for,
    serial_hex,
    spec_problems,
    with_notified,
)
from certctl_operator.policy.issuers import SecretSnapshot, evaluate_issuer
from certctl_operator.status.certificates import (
    CertificateFacts,
    ready_transition,
    status_after_failure,
    status_after_issuance,
    status_conflict_waiting,
    status_in_sync,
    status_invalid,
    status_revoked,
)

NOW = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)
NS = "team"
MINIMUM = timedelta(hours=1)
BASE = timedelta(minutes=1)
CAP = timedelta(hours=1)


@pytest.fixture(scope="module")
def ca() -> GeneratedCA:
    return create_self_signed_ca(
        "unit CA", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=365), NOW - timedelta(days=1)
    )


def certificate(status: dict[str, Any] | None = None, generation: int = 1, **spec: Any) -> ManagedCertificate:
    body_spec: dict[str, Any] = {
        "secretName": "web-tls",
        "dnsNames": ["web.example.test"],
        "issuerRef": {"name": "ca"},
        "privateKey": {"algorithm": "ECDSA"},
        "duration": "30d",
    }
    body_spec.update(spec)
    return ManagedCertificate.from_body(
        {
            "apiVersion": "certctl.io/v1alpha1",
            "kind": "ManagedCertificate",
            "metadata": {"name": "web", "namespace": NS, "generation": generation, "annotations": {}},
            "spec": {k: v for k, v in body_spec.items() if v is not None},
            "status": status or {},
        }
    )


def ca_view(ca: GeneratedCA, **spec: Any) -> IssuerView:
    issuer_spec = IssuerSpec.model_validate({"ca": {"secretName": "ca-keypair"}, **spec})
    secret = SecretSnapshot(
        NS,
        "ca-keypair",
        "kubernetes.io/tls",
        data={"tls.crt": ca.certificate_pem.encode(), "tls.key": ca.private_key_pem.encode()},
    )
    return IssuerView(IssuerReference(name="ca"), issuer_spec, evaluate_issuer(issuer_spec, secret, NOW))


def self_signed_view() -> IssuerView:
    spec = IssuerSpec.model_validate({"selfSigned": {}})
    return IssuerView(IssuerReference(name="ca"), spec, evaluate_issuer(spec, None, NOW))


def write(
    cert: ManagedCertificate,
    view: IssuerView,
    revision: int,
    *,
    key: PrivateKey | None = None,
    now: datetime = NOW,
    dns_names: list[str] | None = None,
) -> tuple[SecretSnapshot, CertificateFacts]:
    """The Secret the operator writes for ``revision``, as the handler builds it."""
    request = build_request(cert.spec, NS, view)
    key = key or generate_private_key(key_spec_for(cert.spec))
    signed_request = replace(request, dns_names=tuple(dns_names)) if dns_names is not None else request
    issued = issue_certificate(signed_request, key, view.authority, now)
    serial = serial_hex(issued.serial)
    annotations = desired_annotations(
        cert,
        revision=revision,
        serial=serial,
        hash_=request_hash(
            request, key_spec_for(cert.spec), key_encoding_for(cert.spec), cert.spec.issuer_ref
        ),
        renew_request=cert.status.last_renew_request,
    )
    secret = SecretSnapshot(
        NS,
        cert.spec.secret_name,
        "kubernetes.io/tls",
        labels=desired_labels(cert),
        annotations=annotations,
        data={
            "tls.crt": issued.full_chain_pem.encode(),
            "tls.key": private_key_to_pem(key, key_encoding_for(cert.spec)).encode(),
            "ca.crt": issued.ca_pem.encode(),
        },
        resource_version="1",
    )
    facts = CertificateFacts(
        revision, serial, issued.fingerprint_sha256.lower(), issued.not_before, issued.not_after
    )
    return secret, facts


def examine(cert: ManagedCertificate, secret: SecretSnapshot | None, view: IssuerView) -> SecretExamination:
    request = build_request(cert.spec, NS, view)
    return examine_secret(secret, certificate_name="web", spec=cert.spec, request=request, issuer=view)


def issued_cert(cert: ManagedCertificate, facts: CertificateFacts, now: datetime = NOW) -> ManagedCertificate:
    return cert.model_copy(update={"status": status_after_issuance(cert, facts, renew_request=None, now=now)})


# --------------------------------------------------------------------------- URLs, requests, specs


def test_distribution_point_urls_name_the_namespace_or_cluster() -> None:
    assert crl_url("http://pki.test/", IssuerKind.ISSUER, "team", "ca") == "http://pki.test/crl/team/ca.crl"
    assert ocsp_url("http://pki.test", IssuerKind.ISSUER, "team", "ca") == "http://pki.test/ocsp/team/ca"
    assert (
        crl_url("http://pki.test", IssuerKind.CLUSTER_ISSUER, "team", "ca")
        == "http://pki.test/crl/_cluster/ca.crl"
    )
    assert (
        ocsp_url("http://pki.test", IssuerKind.CLUSTER_ISSUER, "team", "ca")
        == "http://pki.test/ocsp/_cluster/ca"
    )


def test_request_carries_urls_only_for_a_ca_issuer_with_a_base_url(ca: GeneratedCA) -> None:
    cert = certificate()
    with_url = build_request(cert.spec, NS, ca_view(ca, publicBaseURL="http://pki.test"))
    assert with_url.crl_distribution_url == "http://pki.test/crl/team/ca.crl"
    assert with_url.ocsp_url == "http://pki.test/ocsp/team/ca"
    no_ocsp = build_request(
        cert.spec, NS, ca_view(ca, publicBaseURL="http://pki.test", ocsp={"enabled": False})
    )
    assert no_ocsp.crl_distribution_url and no_ocsp.ocsp_url is None
    assert build_request(cert.spec, NS, ca_view(ca)).crl_distribution_url is None
    assert (
        build_request(cert.spec, NS, ca_view(ca), "http://default.test").ocsp_url
        == "http://default.test/ocsp/team/ca"
    )
    assert (
        build_request(cert.spec, NS, self_signed_view(), "http://default.test").crl_distribution_url is None
    )


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"duration": "30m"}, "shorter than the minimum"),
        ({"usages": ["cert sign"]}, "only allowed on a CA"),
        ({"isCA": True, "dnsNames": ["ca.test"]}, "CA certificate needs a subject"),
    ],
)
def test_specs_that_can_never_be_issued(spec: dict[str, Any], fragment: str) -> None:
    problems = spec_problems(certificate(**spec).spec, NS, MINIMUM)
    assert any(fragment in problem for problem in problems), problems
    decision = decide(
        certificate(**spec), SecretExamination(exists=False), problems=problems, issuer_ready=True, now=NOW
    )
    assert decision.action is Action.INVALID and decision.reason == Reason.INVALID_SPEC


def test_valid_specs_have_no_problems() -> None:
    assert spec_problems(certificate().spec, NS, MINIMUM) == []
    ca_spec = certificate(
        isCA=True, commonName="root", privateKey={"algorithm": "Ed25519", "encoding": "PKCS8"}
    )
    assert spec_problems(ca_spec.spec, NS, MINIMUM) == []


def test_request_hash_ignores_order_and_follows_everything_issued() -> None:
    one = certificate(dnsNames=["a.test", "b.test"])
    two = certificate(dnsNames=["b.test", "a.test"])

    def digest(cert: ManagedCertificate) -> str:
        request = build_request(cert.spec, NS)
        return request_hash(
            request, key_spec_for(cert.spec), key_encoding_for(cert.spec), cert.spec.issuer_ref
        )

    assert digest(one) == digest(two)
    assert digest(one) != digest(certificate(dnsNames=["a.test", "b.test"], duration="31d"))
    assert digest(one) != digest(certificate(dnsNames=["a.test", "b.test"], privateKey={"algorithm": "RSA"}))
    assert digest(one) != digest(certificate(dnsNames=["a.test", "b.test"], issuerRef={"name": "other"}))


def test_renew_tokens_and_label_values_stay_within_limits() -> None:
    assert renew_token(None) is None and renew_token("now") == "now"
    long = renew_token("x" * 1000)
    assert long is not None and long.startswith("sha256:") and len(long) == 71
    assert managed_by_label_value("web") == "web"
    value = managed_by_label_value("a" * 200)
    assert len(value) <= 63 and value != managed_by_label_value("a" * 199)


# --------------------------------------------------------------------------- renewal timing


def test_renewal_counts_the_lifetime_from_issuance_not_from_the_backdated_not_before() -> None:
    not_before = NOW - timedelta(minutes=5)  # issued at NOW, backdated 5 minutes
    short = certificate(duration="20s", renewBefore="10s").spec
    assert certificate_renewal_time(short, not_before, NOW + timedelta(seconds=20)) == NOW + timedelta(
        seconds=10
    )
    default = certificate(duration="30s").spec
    assert certificate_renewal_time(default, not_before, NOW + timedelta(seconds=30)) == NOW + timedelta(
        seconds=20
    )
    percent = certificate(duration="100d", renewBeforePercentage=25).spec
    assert certificate_renewal_time(percent, not_before, NOW + timedelta(days=100)) == NOW + timedelta(
        days=75
    )


@pytest.mark.parametrize(
    ("duration", "timing", "renews_after"),
    [
        # cert-manager renews at notAfter - renewBefore, or with a percentage, or 2/3 through the
        # lifetime counted from notBefore (its certificates are not backdated).
        ("2160h", {}, timedelta(days=60)),
        ("2160h", {"renewBeforePercentage": 25}, timedelta(days=67, hours=12)),
        ("2160h", {"renewBefore": "360h"}, timedelta(days=75)),
        # Within the last 5 minutes of the lifetime: still honoured, as cert-manager does.
        ("1h", {"renewBefore": "57m"}, timedelta(minutes=3)),
    ],
)
def test_a_certificate_cert_manager_issued_renews_when_cert_manager_would_have(
    duration: str, timing: dict[str, Any], renews_after: timedelta
) -> None:
    spec = certificate(duration=duration, **timing).spec
    # Signed at NOW, valid for exactly the duration: nothing backdated.
    renewal = certificate_renewal_time(spec, NOW, NOW + spec.duration_delta)
    assert renewal == NOW + renews_after


def test_a_certificate_cut_short_by_its_ca_renews_in_its_own_last_third() -> None:
    spec = certificate(duration="90d", renewBefore="30d").spec
    # The CA expires in 3 days: renewBefore is longer than what is left, so a third of it is.
    renewal = certificate_renewal_time(spec, NOW - timedelta(minutes=5), NOW + timedelta(days=3))
    assert renewal == NOW + timedelta(days=2)


# --------------------------------------------------------------------------- examining the Secret


def test_the_secret_as_written_fits(ca: GeneratedCA) -> None:
    cert = certificate()
    view = ca_view(ca, publicBaseURL="http://pki.test")
    secret, facts = write(cert, view, 1)
    exam = examine(cert, secret, view)
    assert exam.fits, exam.problems
    assert (exam.revision, exam.serial, exam.fingerprint) == (1, facts.serial, facts.fingerprint)
    assert exam.owner == "web"


@pytest.mark.parametrize(
    ("change", "kind", "fragment"),
    [
        ({"dnsNames": ["other.example.test"]}, Mismatch.SPEC, "dnsNames differ"),
        ({"privateKey": {"algorithm": "RSA"}}, Mismatch.SPEC, "key differs"),
        ({"privateKey": {"algorithm": "ECDSA", "encoding": "PKCS8"}}, Mismatch.SPEC, "encoded as PKCS1"),
        ({"duration": "60d"}, Mismatch.SPEC, "different spec"),
        ({"issuerRef": {"name": "another"}}, Mismatch.SPEC, "another issuer"),
    ],
)
def test_a_spec_change_makes_the_secret_stale(
    ca: GeneratedCA, change: dict[str, Any], kind: Mismatch, fragment: str
) -> None:
    view = ca_view(ca)
    secret, _ = write(certificate(), view, 1)
    exam = examine(certificate(**change), secret, view)
    assert not exam.fits
    assert any(k is kind and fragment in text for k, text in exam.problems), exam.problems


def test_tampering_makes_the_secret_unfit(ca: GeneratedCA) -> None:
    cert = certificate()
    view = ca_view(ca)
    secret, _ = write(cert, view, 1)
    other, _ = write(cert, view, 1)

    swapped_key = replace(secret, data={**secret.data, "tls.key": other.data["tls.key"]})
    assert (Mismatch.SECRET, "tls.key does not belong to the certificate in tls.crt") in examine(
        cert, swapped_key, view
    ).problems
    no_crt = replace(secret, data={k: v for k, v in secret.data.items() if k != "tls.crt"})
    assert not examine(cert, no_crt, view).fits
    garbage = replace(
        secret,
        data={**secret.data, "tls.crt": b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
    )
    assert not examine(cert, garbage, view).fits
    opaque = replace(secret, type="Opaque")
    assert any("type Opaque" in text for _, text in examine(cert, opaque, view).problems)
    wrong_serial = replace(secret, annotations={**secret.annotations, "certctl.io/serial-number": "00"})
    assert not examine(cert, wrong_serial, view).fits
    foreign = replace(secret, annotations={**secret.annotations, "certctl.io/certificate-name": "api"})
    assert any("ManagedCertificate api" in text for _, text in examine(cert, foreign, view).problems)


def test_a_new_ca_or_new_urls_make_the_secret_stale_but_a_broken_issuer_does_not(ca: GeneratedCA) -> None:
    cert = certificate()
    view = ca_view(ca)
    secret, _ = write(cert, view, 1)
    other_ca = create_self_signed_ca(
        "other", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=30), NOW - timedelta(days=1)
    )
    rotated = examine(cert, secret, ca_view(other_ca))
    assert any(kind is Mismatch.ISSUER and "not signed by" in text for kind, text in rotated.problems)
    moved = examine(cert, secret, ca_view(ca, publicBaseURL="http://pki.test"))
    assert {kind for kind, _ in moved.problems} >= {Mismatch.ISSUER}
    broken_spec = IssuerSpec.model_validate({"ca": {"secretName": "ca-keypair"}})
    broken = IssuerView(IssuerReference(name="ca"), broken_spec, evaluate_issuer(broken_spec, None, NOW))
    assert examine(cert, secret, broken).fits


def test_self_signed_secret_checks_its_own_signature() -> None:
    cert = certificate()
    view = self_signed_view()
    secret, _ = write(cert, view, 1)
    assert examine(cert, secret, view).fits
    assert secret.data["ca.crt"] == secret.data["tls.crt"]


# --------------------------------------------------------------------------- decisions


def test_first_issuance_when_the_secret_does_not_exist() -> None:
    decision = decide(certificate(), SecretExamination(exists=False), problems=[], issuer_ready=True, now=NOW)
    assert (decision.action, decision.reason, decision.revision) == (Action.ISSUE, Reason.DOES_NOT_EXIST, 1)
    assert decision.new_key


def test_nothing_to_do_while_the_secret_matches_until_the_renewal_time(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    secret, facts = write(certificate(), view, 1)
    cert = issued_cert(certificate(), facts)
    exam = examine(cert, secret, view)
    assert decide(cert, exam, problems=[], issuer_ready=True, now=NOW).action is Action.NONE
    renewal = cert.status.renewal_time
    assert renewal is not None and renewal == NOW + timedelta(days=20)
    assert (
        decide(cert, exam, problems=[], issuer_ready=True, now=renewal - timedelta(seconds=1)).action
        is Action.NONE
    )
    due = decide(cert, exam, problems=[], issuer_ready=True, now=renewal)
    assert (due.action, due.reason, due.revision) == (Action.ISSUE, Reason.RENEWING, 2)
    expired = decide(cert, exam, problems=[], issuer_ready=True, now=facts.not_after)
    assert expired.reason == Reason.EXPIRED


def test_secret_gone_or_changed_means_the_next_revision(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    secret, facts = write(certificate(), view, 3)
    cert = issued_cert(certificate(), facts)
    gone = decide(cert, SecretExamination(exists=False), problems=[], issuer_ready=True, now=NOW)
    assert (gone.action, gone.reason, gone.revision) == (Action.ISSUE, Reason.DOES_NOT_EXIST, 4)
    changed = certificate(status=cert.status.dump(), generation=2, dnsNames=["new.example.test"])
    decision = decide(changed, examine(changed, secret, view), problems=[], issuer_ready=True, now=NOW)
    assert (decision.action, decision.reason, decision.revision) == (Action.ISSUE, Reason.SPEC_CHANGED, 4)


def test_a_secret_one_revision_ahead_that_fits_is_adopted(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    _, first = write(certificate(), view, 1)
    cert = issued_cert(certificate(), first)
    ahead, second = write(cert, view, 2)
    decision = decide(cert, examine(cert, ahead, view), problems=[], issuer_ready=True, now=NOW)
    assert (decision.action, decision.revision) == (Action.ADOPT, 2)
    adopted = status_after_issuance(cert, second, renew_request=decision.renew_request, now=NOW)
    assert (adopted.revision, adopted.serial_number) == (2, second.serial)
    # Once adopted, the same Secret is simply in sync.
    after = cert.model_copy(update={"status": adopted})
    assert (
        decide(after, examine(after, ahead, view), problems=[], issuer_ready=True, now=NOW).action
        is Action.NONE
    )


def test_a_secret_several_revisions_ahead_that_fits_is_adopted_not_issued_again(ca: GeneratedCA) -> None:
    # Revisions 2 and 3 were written for two spec changes while the status writes lost races with
    # another client's edits: the status still records revision 1, the Secret fits revision 3.
    view = ca_view(ca)
    _, first = write(certificate(), view, 1)
    cert = issued_cert(certificate(), first)
    changed = certificate(status=cert.status.dump(), generation=3, dnsNames=["new.example.test"])
    ahead, third = write(changed, view, 3)
    decision = decide(changed, examine(changed, ahead, view), problems=[], issuer_ready=True, now=NOW)
    assert (decision.action, decision.revision) == (Action.ADOPT, 3)
    adopted = status_after_issuance(changed, third, renew_request=decision.renew_request, now=NOW)
    assert (adopted.revision, adopted.serial_number) == (3, third.serial)
    # A Secret of an older revision than the status records is replaced, never adopted.
    _, fifth = write(changed, view, 5)
    newer = issued_cert(changed, fifth)
    behind = decide(newer, examine(newer, ahead, view), problems=[], issuer_ready=True, now=NOW)
    assert (behind.action, behind.reason, behind.revision) == (Action.ISSUE, Reason.SECRET_MISMATCH, 6)


def test_the_status_after_an_issuance_leaves_the_status_it_started_from_as_it_was(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    _, first = write(certificate(), view, 1)
    cert = issued_cert(
        certificate(status={"failedIssuanceAttempts": 2, "revokedSerialNumbers": ["0a"]}), first
    )
    before = cert.status.dump()
    _, second = write(cert, view, 2)
    later = NOW + timedelta(hours=1)
    after = status_after_issuance(cert, second, renew_request="now", now=later)
    assert cert.status.dump() == before
    assert (after.revision, after.serial_number, after.last_renew_request) == (2, second.serial, "now")
    assert after.revoked_serial_numbers == ["0a"] and after.failed_issuance_attempts is None


def test_a_fresh_certificate_adopts_a_matching_secret_it_wrote_before() -> None:
    view = self_signed_view()
    secret, _ = write(certificate(), view, 1)
    decision = decide(
        certificate(), examine(certificate(), secret, view), problems=[], issuer_ready=True, now=NOW
    )
    assert (decision.action, decision.revision) == (Action.ADOPT, 1)


def test_a_secret_ahead_that_does_not_fit_is_replaced_without_reusing_its_revision(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    _, first = write(certificate(), view, 1)
    cert = issued_cert(certificate(), first)
    stale, _ = write(cert, view, 3, dns_names=["elsewhere.example.test"])
    decision = decide(cert, examine(cert, stale, view), problems=[], issuer_ready=True, now=NOW)
    assert (decision.action, decision.revision) == (Action.ISSUE, 4)


def test_a_secret_of_another_certificate_is_not_adopted(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    other = certificate()
    secret, _ = write(other, view, 1)
    foreign = replace(secret, annotations={**secret.annotations, "certctl.io/certificate-name": "api"})
    decision = decide(
        certificate(), examine(certificate(), foreign, view), problems=[], issuer_ready=True, now=NOW
    )
    assert (decision.action, decision.revision) == (Action.ISSUE, 1)


def test_rotation_policy_never_reuses_the_key_in_the_secret(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    spec = {"privateKey": {"algorithm": "ECDSA", "rotationPolicy": "Never"}}
    secret, facts = write(certificate(**spec), view, 1)
    cert = issued_cert(certificate(**spec), facts)
    exam = examine(cert, secret, view)
    renewal = decide(cert, exam, problems=[], issuer_ready=True, now=facts.not_after)
    assert renewal.action is Action.ISSUE and not renewal.new_key
    always = issued_cert(certificate(), facts)
    assert decide(
        always, examine(always, secret, view), problems=[], issuer_ready=True, now=facts.not_after
    ).new_key
    # A key of another type than the spec asks for is not reused.
    rsa_spec = {"privateKey": {"algorithm": "RSA", "rotationPolicy": "Never"}}
    changed = certificate(status=cert.status.dump(), generation=2, **rsa_spec)
    assert decide(changed, examine(changed, secret, view), problems=[], issuer_ready=True, now=NOW).new_key


def test_renew_annotation_asks_once_per_value(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    secret, facts = write(certificate(), view, 1)
    cert = issued_cert(certificate(), facts)
    cert.metadata.annotations[ANNOTATION_RENEW] = "2030-01-15"
    exam = examine(cert, secret, view)
    decision = decide(cert, exam, problems=[], issuer_ready=True, now=NOW)
    assert (decision.action, decision.reason, decision.renew_request) == (
        Action.ISSUE,
        Reason.MANUALLY_TRIGGERED,
        "2030-01-15",
    )
    cert.status.last_renew_request = "2030-01-15"
    assert decide(cert, exam, problems=[], issuer_ready=True, now=NOW).action is Action.NONE


def test_a_revoked_certificate_waits_for_a_reissue_request_and_then_gets_a_new_key(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    spec = {"privateKey": {"algorithm": "ECDSA", "rotationPolicy": "Never"}}
    secret, facts = write(certificate(**spec), view, 1)
    cert = issued_cert(certificate(**spec), facts)
    cert.status.revoked = True
    cert.status.revoked_serial_numbers = [facts.serial]
    for exam in (examine(cert, secret, view), SecretExamination(exists=False)):
        for now in (NOW, facts.not_after + timedelta(days=1)):
            assert decide(cert, exam, problems=[], issuer_ready=True, now=now).action is Action.REVOKED
    assert next_action_time(cert, NOW) is None
    cert.metadata.annotations[ANNOTATION_RENEW] = f"revoked-{facts.serial}"
    decision = decide(cert, examine(cert, secret, view), problems=[], issuer_ready=True, now=NOW)
    assert decision.action is Action.ISSUE and decision.new_key and decision.revision == 2
    reissued = status_after_issuance(
        cert, write(cert, view, 2)[1], renew_request=decision.renew_request, now=NOW
    )
    assert reissued.revoked is False and reissued.revoked_serial_numbers == [facts.serial]
    assert reissued.last_renew_request == f"revoked-{facts.serial}"


def test_a_revoked_serial_in_the_list_counts_even_without_the_flag(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    secret, facts = write(certificate(), view, 1)
    cert = issued_cert(certificate(), facts)
    cert.status.revoked_serial_numbers = [facts.serial.upper()]
    assert (
        decide(cert, examine(cert, secret, view), problems=[], issuer_ready=True, now=NOW).action
        is Action.REVOKED
    )


def test_revoked_status_keeps_the_revocations_ready_condition() -> None:
    cert = certificate(status={"revision": 1, "serialNumber": "ab", "revoked": True})
    cert.status.conditions = set_condition(
        [],
        "Ready",
        ConditionStatus.FALSE,
        "Revoked",
        "revoked by Revocation r1",
        now=NOW - timedelta(hours=1),
    )
    status = status_revoked(cert, now=NOW)
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None and ready.message == "revoked by Revocation r1"
    issuing = find_condition(status.conditions, "Issuing")
    assert issuing is not None and issuing.reason == "Revoked"


# --------------------------------------------------------------------------- failures and back-off


def failed(
    cert: ManagedCertificate, reason: str = Reason.ISSUANCE_FAILED, now: datetime = NOW
) -> ManagedCertificate:
    status = status_after_failure(
        cert,
        reason=reason,
        message="boom",
        trigger=Reason.DOES_NOT_EXIST,
        trigger_message="missing",
        now=now,
        retry_base=BASE,
        retry_cap=CAP,
    )
    return cert.model_copy(update={"status": status})


def test_failures_back_off_exponentially_from_the_status() -> None:
    cert = failed(certificate())
    assert cert.status.failed_issuance_attempts == 1
    assert cert.status.next_attempt_time == NOW + BASE
    ready = find_condition(cert.status.conditions, "Ready")
    assert ready is not None and (ready.status, ready.reason) == (
        ConditionStatus.FALSE,
        Reason.ISSUANCE_FAILED,
    )
    missing = SecretExamination(exists=False)
    waiting = decide(cert, missing, problems=[], issuer_ready=True, now=NOW + timedelta(seconds=30))
    assert (waiting.action, waiting.not_before) == (Action.WAIT, NOW + BASE)
    assert decide(cert, missing, problems=[], issuer_ready=True, now=NOW + BASE).action is Action.ISSUE
    again = failed(cert, now=NOW + BASE)
    assert again.status.failed_issuance_attempts == 2
    assert again.status.next_attempt_time == NOW + BASE + 2 * BASE
    assert next_action_time(again, NOW + BASE) == NOW + 3 * BASE


def test_a_retry_whose_time_passed_before_it_was_scheduled_is_due_at_once() -> None:
    # The retry time is whole seconds: a failure 990 ms into a second is due one back-off after the
    # start of that second, which can pass before the status write that records it returns. In CI,
    # with a one-second back-off, such a retry was due 10 ms after its failure and never ran.
    failed_at = NOW + timedelta(milliseconds=990)
    cert = failed(certificate(), now=failed_at)
    assert cert.status.next_attempt_time == NOW + BASE
    written = NOW + BASE + timedelta(milliseconds=20)
    assert next_action_time(cert, written) == written
    assert next_action_time(cert, failed_at) == NOW + BASE
    # The reconcile it brings issues (or fails again, with a later retry): nothing is due at once after.
    missing = SecretExamination(exists=False)
    assert decide(cert, missing, problems=[], issuer_ready=True, now=written).action is Action.ISSUE
    again = failed(cert, now=written)
    assert next_action_time(again, written) == NOW + BASE + 2 * BASE


def test_back_off_is_skipped_for_a_new_spec_or_an_issuer_that_recovered() -> None:
    missing = SecretExamination(exists=False)
    issuer_failure = failed(certificate(), Reason.ISSUER_NOT_READY)
    soon = NOW + timedelta(seconds=5)
    assert decide(issuer_failure, missing, problems=[], issuer_ready=False, now=soon).action is Action.WAIT
    assert decide(issuer_failure, missing, problems=[], issuer_ready=True, now=soon).action is Action.ISSUE
    signing_failure = failed(certificate())
    assert decide(signing_failure, missing, problems=[], issuer_ready=True, now=soon).action is Action.WAIT
    edited = signing_failure.model_copy(deep=True)
    edited.metadata.generation = 2
    assert decide(edited, missing, problems=[], issuer_ready=True, now=soon).action is Action.ISSUE


def renew_requested(cert: ManagedCertificate, value: str) -> ManagedCertificate:
    requested = cert.model_copy(deep=True)
    requested.metadata.annotations[ANNOTATION_RENEW] = value
    return requested


def test_a_new_renew_value_cuts_the_back_off_short_once() -> None:
    missing = SecretExamination(exists=False)
    soon = NOW + timedelta(seconds=5)
    cert = failed(certificate())
    assert cert.status.failed_renew_request is None
    asked = renew_requested(cert, "now-please")
    assert decide(asked, missing, problems=[], issuer_ready=True, now=soon).action is Action.ISSUE
    # That attempt failed too: the same value waits for the back-off, the next new one does not.
    again = failed(asked, now=soon)
    assert again.status.failed_renew_request == "now-please"
    assert again.status.failed_issuance_attempts == 2
    later = soon + timedelta(seconds=5)
    assert decide(again, missing, problems=[], issuer_ready=True, now=later).action is Action.WAIT
    newer = renew_requested(again, "really-now")
    assert decide(newer, missing, problems=[], issuer_ready=True, now=later).action is Action.ISSUE
    # The value the current certificate answered is no request at all.
    answered = again.model_copy(deep=True)
    answered.status.last_renew_request = "now-please"
    assert decide(answered, missing, problems=[], issuer_ready=True, now=later).action is Action.WAIT


def test_success_clears_the_failure_record(ca: GeneratedCA) -> None:
    cert = failed(failed(certificate()))
    _, facts = write(cert, ca_view(ca), 1)
    status = status_after_issuance(cert, facts, renew_request=None, now=NOW)
    assert status.failed_issuance_attempts is None and status.last_failure_time is None
    assert status.next_attempt_time is None and status.failed_renew_request is None
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None and ready.status == ConditionStatus.TRUE
    assert ready_transition(cert.status, status)
    assert not ready_transition(status, status)


def test_an_invalid_spec_is_not_scheduled() -> None:
    cert = certificate(duration="1m")
    status = status_invalid(cert, "too short", now=NOW)
    invalid = cert.model_copy(update={"status": status})
    assert next_action_time(invalid, NOW) is None
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None and ready.reason == Reason.INVALID_SPEC


# --------------------------------------------------------------------------- status in sync, schedule


def test_in_sync_status_follows_a_changed_renew_before(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    secret, facts = write(certificate(), view, 1)
    cert = issued_cert(certificate(), facts)
    edited = certificate(status=cert.status.dump(), generation=2, renewBefore="2d")
    exam = examine(edited, secret, view)
    assert decide(edited, exam, problems=[], issuer_ready=True, now=NOW).action is Action.NONE
    status = status_in_sync(edited, exam, now=NOW)
    assert status.renewal_time == facts.not_after - timedelta(days=2)
    assert status.observed_generation == 2
    assert next_action_time(edited.model_copy(update={"status": status}), NOW) == status.renewal_time


def test_metadata_drift_is_seen(ca: GeneratedCA) -> None:
    cert = certificate(secretTemplate={"labels": {"team": "a"}, "annotations": {"note": "x"}})
    secret, _ = write(cert, ca_view(ca), 1)
    labels = desired_labels(cert)
    assert labels["team"] == "a" and labels["certctl.io/managed-by-certificate"] == "web"
    annotations = dict(secret.annotations)
    assert not metadata_differs(secret, labels, annotations)
    assert metadata_differs(replace(secret, labels={}), labels, annotations)
    stripped = {k: v for k, v in annotations.items() if k != ANNOTATION_REVISION}
    assert metadata_differs(replace(secret, annotations=stripped), labels, annotations)


# --------------------------------------------------------------------------- expiry notices


def test_expiry_notices_are_due_once_per_threshold_and_revision(ca: GeneratedCA) -> None:
    notifications = {"channels": ["ops"], "expiryThresholds": ["10d", "3d", "0d"]}
    spec = {"notifications": notifications}
    _, facts = write(certificate(**spec), ca_view(ca), 1)
    cert = issued_cert(certificate(**spec), facts)
    not_after = facts.not_after
    assert expiry_notice_due(cert, NOW) is None
    # The 10d threshold falls on the renewal time (a third of 30 days left).
    assert next_action_time(cert, NOW) == cert.status.renewal_time
    notice = expiry_notice_due(cert, not_after - timedelta(days=10))
    assert notice is not None and notice.threshold_text == "10d" and notice.crossed == ("10d",)
    cert.status = with_notified(cert.status, notice.crossed)
    assert expiry_notice_due(cert, not_after - timedelta(days=9)) is None
    # Several thresholds crossed at once (the operator was down): the most urgent is announced.
    late = expiry_notice_due(cert, not_after + timedelta(seconds=1))
    assert late is not None and late.threshold == timedelta(0) and late.crossed == ("0d", "3d")
    # A new revision arms them again.
    renewed = status_after_issuance(cert, facts, renew_request=None, now=NOW)
    assert renewed.notified_expiry_thresholds is None


def test_thresholds_longer_than_the_lifetime_are_not_announced(ca: GeneratedCA) -> None:
    notifications = {"channels": ["ops"], "expiryThresholds": ["30d", "0d"], "events": ["Expiring"]}
    spec = {"notifications": notifications, "duration": "20d"}
    _, facts = write(certificate(**spec), ca_view(ca), 1)
    cert = issued_cert(certificate(**spec), facts)
    assert expiry_notice_due(cert, NOW) is None
    notice = expiry_notice_due(cert, facts.not_after)
    assert notice is not None and notice.crossed == ("0d",)
    unsubscribed = certificate(**{**spec, "notifications": {**notifications, "events": ["Issued"]}})
    assert expiry_notice_due(issued_cert(unsubscribed, facts), facts.not_after) is None


def test_the_issuing_reason_names_an_edited_secret_before_a_spec_change(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    secret, facts = write(certificate(), view, 1)
    other, _ = write(certificate(), view, 1)
    cert = issued_cert(certificate(), facts)
    changed = certificate(
        status=cert.status.dump(), generation=2, privateKey={"algorithm": "ECDSA", "encoding": "PKCS8"}
    )
    edited = replace(secret, data={**secret.data, "tls.key": other.data["tls.key"]})
    exam = examine(changed, edited, view)
    assert {kind for kind, _ in exam.problems} == {Mismatch.SECRET, Mismatch.SPEC}
    decision = decide(changed, exam, problems=[], issuer_ready=True, now=NOW)
    assert (decision.action, decision.reason) == (Action.ISSUE, Reason.SECRET_MISMATCH)


def test_a_secret_ahead_holding_a_revoked_serial_is_not_adopted(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    _, first = write(certificate(), view, 1)
    cert = issued_cert(certificate(), first)
    ahead, second = write(cert, view, 2)
    cert.status.revoked_serial_numbers = [second.serial]
    decision = decide(cert, examine(cert, ahead, view), problems=[], issuer_ready=True, now=NOW)
    assert (decision.action, decision.revision) == (Action.ISSUE, 3)


# --------------------------------------------------------------------------- whose Secret


def secret_of(
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    type_: str = "kubernetes.io/tls",
) -> SecretSnapshot:
    return SecretSnapshot(NS, "web-tls", type_, labels=labels or {}, annotations=annotations or {})


def test_a_missing_secret_or_one_written_for_the_certificate_may_be_written() -> None:
    assert secret_conflict(None, certificate_name="web", owner_claims_it=False) is None
    ours = secret_of({ANNOTATION_CERTIFICATE_NAME: "web"})
    assert secret_written_for(ours, "web")
    assert secret_conflict(ours, certificate_name="web", owner_claims_it=False) is None
    # Annotations lost (a tampered Secret): the operator's label still says whose it is.
    relabelled = secret_of(labels={"certctl.io/managed-by-certificate": managed_by_label_value("web")})
    assert secret_written_for(relabelled, "web") and not secret_written_for(relabelled, "api")
    assert secret_conflict(relabelled, certificate_name="web", owner_claims_it=False) is None


def test_a_secret_the_operator_did_not_write_is_written_only_when_its_owner_allows_it() -> None:
    users = secret_of({"owner": "someone"})
    assert other_owner(users, "web") is None
    message = secret_conflict(users, certificate_name="web", owner_claims_it=False)
    assert message is not None
    assert "web-tls" in message and f"{ANNOTATION_ALLOW_TAKEOVER}=web" in message
    other = secret_of({ANNOTATION_ALLOW_TAKEOVER: "api"})
    message = secret_conflict(other, certificate_name="web", owner_claims_it=False)
    assert message is not None and "allows ManagedCertificate api, not web" in message
    allowed = secret_of({ANNOTATION_ALLOW_TAKEOVER: "web"})
    assert secret_conflict(allowed, certificate_name="web", owner_claims_it=False) is None
    # The type cannot change, whatever the annotation says.
    opaque = secret_of({ANNOTATION_ALLOW_TAKEOVER: "web"}, type_="Opaque")
    message = secret_conflict(opaque, certificate_name="web", owner_claims_it=False)
    assert message is not None and "Opaque" in message


def test_a_secret_written_for_another_certificate_is_free_once_that_one_lets_go() -> None:
    theirs = secret_of({ANNOTATION_CERTIFICATE_NAME: "api"})
    assert other_owner(theirs, "web") == "api" and other_owner(theirs, "api") is None
    assert not secret_written_for(theirs, "web")
    assert secret_conflict(theirs, certificate_name="web", owner_claims_it=True) == (
        "Secret web-tls belongs to ManagedCertificate api"
    )
    assert secret_conflict(theirs, certificate_name="web", owner_claims_it=False) is None


def test_a_conflict_is_tried_once_then_waits_until_the_secret_is_free() -> None:
    missing = SecretExamination(exists=False)
    conflict = "Secret web-tls belongs to ManagedCertificate api"
    cert = certificate()
    first = decide(cert, missing, problems=[], issuer_ready=True, now=NOW, conflict=conflict)
    assert (first.action, first.conflict, first.reason) == (Action.CONFLICT, conflict, Reason.DOES_NOT_EXIST)
    blocked = failed(cert, Reason.SECRET_CONFLICT)
    soon = NOW + timedelta(seconds=5)
    waiting = decide(blocked, missing, problems=[], issuer_ready=True, now=soon, conflict=conflict)
    assert (waiting.action, waiting.conflict) == (Action.WAIT, conflict)
    # Free now: at once, whatever the back-off.
    assert decide(blocked, missing, problems=[], issuer_ready=True, now=soon).action is Action.ISSUE
    # Still in the way when the back-off ends: counted as one more attempt.
    due = decide(blocked, missing, problems=[], issuer_ready=True, now=NOW + BASE, conflict=conflict)
    assert due.action is Action.CONFLICT
    # A conflict does not shorten the back-off of another failure.
    signing = failed(cert)
    assert decide(signing, missing, problems=[], issuer_ready=True, now=soon).action is Action.WAIT


def test_a_waiting_conflict_follows_the_secret_changing_hands_without_an_attempt() -> None:
    cert = certificate()
    blocked = cert.model_copy(
        update={
            "status": status_after_failure(
                cert,
                reason=Reason.SECRET_CONFLICT,
                message="Secret web-tls belongs to ManagedCertificate api",
                trigger=Reason.DOES_NOT_EXIST,
                trigger_message="missing",
                now=NOW,
                retry_base=BASE,
                retry_cap=CAP,
            )
        }
    )
    later = NOW + timedelta(seconds=5)
    same = status_conflict_waiting(blocked, "Secret web-tls belongs to ManagedCertificate api", now=later)
    assert same == blocked.status
    moved = status_conflict_waiting(blocked, "Secret web-tls belongs to ManagedCertificate db", now=later)
    ready = find_condition(moved.conditions, "Ready")
    assert ready is not None and ready.message.endswith("ManagedCertificate db")
    assert ready.last_transition_time == NOW and not ready_transition(blocked.status, moved)
    assert moved.failed_issuance_attempts == 1 and moved.next_attempt_time == blocked.status.next_attempt_time
    # Another failure is not rewritten as a conflict.
    signing = failed(cert)
    assert status_conflict_waiting(signing, "Secret web-tls belongs to ManagedCertificate db", now=later) == (
        signing.status
    )


# --------------------------------------------------------------------------- adoption of a handed-over Secret


def handed_over(secret: SecretSnapshot) -> SecretSnapshot:
    """The same content as another tool writes it: no certctl annotations, takeover allowed."""
    return replace(secret, labels={}, annotations={ANNOTATION_ALLOW_TAKEOVER: "web"})


@pytest.mark.parametrize("issuer", ["ca", "selfSigned"])
def test_a_handed_over_secret_that_fits_is_adopted_as_revision_1(ca: GeneratedCA, issuer: str) -> None:
    view = ca_view(ca) if issuer == "ca" else self_signed_view()
    written, facts = write(certificate(), view, 7)
    secret = handed_over(written)
    exam = examine(certificate(), secret, view)
    assert exam.taken_over and exam.fits
    decision = decide(certificate(), exam, problems=[], issuer_ready=True, now=NOW)
    assert (decision.action, decision.revision) == (Action.ADOPT, 1)
    # Adopted: in sync from then on (the handler then adds certctl's annotations), not issued again.
    adopted = issued_cert(certificate(), replace(facts, revision=1))
    again = decide(adopted, examine(adopted, secret, view), problems=[], issuer_ready=True, now=NOW)
    assert again.action is Action.NONE


def test_an_adopted_certificate_keeps_the_other_tools_urls_until_certctl_renews_it(ca: GeneratedCA) -> None:
    view = ca_view(ca)  # no publicBaseURL: certctl would write no CRL or OCSP URLs
    # cert-manager wrote the CRL and OCSP URLs its CA issuer was given.
    written, facts = write(certificate(), ca_view(ca, publicBaseURL="http://elsewhere.test"), 1)
    secret = handed_over(written)
    decision = decide(
        certificate(), examine(certificate(), secret, view), problems=[], issuer_ready=True, now=NOW
    )
    assert (decision.action, decision.revision) == (Action.ADOPT, 1)
    adopted = issued_cert(certificate(), replace(facts, revision=1))
    # The next reconcile adds certctl's annotations next to the takeover annotation; still in sync.
    request = build_request(adopted.spec, NS, view)
    ours = desired_annotations(
        adopted,
        revision=1,
        serial=facts.serial,
        hash_=request_hash(
            request, key_spec_for(adopted.spec), key_encoding_for(adopted.spec), adopted.spec.issuer_ref
        ),
        renew_request=None,
    )
    annotated = replace(secret, labels=desired_labels(adopted), annotations={**secret.annotations, **ours})
    exam = examine(adopted, annotated, view)
    assert exam.fits and not exam.taken_over
    assert decide(adopted, exam, problems=[], issuer_ready=True, now=NOW).action is Action.NONE
    # A later revision holding URLs that are not the issuer's is replaced, as any certificate of certctl.
    later = replace(annotated, annotations={**annotated.annotations, ANNOTATION_REVISION: "2"})
    problems = examine(adopted, later, view).problems
    assert problems and {kind for kind, _ in problems} == {Mismatch.ISSUER}


def test_a_handed_over_secret_due_for_renewal_is_renewed_not_adopted(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    written, facts = write(certificate(), view, 1)
    decision = decide(
        certificate(),
        examine(certificate(), handed_over(written), view),
        problems=[],
        issuer_ready=True,
        now=facts.not_after - timedelta(hours=1),
    )
    assert decision.action is Action.ISSUE


def test_a_handed_over_secret_for_other_names_or_from_another_ca_is_replaced(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    other_names, _ = write(certificate(), view, 1, dns_names=["elsewhere.example.test"])
    stranger = create_self_signed_ca(
        "other CA", KeySpec(KeyAlgorithm.ECDSA), timedelta(days=365), NOW - timedelta(days=1)
    )
    other_ca, _ = write(certificate(), ca_view(stranger), 1)
    for secret in (other_names, other_ca):
        exam = examine(certificate(), handed_over(secret), view)
        assert exam.taken_over and not exam.fits
        decision = decide(certificate(), exam, problems=[], issuer_ready=True, now=NOW)
        assert decision.action is Action.ISSUE


def test_a_secret_without_the_takeover_annotation_is_not_adopted(ca: GeneratedCA) -> None:
    view = ca_view(ca)
    written, _ = write(certificate(), view, 1)
    foreign = replace(written, labels={}, annotations={})
    exam = examine(certificate(), foreign, view)
    assert not exam.taken_over and not exam.fits
