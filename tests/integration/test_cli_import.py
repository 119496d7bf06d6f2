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
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.integration.test_issuance import (
    CERTS,
    GROUP,
    ISSUANCE_ENV,
    VERSION,
    Cluster,
    Kubectl,
    start_operator,
    verify_secret,
    wait_for,
    wait_issuer,
    wait_ready,
)
from tests.support.cert_manager import apply_cert_manager_crds

from certctl_operator.cli.main import main
from certctl_operator.dev.operator_process import OperatorFactory
from certctl_operator.policy.issuance import serial_hex
from certctl_operator.policy.revocation import normalize_serial

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


class Leftovers:
    """cert-manager and certctl objects a test made outside the certctl namespaced kinds.

    Namespaces are never deleted on this control plane (it has no namespace
    controller), so their cert-manager objects would show up in every later
    ``-A`` import; ClusterIssuers would be seen by every later test's operator.
    """

    def __init__(self) -> None:
        self.namespaces: list[str] = []
        self.cluster_issuers: list[str] = []


@pytest.fixture
def leftovers(kube: Any) -> Iterator[Leftovers]:
    found = Leftovers()
    yield found
    objects = client.CustomObjectsApi(kube)
    deletions: list[Callable[[], Any]] = []
    for namespace in found.namespaces:
        for plural_name in ("certificates", "issuers"):
            items = objects.list_namespaced_custom_object(CM_GROUP, CM_VERSION, namespace, plural_name)[
                "items"
            ]
            deletions += [
                partial(
                    objects.delete_namespaced_custom_object,
                    CM_GROUP,
                    CM_VERSION,
                    namespace,
                    plural_name,
                    item["metadata"]["name"],
                )
                for item in items
            ]
    for name in found.cluster_issuers:
        deletions.append(
            partial(objects.delete_cluster_custom_object, CM_GROUP, CM_VERSION, "clusterissuers", name)
        )
        deletions.append(
            partial(objects.delete_cluster_custom_object, GROUP, VERSION, "clusterissuers", name)
        )
    for delete in deletions:
        try:
            delete()
        except ApiException as error:
            if error.status != 404:
                raise


@pytest.fixture
def cluster(
    kube: Any, kubectl: Kubectl, namespace: str, cert_manager_crds: list[str], leftovers: Leftovers
) -> Cluster:
    assert "certificates.cert-manager.io" in cert_manager_crds
    leftovers.namespaces.append(namespace)
    return Cluster(kube, kubectl, namespace)


@pytest.fixture
def cli(
    kubeconfig: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Result]]:
    monkeypatch.delenv("COLUMNS", raising=False)
    # Wide enough that no table row of the long test namespace names wraps.
    monkeypatch.setenv("COLUMNS", "400")
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
    # Signed five minutes ago for its 7 minutes: renewal is due at notAfter - renewBefore, one
    # minute from now.
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
    assert normalize_serial(adopted["status"]["serialNumber"]) == normalize_serial(leaf.serial_number)
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
    adopted_serial = verify_secret(cluster, "web-tls", tmp_path / "adopted")["serial"]
    assert normalize_serial(adopted_serial) == normalize_serial(leaf.serial_number)

    # Renewal still comes when it is due: a new certificate from the same CA, a new key (Always).
    renewed = wait_ready(cluster, "web", timeout=120, revision=2)
    data = cluster.secret_data("web-tls")
    assert data["tls.crt"] != original["tls.crt"] and data["tls.key"] != original["tls.key"]
    assert renewed["status"]["serialNumber"] != adopted["status"]["serialNumber"]
    verify_secret(cluster, "web-tls", tmp_path / "renewed")


# --------------------------------------------------------------------------- every namespace at once

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def new_namespace(kube: Any, stem: str) -> str:
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(kube).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def apply_in(kubectl: Kubectl, namespace: str, *documents: dict[str, Any]) -> None:
    kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(documents))


def key_pem(key: PrivateKey, encoding: str) -> bytes:
    """tls.key as cert-manager writes it: PKCS1 is SEC 1 for ECDSA keys."""
    private_format = (
        serialization.PrivateFormat.PKCS8
        if encoding == "PKCS8"
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return key.private_bytes(serialization.Encoding.PEM, private_format, serialization.NoEncryption())


def cert_manager_leaf(
    key: PrivateKey,
    *,
    common_name: str,
    dns_names: list[str],
    not_before: datetime,
    lifetime: timedelta,
    signer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None,
    crl_urls: tuple[str, ...] = (),
) -> x509.Certificate:
    """A leaf as cert-manager signs it: notBefore is the signing time (no backdating), the
    default usages (digital signature, key encipherment), CA:FALSE. Without ``signer`` it is
    what the SelfSigned issuer writes: signed by its own key, issuer = subject."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer[1].subject if signer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names]), critical=False
        )
    )
    if signer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer[0].public_key()), critical=False
        )
    if crl_urls:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)
                    for url in crl_urls
                ]
            ),
            critical=False,
        )
    return builder.sign(signer[0] if signer else key, hashes.SHA256())


def cert_manager_secret(
    name: str,
    certificate: dict[str, Any],
    data: dict[str, bytes],
) -> dict[str, Any]:
    """The Secret cert-manager's controller writes for ``certificate`` (its annotations and label)."""
    spec = certificate["spec"]
    issuer_ref = spec["issuerRef"]
    body = secret_body(
        name,
        data,
        {
            "cert-manager.io/certificate-name": certificate["metadata"]["name"],
            "cert-manager.io/issuer-name": issuer_ref["name"],
            "cert-manager.io/issuer-kind": issuer_ref.get("kind", "Issuer"),
            "cert-manager.io/issuer-group": issuer_ref.get("group", ""),
            "cert-manager.io/common-name": spec.get("commonName", ""),
            "cert-manager.io/alt-names": ",".join(spec.get("dnsNames", [])),
            "cert-manager.io/ip-sans": "",
            "cert-manager.io/uri-sans": "",
        },
    )
    body["metadata"]["labels"] = {"controller.cert-manager.io/fao": "true"}
    return body


def certificate_of(
    name: str, issuer: str, kind: str, dns_name: str, private_key: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """A Certificate shaped like cert-manager's usage/certificate documentation example."""
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name},
        "spec": {
            "secretName": f"{name}-tls",
            "duration": "2160h",
            "commonName": dns_name,
            "dnsNames": [dns_name],
            "privateKey": private_key,
            "issuerRef": {"name": issuer, "kind": kind, "group": "cert-manager.io"},
            **extra,
        },
    }


def table_row(output: str, source: str) -> str:
    """The one line of the import's table (what was written) about ``source``."""
    table = output.split("\nwrote ", 1)[0].split("\nwould write ", 1)[0]
    rows = [line.strip() for line in table.splitlines() if line.strip().startswith(source + " ")]
    assert len(rows) == 1, f"{len(rows)} rows for {source} in:\n{output}"
    return rows[0]


def not_imported_section(output: str) -> str:
    """The ``not imported`` table of the import's output ('' when there is none)."""
    if "not imported" not in output:
        return ""
    rest = output.split("not imported", 1)[1]
    for title in ("still to do", "fields with no certctl equivalent"):
        rest = rest.split(title, 1)[0]
    return rest


def test_import_all_namespaces_with_cluster_issuers_adopts_every_secret_then_skips_on_a_second_run(
    cluster: Cluster,
    kube: Any,
    kubectl: Kubectl,
    cli: Callable[..., Result],
    operator_factory: OperatorFactory,
    leftovers: Leftovers,
    tmp_path: Path,
) -> None:
    shop, api_ns = cluster.namespace, new_namespace(kube, "import-all-api")
    # cert-manager keeps a ClusterIssuer's Secret in its cluster resource namespace ("cert-manager"
    # by default); the certctl ClusterIssuer reads it from the operator's namespace.
    resources, operator_ns = new_namespace(kube, "cm-resources"), new_namespace(kube, "certctl-ops")
    leftovers.namespaces.append(api_ns)
    suffix = uuid.uuid4().hex[:6]
    ca_issuer, selfsigned_issuer = f"ca-cluster-issuer-{suffix}", f"selfsigned-cluster-issuer-{suffix}"
    leftovers.cluster_issuers += [ca_issuer, selfsigned_issuer]
    crl_url = "http://127.0.0.1:8080/ca.crl"
    now = datetime.now(UTC).replace(microsecond=0)
    ca_key, ca = make_ca(now)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    ca_secret = {"tls.crt": ca_pem, "tls.key": _pem_key(ca_key)}

    web = certificate_of(
        "web",
        ca_issuer,
        "ClusterIssuer",
        "web.shop.example.test",
        {"algorithm": "RSA", "encoding": "PKCS1", "size": 2048},
    )
    local = certificate_of(
        "local", "selfsigned-issuer", "Issuer", "local.shop.example.test", {"algorithm": "ECDSA", "size": 256}
    )
    api = certificate_of(
        "api",
        selfsigned_issuer,
        "ClusterIssuer",
        "api.example.test",
        {"algorithm": "ECDSA", "size": 384, "encoding": "PKCS8"},
        renewBefore="360h",
        revisionHistoryLimit=3,
        keystores={
            "pkcs12": {"create": True, "passwordSecretRef": {"name": "p12-password", "key": "password"}}
        },
    )
    web_key, local_key = rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1())
    api_key = ec.generate_private_key(ec.SECP384R1())
    # What cert-manager's issuers wrote, signed a day ago.
    signed_at = now - timedelta(days=1)
    web_crt = cert_manager_leaf(
        web_key,
        common_name="web.shop.example.test",
        dns_names=["web.shop.example.test"],
        not_before=signed_at,
        lifetime=timedelta(hours=2160),
        signer=(ca_key, ca),
        crl_urls=(crl_url,),
    )
    local_crt, api_crt = (
        cert_manager_leaf(
            key, common_name=name, dns_names=[name], not_before=signed_at, lifetime=timedelta(hours=2160)
        )
        for key, name in ((local_key, "local.shop.example.test"), (api_key, "api.example.test"))
    )
    pem = serialization.Encoding.PEM
    original = {
        (shop, "web-tls"): {
            "tls.crt": web_crt.public_bytes(pem),
            "tls.key": key_pem(web_key, "PKCS1"),
            "ca.crt": ca_pem,
        },
        # The SelfSigned issuer's ca.crt is the certificate itself.
        (shop, "local-tls"): {
            "tls.crt": local_crt.public_bytes(pem),
            "tls.key": key_pem(local_key, "PKCS1"),
            "ca.crt": local_crt.public_bytes(pem),
        },
        (api_ns, "api-tls"): {
            "tls.crt": api_crt.public_bytes(pem),
            "tls.key": key_pem(api_key, "PKCS8"),
            "ca.crt": api_crt.public_bytes(pem),
        },
    }
    serials = {
        (shop, "web"): web_crt.serial_number,
        (shop, "local"): local_crt.serial_number,
        (api_ns, "api"): api_crt.serial_number,
    }
    # When cert-manager would have renewed them: 2/3 through the lifetime, or renewBefore early.
    renewal = {
        (shop, "web"): signed_at + timedelta(days=60),
        (shop, "local"): signed_at + timedelta(days=60),
        (api_ns, "api"): signed_at + timedelta(hours=2160 - 360),
    }

    apply_in(kubectl, resources, secret_body("root-ca-key-pair", ca_secret))
    kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        input=yaml.safe_dump_all(
            [
                {
                    "apiVersion": "cert-manager.io/v1",
                    "kind": "ClusterIssuer",
                    "metadata": {"name": ca_issuer},
                    "spec": {"ca": {"secretName": "root-ca-key-pair", "crlDistributionPoints": [crl_url]}},
                },
                {
                    "apiVersion": "cert-manager.io/v1",
                    "kind": "ClusterIssuer",
                    "metadata": {"name": selfsigned_issuer},
                    "spec": {"selfSigned": {}},
                },
            ]
        ),
    )
    apply_in(
        kubectl,
        shop,
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": "selfsigned-issuer"},
            "spec": {"selfSigned": {}},
        },
        web,
        local,
        cert_manager_secret("web-tls", web, original[shop, "web-tls"]),
        cert_manager_secret("local-tls", local, original[shop, "local-tls"]),
    )
    apply_in(kubectl, api_ns, api, cert_manager_secret("api-tls", api, original[api_ns, "api-tls"]))

    def secret_data(namespace: str, name: str) -> dict[str, bytes]:
        return Cluster(kube, kubectl, namespace).secret_data(name)

    operator_factory(
        namespaces=[shop, api_ns], env={**ISSUANCE_ENV, "CERTCTL_OPERATOR_NAMESPACE": operator_ns}
    )
    where = ("--cluster-resource-namespace", resources, "--operator-namespace", operator_ns)

    # A dry run and -o yaml say the CA Secret goes to the operator's namespace, and write nothing.
    dry = cli("import", "cert-manager", "-A", "--dry-run", *where)
    assert dry.code == 0, dry.out + dry.err
    assert f"root-ca-key-pair: would copy from {resources} to {operator_ns}" in dry.out
    printed = cli("import", "cert-manager", "-A", "-o", "yaml", *where)
    assert printed.code == 0, printed.err
    assert f"Secret {resources}/root-ca-key-pair -> {operator_ns}/root-ca-key-pair" in printed.err
    assert Cluster(kube, kubectl, operator_ns).secret("root-ca-key-pair") is None
    assert certctl_objects(cluster, CERTS) == []

    imported = cli("import", "cert-manager", "-A", *where)
    out = imported.out
    mine = [
        f"ClusterIssuer {ca_issuer}",
        f"ClusterIssuer {selfsigned_issuer}",
        f"Issuer {shop}/selfsigned-issuer",
        f"Certificate {shop}/web",
        f"Certificate {shop}/local",
        f"Certificate {api_ns}/api",
    ]
    for source in mine:
        row = table_row(out, source)
        assert " created " in f"{row} ", out
        assert source not in not_imported_section(out), out
    # Other tests' cert-manager objects are cleaned up, so nothing else can be refused.
    assert imported.code == 0, out + imported.err
    assert f"root-ca-key-pair: copied from {resources} to {operator_ns}" in out
    for _, secret_name in original:
        assert f"{secret_name}: takeover allowed" in out
    # Fields with no certctl equivalent are listed, one line each, with the object they come from.
    for source, field in (
        (f"ClusterIssuer {ca_issuer}", "spec.ca.crlDistributionPoints"),
        (f"Certificate {api_ns}/api", "spec.revisionHistoryLimit"),
        (f"Certificate {api_ns}/api", "spec.keystores"),
        (f"Certificate {shop}/web", "spec.issuerRef.group"),
    ):
        assert any(line.strip().startswith(source) and field in line for line in out.splitlines()), out

    # Every certctl object in its place, saying where it came from.
    def certctl(namespace: str | None, plural_name: str, name: str) -> dict[str, Any]:
        if namespace is None:
            return dict(cluster.objects.get_cluster_custom_object(GROUP, VERSION, plural_name, name))
        return dict(
            cluster.objects.get_namespaced_custom_object(GROUP, VERSION, namespace, plural_name, name)
        )

    assert certctl_objects(cluster, CERTS) == ["local", "web"]
    assert certctl_objects(cluster, "issuers") == ["selfsigned-issuer"]
    assert certctl_objects(Cluster(kube, kubectl, api_ns), CERTS) == ["api"]
    assert certctl_objects(Cluster(kube, kubectl, api_ns), "issuers") == []
    assert certctl(None, "clusterissuers", ca_issuer)["spec"]["ca"] == {"secretName": "root-ca-key-pair"}
    assert certctl(None, "clusterissuers", selfsigned_issuer)["spec"] == {"selfSigned": {}}
    assert certctl(shop, CERTS, "web")["spec"]["issuerRef"] == {"name": ca_issuer, "kind": "ClusterIssuer"}
    assert certctl(api_ns, CERTS, "api")["spec"]["renewBefore"] == "360h"
    for namespace, plural_name, name, source in (
        (None, "clusterissuers", ca_issuer, f"ClusterIssuer {ca_issuer}"),
        (shop, "issuers", "selfsigned-issuer", f"Issuer {shop}/selfsigned-issuer"),
        (api_ns, CERTS, "api", f"Certificate {api_ns}/api"),
    ):
        annotations = certctl(namespace, plural_name, name)["metadata"]["annotations"]
        assert annotations["certctl.io/imported-from"] == source
    assert secret_data(operator_ns, "root-ca-key-pair") == ca_secret
    for (namespace, name), data in original.items():
        assert secret_data(namespace, name) == data, f"{namespace}/{name} changed on import"

    # The operator adopts every certificate as it is: revision 1, the serial cert-manager wrote.
    def adopted(namespace: str, name: str) -> dict[str, Any] | None:
        body = certctl(namespace, CERTS, name)
        status = body.get("status") or {}
        secret = Cluster(kube, kubectl, namespace).secret(f"{name}-tls")
        annotations = (secret.metadata.annotations or {}) if secret else {}
        if status.get("revision") and annotations.get("certctl.io/certificate-name") == name:
            return body
        return None

    for namespace, name in serials:
        body = wait_for(partial(adopted, namespace, name), 90, f"{namespace}/{name} adopted")
        ready = wait_ready(Cluster(kube, kubectl, namespace), name, timeout=30)
        assert ready["status"]["revision"] == 1, ready["status"]
        assert ready["status"]["serialNumber"] == serial_hex(serials[namespace, name])
        renews_at = datetime.fromisoformat(ready["status"]["renewalTime"].replace("Z", "+00:00"))
        assert renews_at == renewal[namespace, name], ready["status"]
        found = Cluster(kube, kubectl, namespace).secret(f"{name}-tls")
        assert found is not None and found.metadata is not None
        assert found.metadata.annotations["certctl.io/revision"] == "1"
        assert found.metadata.annotations["certctl.io/serial-number"] == serial_hex(serials[namespace, name])
        assert secret_data(namespace, f"{name}-tls") == original[namespace, f"{name}-tls"]
        # Revision 1 is announced once, naming the adopted serial; nothing was issued or renewed.
        events = Cluster(kube, kubectl, namespace).events(name)
        assert [event.reason for event in events if event.reason in {"Issued", "Renewed"}] == ["Issued"]
        (issued,) = (event for event in events if event.reason == "Issued")
        assert f"Revision 1 (serial {serial_hex(serials[namespace, name])}" in issued.message
        assert (
            body["metadata"]["annotations"]["certctl.io/imported-from"] == f"Certificate {namespace}/{name}"
        )
    wait_issuer(cluster, ca_issuer, "True", cluster_scoped=True)

    # One more reconcile of each, now that the Secret is certctl's and the ClusterIssuer Ready, seen
    # through a spec change (a label for the Secret): the adopted certificate is still not replaced.
    label = {"migrated-from": "cert-manager"}
    for namespace, name in serials:
        cluster.objects.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, CERTS, name, {"spec": {"secretTemplate": {"labels": label}}}
        )

    def relabelled(namespace: str, name: str) -> bool:
        body = certctl(namespace, CERTS, name)
        secret = Cluster(kube, kubectl, namespace).secret(f"{name}-tls")
        labels = (secret.metadata.labels or {}) if secret and secret.metadata else {}
        observed = (body.get("status") or {}).get("observedGeneration")
        return observed == body["metadata"]["generation"] and labels.items() >= label.items()

    for namespace, name in serials:
        wait_for(partial(relabelled, namespace, name), 60, f"{namespace}/{name} reconciled again")
        body = certctl(namespace, CERTS, name)
        assert body["status"]["revision"] == 1, body["status"]
        assert body["status"]["serialNumber"] == serial_hex(serials[namespace, name])
        assert secret_data(namespace, f"{name}-tls") == original[namespace, f"{name}-tls"]
    verify_secret(cluster, "web-tls", tmp_path)
    verify_secret(cluster, "local-tls", tmp_path)

    # A second run finds every object imported already and changes nothing.
    before = {
        (namespace, name): certctl(namespace, CERTS, name)["metadata"]["generation"]
        for namespace, name in serials
    }
    again = cli("import", "cert-manager", "-A", *where)
    assert again.code == 0, again.out + again.err
    for source in mine:
        row = table_row(again.out, source)
        assert "already imported, left alone" in row, again.out
    assert "wrote 0 objects" in again.out
    assert f"root-ca-key-pair: already in {operator_ns}" in again.out
    for (namespace, name), generation in before.items():
        body = certctl(namespace, CERTS, name)
        assert body["metadata"]["generation"] == generation
        assert body["status"]["revision"] == 1
        assert secret_data(namespace, f"{name}-tls") == original[namespace, f"{name}-tls"]
    assert secret_data(operator_ns, "root-ca-key-pair") == ca_secret


def test_import_leaves_certctl_objects_it_did_not_write_alone_and_says_so(
    cluster: Cluster, kube: Any, kubectl: Kubectl, cli: Callable[..., Result], leftovers: Leftovers
) -> None:
    """A certctl object of the same name that no import wrote is someone else's: it is neither
    replaced nor handed the cert-manager Secret, and the cert-manager object counts as not imported
    (an issuer made by hand is listed to be checked, and gets no CA Secret copied for it). A Secret
    already in the operator's namespace that holds another CA is kept and reported."""
    resources, operator_ns = new_namespace(kube, "cm-resources"), new_namespace(kube, "certctl-ops")
    suffix = uuid.uuid4().hex[:6]
    ca_issuer, hand_made_issuer = f"ca-cluster-issuer-{suffix}", f"hand-made-issuer-{suffix}"
    leftovers.cluster_issuers += [ca_issuer, hand_made_issuer]
    now = datetime.now(UTC).replace(microsecond=0)
    ca_key, ca = make_ca(now)
    other_key, other_ca = make_ca(now)
    cert_manager_ca = {"tls.crt": ca.public_bytes(serialization.Encoding.PEM), "tls.key": _pem_key(ca_key)}
    other = {"tls.crt": other_ca.public_bytes(serialization.Encoding.PEM), "tls.key": _pem_key(other_key)}
    apply_in(
        kubectl,
        resources,
        secret_body("root-ca-key-pair", cert_manager_ca),
        secret_body("hand-made-ca", cert_manager_ca),
    )
    apply_in(kubectl, operator_ns, secret_body("root-ca-key-pair", other))
    kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        input=yaml.safe_dump_all(
            [
                {
                    "apiVersion": "cert-manager.io/v1",
                    "kind": "ClusterIssuer",
                    "metadata": {"name": name},
                    "spec": {"ca": {"secretName": secret_name}},
                }
                for name, secret_name in ((ca_issuer, "root-ca-key-pair"), (hand_made_issuer, "hand-made-ca"))
            ]
            + [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "ClusterIssuer",
                    "metadata": {"name": hand_made_issuer},
                    "spec": {"ca": {"secretName": "hand-made-ca"}},
                }
            ]
        ),
    )
    api = certificate_of("api", hand_made_issuer, "ClusterIssuer", "api.example.test", {"algorithm": "ECDSA"})
    web = certificate_of("web", ca_issuer, "ClusterIssuer", "web.example.test", {"algorithm": "ECDSA"})
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert_manager_leaf(
        leaf_key,
        common_name="web.example.test",
        dns_names=["web.example.test"],
        not_before=now,
        lifetime=timedelta(hours=2160),
        signer=(ca_key, ca),
    )
    data = {
        "tls.crt": leaf.public_bytes(serialization.Encoding.PEM),
        "tls.key": key_pem(leaf_key, "PKCS1"),
        "ca.crt": cert_manager_ca["tls.crt"],
    }
    hand_written = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ManagedCertificate",
        "metadata": {"name": "web"},
        "spec": {
            "secretName": "web-own-tls",
            "dnsNames": ["own.example.test"],
            "issuerRef": {"name": "own-issuer", "kind": "Issuer"},
        },
    }
    cluster.apply(web, api, cert_manager_secret("web-tls", web, data), hand_written)
    spec_before = cluster.cert("web")["spec"]
    where = ("--cluster-resource-namespace", resources, "--operator-namespace", operator_ns)

    for run in ("first", "second"):
        result = cli("import", "cert-manager", "-n", cluster.namespace, *where)
        assert result.code == 3, f"{run}: {result.out}{result.err}"
        row = table_row(result.out, f"Certificate {cluster.namespace}/web")
        assert "exists, left alone" in row and "takeover" not in row, result.out
        refused = not_imported_section(result.out)
        assert f"Certificate {cluster.namespace}/web" in refused, result.out
        why = " ".join(refused.split())
        assert "not written by an import: no certctl.io/imported-from annotation" in why, result.out
        todo = " ".join(result.out.split("still to do", 1)[1].split())
        assert (
            f"Secret {operator_ns}/root-ca-key-pair exists and differs from {resources}/root-ca-key-pair"
            in todo
        )
        # The ClusterIssuer itself was imported (first run) and is then found imported already.
        issuer_row = table_row(result.out, f"ClusterIssuer {ca_issuer}")
        expected = "created" if run == "first" else "already imported, left alone"
        assert expected in issuer_row and "differs in" in issuer_row, result.out
        hand_made_row = table_row(result.out, f"ClusterIssuer {hand_made_issuer}")
        assert "exists, left alone" in hand_made_row and "hand-made-ca" not in hand_made_row, result.out
        assert f"certctl ClusterIssuer {hand_made_issuer} exists already" in todo, result.out
        assert f"ClusterIssuer {hand_made_issuer}" not in refused, result.out
        # Its ManagedCertificate is imported: there is no Secret to hand over yet.
        api_row = table_row(result.out, f"Certificate {cluster.namespace}/api")
        expected = "created" if run == "first" else "already imported, left alone"
        assert expected in api_row and "no Secret yet" in api_row, result.out

    assert cluster.cert("web")["spec"] == spec_before
    secret = cluster.secret("web-tls")
    assert secret is not None and secret.metadata is not None
    assert TAKEOVER not in (secret.metadata.annotations or {})
    assert cluster.secret_data("web-tls") == data
    assert Cluster(kube, kubectl, operator_ns).secret_data("root-ca-key-pair") == other
    assert Cluster(kube, kubectl, operator_ns).secret("hand-made-ca") is None
