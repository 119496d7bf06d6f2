"""Revocation against a real kube-apiserver and a real operator process, judged from outside.

The CRL is fetched over the operator's HTTP port and checked with
``openssl verify -crl_check`` and ``openssl crl``; the OCSP responder is asked
by ``openssl ocsp`` (and, for the reason catalogue, by an OCSP client built
with the cryptography library). The certificates are issued by the operator
itself, from a CA Issuer whose certificates point at those endpoints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography import x509
from kubernetes import client
from tests.support.pki_cluster import (
    ask_ocsp,
    certificate_body,
    condition,
    create,
    crl_number,
    crl_reasons,
    custom,
    fetch_crl,
    get,
    issuer_body,
    json_log_lines,
    k8s_events,
    make_ca_secret,
    metric,
    openssl,
    revocation_body,
    wait_crl,
    wait_for,
    wait_issued,
    wait_phase,
)
from tests.support.revocation_store import listed_serials

from certctl_operator.pki import crl_der_to_pem
from certctl_operator.policy.renewal import object_name

Kubectl = Any

REASONS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
}


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_key_compromise_is_seen_by_openssl_and_the_replacement_verifies(
    kube: Any, kubectl: Kubectl, namespace: str, operator_factory: Any, tmp_path: Path
) -> None:
    operator = operator_factory(namespaces=[namespace], start=False)
    base = operator.base_url
    make_ca_secret(kube, namespace, "team-ca-keypair", "Team CA")
    create(
        kube,
        namespace,
        "issuers",
        issuer_body(
            "team-ca",
            ca_secret="team-ca-keypair",
            base_url=base,
            crl={"validity": "1h", "refreshInterval": "30m"},
            ocsp={"responseValidity": "5m"},
        ),
    )
    create(
        kube,
        namespace,
        "managedcertificates",
        certificate_body("web", "team-ca", notifications={"channels": ["ops"], "events": ["Revoked"]}),
    )
    operator.start()

    first = wait_issued(kube, namespace, "web")
    cert, ca = write(tmp_path / "cert.pem", first.leaf_pem), write(tmp_path / "ca.crt", first.ca_pem)
    crl_url, ocsp_url = f"{base}/crl/{namespace}/team-ca.crl", f"{base}/ocsp/{namespace}/team-ca"
    points = first.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [p.full_name[0].value for p in points if p.full_name] == [crl_url]
    access = first.certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [a.access_location.value for a in access] == [ocsp_url]

    before = wait_crl(base, namespace, "team-ca", lambda der: True)
    verified = openssl(
        "verify",
        "-crl_check",
        "-CAfile",
        ca,
        "-CRLfile",
        write(tmp_path / "before.crl", crl_der_to_pem(before)),
        cert,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    good = wait_for(
        "OCSP good for the first certificate",
        lambda: (
            (r := openssl("ocsp", "-issuer", ca, "-cert", cert, "-url", ocsp_url, "-CAfile", ca))
            and f"{cert}: good" in r.stdout
            and r
        ),
    )
    assert "Response verify OK" in good.stderr

    kubectl(
        "create",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "certctl.io/v1alpha1",
                **revocation_body("web-compromised", "web", "keyCompromise"),
            }
        ),
    )
    kubectl("wait", "-n", namespace, "revocation/web-compromised", "--for=condition=Ready", "--timeout=30s")
    revocation = get(kube, namespace, "revocations", "web-compromised")
    status = revocation["status"]
    assert status["phase"] == "Revoked"
    assert status["serialNumber"] == first.serial
    assert status["issuerRef"] == {"name": "team-ca", "kind": "Issuer"}
    assert status["revokedAt"] and status["notAfter"]
    assert status["issuerNotified"] is False and "no external CA" in status["issuerNotifiedReason"]
    assert (status["requestedBy"], status["requestedBySource"]) == ("kubectl-create", "FieldManager")
    assert condition(revocation)["reason"] == "Revoked"

    # The CRL over HTTP lists the serial with its reason; openssl refuses the certificate.
    response = fetch_crl(base, namespace, "team-ca")
    assert response.headers["content-type"] == "application/pkix-crl"
    assert response.headers["etag"] and response.headers["last-modified"]
    revoked_crl = response.content
    assert crl_number(revoked_crl) >= status["crlNumber"] > crl_number(before)
    assert crl_reasons(revoked_crl) == {first.certificate.serial_number: "keyCompromise"}
    der_path = write(tmp_path / "revoked.der", revoked_crl)
    text = openssl("crl", "-inform", "DER", "-in", der_path, "-noout", "-text").stdout
    entry = text.split(f"Serial Number: {first.serial.upper()}", 1)
    assert len(entry) == 2, text
    assert "CRL Reason Code:" in entry[1] and "Key Compromise" in entry[1].split("Serial Number:")[0]
    crl_pem = write(tmp_path / "revoked.crl", crl_der_to_pem(revoked_crl))
    refused = openssl("verify", "-crl_check", "-CAfile", ca, "-CRLfile", crl_pem, cert)
    assert refused.returncode != 0
    assert "certificate revoked" in refused.stdout + refused.stderr

    answer = openssl("ocsp", "-issuer", ca, "-cert", cert, "-url", ocsp_url, "-CAfile", ca)
    assert f"{cert}: revoked" in answer.stdout, answer.stdout + answer.stderr
    assert "Reason: keyCompromise" in answer.stdout
    assert "Response verify OK" in answer.stderr

    # The certificate was reissued with a new key; the new one verifies against the same CRL.
    second = wait_issued(kube, namespace, "web", after=first.serial)
    assert second.revision == first.revision + 1
    assert second.certificate.public_key() != first.certificate.public_key()
    certificate = get(kube, namespace, "managedcertificates", "web")
    assert certificate["status"]["revokedSerialNumbers"] == [first.serial]
    assert not certificate["status"].get("revoked")
    new_cert = write(tmp_path / "new.pem", second.leaf_pem)
    fine = openssl("verify", "-crl_check", "-CAfile", ca, "-CRLfile", crl_pem, new_cert)
    assert fine.returncode == 0, fine.stdout + fine.stderr
    wait_for(
        "OCSP good for the replacement",
        lambda: (
            f"{new_cert}: good"
            in openssl("ocsp", "-issuer", ca, "-cert", new_cert, "-url", ocsp_url, "-CAfile", ca).stdout
        ),
    )

    # Traces: Events on both objects, one NotificationEvent, one audit line, metrics.
    assert len(k8s_events(kube, namespace, "web-compromised", "Revoked")) == 1
    assert k8s_events(kube, namespace, "web", "Revoked")
    notification = get(
        kube, namespace, "notificationevents", object_name("web", "revoked", first.serial, "ops")
    )
    assert notification["spec"]["type"] == "Revoked"
    assert notification["spec"]["severity"] == "critical"
    assert notification["spec"]["details"]["serialNumber"] == first.serial
    audit = [
        r for r in json_log_lines(operator.logs(), "certctl.audit") if r.get("serial_number") == first.serial
    ]
    assert len(audit) == 1, audit
    assert audit[0]["reason"] == "keyCompromise" and audit[0]["issuer"] == f"{namespace}/team-ca"
    assert (audit[0]["requested_by"], audit[0]["requested_by_source"]) == ("kubectl-create", "FieldManager")
    exposition = operator.metrics()
    assert metric(exposition, "certctl_revocations_total", reason="keyCompromise") == 1.0
    assert (metric(exposition, "certctl_crl_number", issuer=f"{namespace}/team-ca") or 0) >= status[
        "crlNumber"
    ]
    assert (metric(exposition, "certctl_ocsp_responses_total", status="revoked") or 0) >= 1

    # The Revocation is immutable; deleting it never un-revokes.
    edit = kubectl(
        "patch",
        "-n",
        namespace,
        "revocation/web-compromised",
        "--type=merge",
        "-p",
        '{"spec":{"reason":"superseded"}}',
        check=False,
    )
    assert edit.returncode != 0 and "immutable" in edit.stderr
    kubectl("delete", "-n", namespace, "revocation/web-compromised", "--wait=true", "--timeout=30s")
    published = crl_number(fetch_crl(base, namespace, "team-ca").content)
    custom(kube).patch_namespaced_custom_object(
        "certctl.io",
        "v1alpha1",
        namespace,
        "issuers",
        "team-ca",
        {"spec": {"crl": {"refreshInterval": "1s"}}},
    )
    later = wait_crl(base, namespace, "team-ca", lambda der: crl_number(der) > published)
    assert crl_reasons(later) == {first.certificate.serial_number: "keyCompromise"}


def test_every_reason_round_trips_and_the_edge_cases_settle(
    kube: Any, namespace: str, operator_factory: Any
) -> None:
    operator = operator_factory(
        namespaces=[namespace], env={"CERTCTL_OPERATOR_NAMESPACE": namespace}, start=False
    )
    base = operator.base_url
    cluster_issuer = object_name("root", namespace)
    make_ca_secret(kube, namespace, "team-ca-keypair", "Team CA")
    make_ca_secret(kube, namespace, "root-keypair", "Root CA")
    create(kube, namespace, "issuers", issuer_body("team-ca", ca_secret="team-ca-keypair", base_url=base))
    create(
        kube,
        None,
        "clusterissuers",
        issuer_body(cluster_issuer, "ClusterIssuer", ca_secret="root-keypair", base_url=base),
    )
    create(kube, namespace, "issuers", issuer_body("self", ca_secret=None, base_url=None))
    for reason in REASONS:
        create(kube, namespace, "managedcertificates", certificate_body(reason.lower(), "team-ca"))
    create(
        kube,
        namespace,
        "managedcertificates",
        certificate_body("cluster-web", cluster_issuer, "ClusterIssuer"),
    )
    create(kube, namespace, "managedcertificates", certificate_body("selfie", "self"))
    # Created before its certificate exists: it waits.
    create(kube, namespace, "revocations", revocation_body("late", "latecomer", "superseded", reissue=False))
    operator.start()

    pending = wait_phase(kube, namespace, "late", "Pending")
    assert condition(pending)["reason"] == "CertificateNotFound"

    certificates = {reason: wait_issued(kube, namespace, reason.lower()) for reason in REASONS}
    for reason in REASONS:
        create(
            kube,
            namespace,
            "revocations",
            revocation_body(f"r-{reason.lower()}", reason.lower(), reason, reissue=False),
        )
    cluster_web = wait_issued(kube, namespace, "cluster-web")
    create(
        kube,
        namespace,
        "revocations",
        revocation_body("cluster", "cluster-web", "affiliationChanged", reissue=False),
    )
    wait_issued(kube, namespace, "selfie")
    create(kube, namespace, "revocations", revocation_body("selfie", "selfie", "keyCompromise"))
    create(kube, namespace, "managedcertificates", certificate_body("latecomer", "team-ca"))

    revoked = {reason: wait_phase(kube, namespace, f"r-{reason.lower()}", "Revoked") for reason in REASONS}
    for reason, body in revoked.items():
        assert body["status"]["serialNumber"] == certificates[reason].serial
    # A second Revocation of an already revoked certificate (created once the
    # first has settled, so which one wins is not a race): it is listed once,
    # with the first one's reason, time and CRL number.
    create(
        kube, namespace, "revocations", revocation_body("again", "superseded", "keyCompromise", reissue=False)
    )
    again = wait_phase(kube, namespace, "again", "Revoked")
    assert again["status"]["serialNumber"] == certificates["superseded"].serial
    assert again["status"]["crlNumber"] == revoked["superseded"]["status"]["crlNumber"]
    assert again["status"]["revokedAt"] == revoked["superseded"]["status"]["revokedAt"]
    late = wait_phase(kube, namespace, "late", "Revoked")
    latecomer = get(kube, namespace, "managedcertificates", "latecomer")
    assert late["status"]["serialNumber"] == latecomer["status"]["serialNumber"]

    # Self-signed: Failed at once, with the reason, and left alone.
    failed = wait_phase(kube, namespace, "selfie", "Failed")
    assert condition(failed)["reason"] == "SelfSignedNotRevocable"
    assert "no CRL or OCSP responder" in condition(failed)["message"]
    assert len(k8s_events(kube, namespace, "selfie", "RevocationFailed")) == 1

    # Every reason in the CRL entry (absent reasonCode reads as unspecified) and in OCSP.
    wanted = {certificates[reason].certificate.serial_number: reason for reason in REASONS}
    crl = wait_crl(base, namespace, "team-ca", lambda der: set(wanted) <= set(crl_reasons(der)))
    listed = crl_reasons(crl)
    assert {serial: listed[serial] for serial in wanted} == wanted
    assert len(listed) == len(wanted) + 1, "each serial once, plus the latecomer"
    ocsp_url = f"{base}/ocsp/{namespace}/team-ca"
    for reason, issued_certificate in certificates.items():
        answer = ask_ocsp(
            ocsp_url, issued_certificate.certificate, issued_certificate.ca, nonce=reason.encode()
        )
        assert answer.certificate_status is x509.ocsp.OCSPCertStatus.REVOKED, reason
        stated = answer.revocation_reason or x509.ReasonFlags.unspecified
        assert stated is REASONS[reason], reason
        assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == reason.encode()
    # Journal and archive together list each serial once (a serial in both is one entry moving).
    on_list = listed_serials(kube, namespace, "team-ca")
    assert len(on_list) == len(wanted) + 1
    assert {int(serial, 16) for serial in on_list} == set(listed)

    # A ClusterIssuer publishes under _cluster, its ConfigMap and Secret in the operator namespace.
    cluster_crl = wait_crl(
        base,
        "_cluster",
        cluster_issuer,
        lambda der: cluster_web.certificate.serial_number in crl_reasons(der),
    )
    assert crl_reasons(cluster_crl)[cluster_web.certificate.serial_number] == "affiliationChanged"
    answer = ask_ocsp(f"{base}/ocsp/_cluster/{cluster_issuer}", cluster_web.certificate, cluster_web.ca)
    assert answer.revocation_reason is x509.ReasonFlags.affiliation_changed
    core = client.CoreV1Api(kube)
    configmap = core.read_namespaced_config_map(f"{cluster_issuer}-cluster-crl", namespace)
    assert configmap.data["ca.crl"].startswith("-----BEGIN X509 CRL-----")
    assert (
        core.read_namespaced_secret(f"{cluster_issuer}-cluster-ocsp-responder", namespace).type
        == "kubernetes.io/tls"
    )

    # Without reissue the certificates stay revoked and not Ready.
    held = get(kube, namespace, "managedcertificates", "certificatehold")
    assert held["status"]["revoked"] is True
    assert condition(held)["status"] == "False" and condition(held)["reason"] == "Revoked"
    custom(kube).delete_cluster_custom_object("certctl.io", "v1alpha1", "clusterissuers", cluster_issuer)
