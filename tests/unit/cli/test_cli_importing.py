"""cert-manager objects to certctl objects, field by field (docs/migrating-from-cert-manager.md)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from certctl_operator.api import IssuerSpec, ManagedCertificateSpec
from certctl_operator.api.metadata_keys import ANNOTATION_IMPORTED_FROM
from certctl_operator.cli.importing import Conversion, convert

# Shapes of the examples in cert-manager's documentation (usage/certificate, configuration/ca,
# configuration/selfsigned, configuration/acme).
DOCS_CERTIFICATE: dict[str, Any] = {
    "apiVersion": "cert-manager.io/v1",
    "kind": "Certificate",
    "metadata": {"name": "example-com", "namespace": "sandbox"},
    "spec": {
        "secretName": "example-com-tls",
        "secretTemplate": {
            "annotations": {"my-secret-annotation-1": "foo", "my-secret-annotation-2": "bar"},
            "labels": {"my-secret-label": "foo"},
        },
        "privateKey": {"algorithm": "RSA", "encoding": "PKCS1", "size": 2048, "rotationPolicy": "Always"},
        "duration": "2160h",
        "renewBefore": "360h",
        "isCA": False,
        "usages": ["server auth", "client auth"],
        "subject": {"organizations": ["jetstack"]},
        "commonName": "example.com",
        "literalSubject": "",
        "dnsNames": ["example.com", "www.example.com"],
        "uris": ["spiffe://cluster.local/ns/sandbox/sa/example"],
        "emailAddresses": ["john.doe@cert-manager.io"],
        "ipAddresses": ["192.168.0.5"],
        "otherNames": [{"oid": "1.3.6.1.4.1.311.20.2.3", "utf8Value": "upn@example.local"}],
        "issuerRef": {"name": "ca-issuer", "kind": "Issuer", "group": "cert-manager.io"},
        "revisionHistoryLimit": 3,
        "keystores": {"pkcs12": {"create": True, "passwordSecretRef": {"name": "p12", "key": "password"}}},
    },
}
DOCS_CA_ISSUER: dict[str, Any] = {
    "apiVersion": "cert-manager.io/v1",
    "kind": "Issuer",
    "metadata": {"name": "ca-issuer", "namespace": "sandbox"},
    "spec": {"ca": {"secretName": "ca-key-pair"}},
}
DOCS_SELF_SIGNED: dict[str, Any] = {
    "apiVersion": "cert-manager.io/v1",
    "kind": "ClusterIssuer",
    "metadata": {"name": "selfsigned-cluster-issuer"},
    "spec": {"selfSigned": {}},
}
DOCS_ACME: dict[str, Any] = {
    "apiVersion": "cert-manager.io/v1",
    "kind": "ClusterIssuer",
    "metadata": {"name": "letsencrypt-staging"},
    "spec": {
        "acme": {
            "email": "user@example.com",
            "server": "https://acme-staging-v02.api.letsencrypt.org/directory",
            "privateKeySecretRef": {"name": "example-issuer-account-key"},
            "solvers": [
                {"http01": {"ingress": {"ingressClassName": "nginx"}}},
                {
                    "selector": {"dnsZones": ["example.com"]},
                    "dns01": {"route53": {"region": "us-east-1", "role": "arn:aws:iam::1:role/dns"}},
                },
                {
                    "selector": {"dnsNames": ["internal.example.com"]},
                    "dns01": {
                        "rfc2136": {
                            "nameserver": "127.0.0.1:5353",
                            "tsigKeyName": "example-com-secret",
                            "tsigAlgorithm": "HMACSHA512",
                            "tsigSecretSecretRef": {"name": "tsig-secret", "key": "tsig-secret-key"},
                        }
                    },
                },
            ],
        }
    },
}


def _fields(conversion: Conversion) -> dict[str, str]:
    return {entry.field: entry.reason for entry in conversion.unmapped}


def test_certificate_fields_that_certctl_has_are_copied() -> None:
    conversion = convert(DOCS_CERTIFICATE)
    assert conversion.refused is None
    (managed,) = conversion.objects
    assert managed["apiVersion"] == "certctl.io/v1alpha1"
    assert managed["kind"] == "ManagedCertificate"
    assert managed["metadata"]["name"] == "example-com"
    assert managed["metadata"]["namespace"] == "sandbox"
    assert managed["metadata"]["annotations"][ANNOTATION_IMPORTED_FROM] == "Certificate sandbox/example-com"
    spec = managed["spec"]
    assert spec == {
        "secretName": "example-com-tls",
        "commonName": "example.com",
        "dnsNames": ["example.com", "www.example.com"],
        "ipAddresses": ["192.168.0.5"],
        "uris": ["spiffe://cluster.local/ns/sandbox/sa/example"],
        "emailAddresses": ["john.doe@cert-manager.io"],
        "duration": "2160h",
        "renewBefore": "360h",
        "usages": ["server auth", "client auth"],
        "isCA": False,
        "subject": {"organizations": ["jetstack"]},
        "privateKey": {"algorithm": "RSA", "size": 2048, "encoding": "PKCS1", "rotationPolicy": "Always"},
        "issuerRef": {"name": "ca-issuer", "kind": "Issuer"},
        "secretTemplate": {
            "labels": {"my-secret-label": "foo"},
            "annotations": {"my-secret-annotation-1": "foo", "my-secret-annotation-2": "bar"},
        },
    }
    ManagedCertificateSpec.model_validate(spec)  # admitted by the certctl model


def test_certificate_fields_without_equivalent_are_listed_with_reasons() -> None:
    unmapped = _fields(convert(DOCS_CERTIFICATE))
    assert set(unmapped) == {
        "spec.literalSubject",
        "spec.otherNames",
        "spec.revisionHistoryLimit",
        "spec.keystores",
        "spec.issuerRef.group",
    }
    assert "CertificateRequest" in unmapped["spec.revisionHistoryLimit"]
    assert "keystore" in unmapped["spec.keystores"]


def test_certificate_secret_gets_the_takeover_annotation() -> None:
    conversion = convert(DOCS_CERTIFICATE)
    assert conversion.secret_takeover == (
        "sandbox",
        "example-com-tls",
        {"certctl.io/allow-takeover-by": "example-com"},
    )


def test_subject_fields_certctl_lacks_are_listed() -> None:
    body = copy.deepcopy(DOCS_CERTIFICATE)
    body["spec"]["subject"] = {
        "organizations": ["jetstack"],
        "countries": ["GB"],
        "localities": ["London"],
        "provinces": ["Greater London"],
        "organizationalUnits": ["platform"],
        "streetAddresses": ["1 Road"],
        "postalCodes": ["N1"],
        "serialNumber": "42",
    }
    conversion = convert(body)
    assert conversion.objects[0]["spec"]["subject"] == {
        "organizations": ["jetstack"],
        "organizationalUnits": ["platform"],
        "countries": ["GB"],
        "localities": ["London"],
        "provinces": ["Greater London"],
    }
    unmapped = _fields(conversion)
    assert {"spec.subject.streetAddresses", "spec.subject.postalCodes", "spec.subject.serialNumber"} <= set(
        unmapped
    )


def test_ed25519_drops_pkcs1_and_size() -> None:
    body = copy.deepcopy(DOCS_CERTIFICATE)
    body["spec"]["privateKey"] = {"algorithm": "Ed25519", "encoding": "PKCS1", "size": 256}
    spec = convert(body).objects[0]["spec"]
    assert spec["privateKey"] == {"algorithm": "Ed25519"}
    ManagedCertificateSpec.model_validate(spec)


def test_renew_before_percentage_and_cluster_issuer_ref() -> None:
    body = copy.deepcopy(DOCS_CERTIFICATE)
    del body["spec"]["renewBefore"]
    body["spec"]["renewBeforePercentage"] = 25
    body["spec"]["issuerRef"] = {"name": "selfsigned-cluster-issuer", "kind": "ClusterIssuer"}
    conversion = convert(body)
    spec = conversion.objects[0]["spec"]
    assert spec["renewBeforePercentage"] == 25
    assert "renewBefore" not in spec
    assert spec["issuerRef"] == {"name": "selfsigned-cluster-issuer", "kind": "ClusterIssuer"}
    assert "spec.issuerRef.group" not in _fields(conversion)


def test_external_issuer_is_refused() -> None:
    body = copy.deepcopy(DOCS_CERTIFICATE)
    body["spec"]["issuerRef"] = {"name": "vault", "kind": "VaultIssuer", "group": "example.io"}
    conversion = convert(body)
    assert conversion.objects == []
    assert conversion.secret_takeover is None
    assert conversion.refused is not None and "example.io" in conversion.refused


def test_a_spec_certctl_would_refuse_is_reported_not_written() -> None:
    body = copy.deepcopy(DOCS_CERTIFICATE)
    body["spec"]["commonName"] = "x" * 65  # certctl: at most 64 characters
    conversion = convert(body)
    assert conversion.objects == []
    assert conversion.refused is not None and "commonName" in conversion.refused


def test_unknown_certificate_fields_are_listed_not_dropped() -> None:
    body = copy.deepcopy(DOCS_CERTIFICATE)
    body["spec"]["someFutureField"] = True
    body["spec"]["privateKey"]["futureKeyOption"] = 1
    unmapped = _fields(convert(body))
    assert "spec.someFutureField" in unmapped
    assert "spec.privateKey.futureKeyOption" in unmapped


def test_ca_issuer() -> None:
    conversion = convert(DOCS_CA_ISSUER)
    (issuer,) = conversion.objects
    assert issuer["kind"] == "Issuer"
    assert issuer["metadata"]["namespace"] == "sandbox"
    assert issuer["spec"] == {"ca": {"secretName": "ca-key-pair"}}
    assert conversion.unmapped == []


def test_ca_cluster_issuer_urls_are_listed_and_its_secret_named_for_copying() -> None:
    body = copy.deepcopy(DOCS_CA_ISSUER)
    body["kind"] = "ClusterIssuer"
    del body["metadata"]["namespace"]
    body["spec"]["ca"]["crlDistributionPoints"] = ["http://127.0.0.1/crl"]
    body["spec"]["ca"]["ocspServers"] = ["http://127.0.0.1/ocsp"]
    conversion = convert(body)
    (issuer,) = conversion.objects
    assert "namespace" not in issuer["metadata"]
    unmapped = _fields(conversion)
    assert "publicBaseURL" in unmapped["spec.ca.crlDistributionPoints"]
    assert "publicBaseURL" in unmapped["spec.ca.ocspServers"]
    # Kept as it is; the import copies the Secret into the operator's namespace.
    assert "spec.ca.secretName" not in unmapped
    assert issuer["spec"]["ca"] == {"secretName": "ca-key-pair"}
    assert conversion.cluster_ca_secret == "ca-key-pair"


def test_namespaced_ca_issuer_reads_its_secret_where_it_is() -> None:
    assert convert(DOCS_CA_ISSUER).cluster_ca_secret is None


def test_self_signed_cluster_issuer() -> None:
    conversion = convert(DOCS_SELF_SIGNED)
    (issuer,) = conversion.objects
    assert issuer["kind"] == "ClusterIssuer"
    assert issuer["spec"] == {"selfSigned": {}}
    assert conversion.refused is None


def test_acme_issuer_keeps_supported_solvers_and_lists_the_rest() -> None:
    conversion = convert(DOCS_ACME)
    assert conversion.refused is None
    (issuer,) = conversion.objects
    acme = issuer["spec"]["acme"]
    assert acme["server"] == "https://acme-staging-v02.api.letsencrypt.org/directory"
    assert acme["email"] == "user@example.com"
    assert acme["privateKeySecretRef"] == {"name": "example-issuer-account-key"}
    assert acme["solvers"] == [
        {"http01": {}},
        {
            "selector": {"dnsNames": ["internal.example.com"]},
            "dns01": {
                "rfc2136": {
                    "nameserver": "127.0.0.1:5353",
                    "tsigKeyName": "example-com-secret",
                    "tsigAlgorithm": "HMACSHA512",
                    "tsigSecretSecretRef": {"name": "tsig-secret", "key": "tsig-secret-key"},
                }
            },
        },
    ]
    unmapped = _fields(conversion)
    assert "spec.acme.solvers[0].http01.ingress" in unmapped
    assert "route53" in unmapped["spec.acme.solvers[1].dns01"]
    IssuerSpec.model_validate(issuer["spec"])


def test_acme_with_only_cloud_dns_solvers_is_refused() -> None:
    body = copy.deepcopy(DOCS_ACME)
    body["spec"]["acme"]["solvers"] = [body["spec"]["acme"]["solvers"][1]]
    body["spec"]["acme"]["externalAccountBinding"] = {
        "keyID": "kid-1",
        "keySecretRef": {"name": "eab", "key": "secret"},
    }
    conversion = convert(body)
    assert conversion.objects == []
    assert conversion.refused is not None and "solvers" in conversion.refused


@pytest.mark.parametrize("issuer_type", ["vault", "venafi"])
def test_issuer_types_certctl_lacks_are_refused(issuer_type: str) -> None:
    body = copy.deepcopy(DOCS_CA_ISSUER)
    body["spec"] = {issuer_type: {"server": "https://127.0.0.1"}}
    conversion = convert(body)
    assert conversion.objects == []
    assert conversion.refused is not None and issuer_type in conversion.refused


def test_import_command_parses_scope_dry_run_output_and_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    from certctl_operator.cli.main import build_parser

    monkeypatch.delenv("CERTCTL_OPERATOR_NAMESPACE", raising=False)

    args = build_parser().parse_args(["import", "cert-manager", "-A", "--dry-run", "-o", "yaml"])
    assert (args.source, args.all_namespaces, args.dry_run, args.output) == (
        "cert-manager",
        True,
        True,
        "yaml",
    )
    args = build_parser().parse_args(["import", "cert-manager", "-n", "shop"])
    assert (args.namespace, args.all_namespaces, args.dry_run, args.output) == ("shop", False, False, "table")
    assert (args.cluster_resource_namespace, args.operator_namespace) == ("cert-manager", "certctl-system")
    args = build_parser().parse_args(
        ["import", "cert-manager", "-A", "--cluster-resource-namespace", "cm", "--operator-namespace", "ops"]
    )
    assert (args.cluster_resource_namespace, args.operator_namespace) == ("cm", "ops")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["import", "vault"])
