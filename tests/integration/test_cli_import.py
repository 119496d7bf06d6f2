"""``kubectl certctl import cert-manager`` against cert-manager's real CRDs and the real operator.

The cert-manager objects have the shapes of cert-manager's documentation
examples (a CA Issuer, an ACME Issuer, a Certificate with the common fields);
the Secret holds what cert-manager's CA issuer would have written: a leaf
signed by the CA, its key, ca.crt and cert-manager's annotations. After the
import the operator must adopt that Secret byte for byte, and still renew it
when renewal comes due.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.integration.test_issuance import (
    CERTS,
    GROUP,
    VERSION,
    Cluster,
    Kubectl,
    start_operator,
    verify_secret,
    wait_for,
    wait_ready,
)
from tests.support.cert_manager import apply_cert_manager_crds

from certctl_operator.cli.main import main
from certctl_operator.dev.operator_process import OperatorFactory

CM_GROUP = "cert-manager.io"
CM_VERSION = "v1"
TAKEOVER = "certctl.io/allow-takeover-by"


class Result(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def cert_manager_crds(kubeconfig: Path) -> list[str]:
    return apply_cert_manager_crds(kubeconfig)


@pytest.fixture
def cluster(kube: Any, kubectl: Kubectl, namespace: str, cert_manager_crds: list[str]) -> Cluster:
    assert "certificates.cert-manager.io" in cert_manager_crds
    return Cluster(kube, kubectl, namespace)


@pytest.fixture
def cli(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Result]]:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    capsys.readouterr()

    def run(*args: str) -> Result:
        code = main(["--kubeconfig", str(kubeconfig), *args])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return Result(code, out, err)

    yield run


# --------------------------------------------------------------------------- what cert-manager would hold


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    # cert-manager's default encoding PKCS1 means SEC 1 for ECDSA keys.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def make_ca(now: datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox root")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def make_leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, not_before: datetime, not_after: datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """What cert-manager's CA issuer signs for the Certificate below (default usages, no EKU)."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sandbox"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "web.example.test"),
                ]
            )
        )
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("web.example.test"), x509.DNSName("www.web.example.test")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, certificate


def secret_body(
    name: str, data: dict[str, bytes], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "annotations": annotations or {}},
        "type": "kubernetes.io/tls",
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


def cert_manager_objects() -> list[dict[str, Any]]:
    """A CA Issuer, an ACME Issuer and a Certificate as cert-manager's documentation writes them."""
    return [
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": "ca-issuer"},
            "spec": {"ca": {"secretName": "ca-key-pair"}},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": "acme-staging"},
            "spec": {
                "acme": {
                    "email": "user@example.test",
                    "server": "https://127.0.0.1:14000/dir",
                    "privateKeySecretRef": {"name": "acme-account-key"},
                    "solvers": [
                        {"http01": {"ingress": {"ingressClassName": "nginx"}}},
                        {"dns01": {"route53": {"region": "us-east-1"}}},
                    ],
                }
            },
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "web"},
            "spec": {
                "secretName": "web-tls",
                "commonName": "web.example.test",
                "dnsNames": ["web.example.test", "www.web.example.test"],
                "subject": {"organizations": ["sandbox"]},
                # Short, so that renewal comes due one minute after the import.
                "duration": "7m",
                "renewBefore": "1m",
                "privateKey": {
                    "algorithm": "ECDSA",
                    "size": 256,
                    "encoding": "PKCS1",
                    "rotationPolicy": "Always",
                },
                "usages": ["digital signature", "key encipherment"],
                "revisionHistoryLimit": 1,
                "issuerRef": {"name": "ca-issuer", "kind": "Issuer", "group": "cert-manager.io"},
            },
        },
    ]


def certctl_objects(cluster: Cluster, plural: str) -> list[str]:
    items = cluster.objects.list_namespaced_custom_object(GROUP, VERSION, cluster.namespace, plural)["items"]
    return sorted(item["metadata"]["name"] for item in items)


# --------------------------------------------------------------------------- test


def test_import_adopts_cert_manager_secret_without_reissuing_then_renews(
    cluster: Cluster, cli: Callable[..., Result], operator_factory: OperatorFactory, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    ca_key, ca = make_ca(now)
    # Backdated five minutes like certctl's own certificates, whose renewal time counts from
    # notBefore + 5m: renewal is due at notAfter - renewBefore, one minute from now.
    leaf_key, leaf = make_leaf(ca_key, ca, now - timedelta(minutes=5), now + timedelta(minutes=2))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    original = {
        "tls.crt": leaf.public_bytes(serialization.Encoding.PEM),
        "tls.key": _pem_key(leaf_key),
        "ca.crt": ca_pem,
    }
    cluster.apply(
        secret_body("ca-key-pair", {"tls.crt": ca_pem, "tls.key": _pem_key(ca_key)}),
        secret_body(
            "web-tls",
            original,
            {
                "cert-manager.io/certificate-name": "web",
                "cert-manager.io/issuer-name": "ca-issuer",
                "cert-manager.io/issuer-kind": "Issuer",
                "cert-manager.io/issuer-group": "cert-manager.io",
                "cert-manager.io/common-name": "web.example.test",
                "cert-manager.io/alt-names": "web.example.test,www.web.example.test",
            },
        ),
        *cert_manager_objects(),
    )
    start_operator(operator_factory, cluster.namespace)

    # --dry-run: the API server admits every write, nothing is written.
    dry = cli("import", "cert-manager", "-n", cluster.namespace, "--dry-run")
    assert dry.code == 0, dry.out + dry.err
    assert "would create" in dry.out and "would allow takeover" in dry.out
    assert "spec.revisionHistoryLimit" in dry.out
    assert "spec.acme.solvers[1].dns01" in dry.out
    assert certctl_objects(cluster, CERTS) == [] and certctl_objects(cluster, "issuers") == []
    secret = cluster.secret("web-tls")
    assert secret is not None and TAKEOVER not in (secret.metadata.annotations or {})

    # -o yaml: the objects for Git, nothing written either.
    printed = cli("import", "cert-manager", "-n", cluster.namespace, "-o", "yaml")
    assert printed.code == 0, printed.err
    documents = list(yaml.safe_load_all(printed.out))
    assert sorted((d["kind"], d["metadata"]["name"]) for d in documents) == [
        ("Issuer", "acme-staging"),
        ("Issuer", "ca-issuer"),
        ("ManagedCertificate", "web"),
    ]
    assert f"kubectl annotate secret web-tls -n {cluster.namespace} {TAKEOVER}=web" in printed.err
    assert certctl_objects(cluster, CERTS) == []

    imported = cli("import", "cert-manager", "-n", cluster.namespace)
    assert imported.code == 0, imported.out + imported.err
    assert certctl_objects(cluster, CERTS) == ["web"]
    assert certctl_objects(cluster, "issuers") == ["acme-staging", "ca-issuer"]

    adopted = wait_ready(cluster, "web", timeout=60, revision=1)
    assert adopted["status"]["serialNumber"].lower() == format(leaf.serial_number, "x").lower().lstrip("0")
    assert cluster.secret_data("web-tls") == original  # same key, same certificate, same CA

    def annotated() -> dict[str, str] | None:
        found = cluster.secret("web-tls")
        annotations = (found.metadata.annotations or {}) if found else {}
        return annotations if annotations.get("certctl.io/certificate-name") == "web" else None

    for stage in ("adopted", "renewed"):
        (tmp_path / stage).mkdir()
    annotations = wait_for(annotated, 60, "certctl's annotations on the adopted Secret")
    assert annotations["certctl.io/revision"] == "1"
    assert cluster.secret_data("web-tls") == original
    assert verify_secret(cluster, "web-tls", tmp_path / "adopted")["serial"].lstrip("0") == format(
        leaf.serial_number, "x"
    ).lstrip("0")

    # Renewal still comes when it is due: a new certificate from the same CA, a new key (Always).
    renewed = wait_ready(cluster, "web", timeout=120, revision=2)
    data = cluster.secret_data("web-tls")
    assert data["tls.crt"] != original["tls.crt"] and data["tls.key"] != original["tls.key"]
    assert renewed["status"]["serialNumber"] != adopted["status"]["serialNumber"]
    verify_secret(cluster, "web-tls", tmp_path / "renewed")
