"""Revocation-list and issued-serials ConfigMaps that do not parse (edited by hand, or damaged).

The operator never rewrites them (that would lose what they still hold); it
names them in a Warning Event on the issuer and keeps working around them:
issuance goes on, and the CRL waits until the revocation list is repaired,
since a CRL without its entries would un-revoke certificates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client
from tests.support.pki_cluster import (
    certificate_body,
    create,
    issuer_body,
    k8s_events,
    make_ca_secret,
    openssl,
    wait_crl,
    wait_for,
    wait_ready,
)

REASON = "RevocationStoreUnreadable"
GARBAGE = "this is not a list of serials\n"


def damage(kube: Any, namespace: str, name: str, key: str) -> None:
    client.CoreV1Api(kube).create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={key: GARBAGE})
    )


def data_of(kube: Any, namespace: str, name: str) -> dict[str, str]:
    return dict(client.CoreV1Api(kube).read_namespaced_config_map(name, namespace).data or {})


def unreadable_events(kube: Any, namespace: str, configmap: str) -> list[Any]:
    return [
        event
        for event in k8s_events(kube, namespace, "web-ca", REASON)
        if f"ConfigMap {configmap} cannot be read" in event.message
    ]


def test_damaged_issued_serials_are_named_and_issuance_goes_on(
    kube: Any, namespace: str, operator_factory: Any
) -> None:
    operator = operator_factory(namespaces=[namespace], start=False)
    make_ca_secret(kube, namespace, "web-ca-keypair", "Web CA")
    shards = [f"web-ca-issued-{index:02d}" for index in range(16)]
    for name in shards:
        damage(kube, namespace, name, "issued.v1")
    create(
        kube,
        namespace,
        "issuers",
        issuer_body("web-ca", ca_secret="web-ca-keypair", base_url=operator.base_url),
    )
    create(kube, namespace, "managedcertificates", certificate_body("web", "web-ca"))
    operator.start()

    wait_ready(kube, namespace, "managedcertificates", "web", timeout=60)
    found = wait_for(
        "a Warning Event naming a damaged issued-serials ConfigMap",
        lambda: unreadable_events(kube, namespace, shards[0]) or None,
        30,
    )
    assert found[0].type == "Warning"
    assert "line 1 of an issued-serials list is not an entry" in found[0].message
    assert "answer unknown over OCSP" in found[0].message
    # The CRL is published: the damage concerns OCSP's memory of old serials only.
    wait_crl(operator.base_url, namespace, "web-ca", lambda _: True)
    # Never rewritten, and each one reported once.
    for name in shards:
        assert data_of(kube, namespace, name) == {"issued.v1": GARBAGE}, name
        assert len(unreadable_events(kube, namespace, name)) == 1, name


def test_a_damaged_revocation_list_holds_the_crl_until_it_is_repaired(
    kube: Any, namespace: str, operator_factory: Any, tmp_path: Path
) -> None:
    operator = operator_factory(namespaces=[namespace], start=False)
    ca_pem = make_ca_secret(kube, namespace, "web-ca-keypair", "Web CA")
    damage(kube, namespace, "web-ca-revoked-00", "revoked.v1")
    create(
        kube,
        namespace,
        "issuers",
        issuer_body("web-ca", ca_secret="web-ca-keypair", base_url=operator.base_url),
    )
    operator.start()

    [event] = wait_for(
        "a Warning Event naming the damaged revocation list",
        lambda: unreadable_events(kube, namespace, "web-ca-revoked-00") or None,
        30,
    )
    assert "line 1 of an archived revocation list is not an entry" in event.message
    assert "CRL is not published until the ConfigMap is repaired" in event.message
    wait_ready(kube, namespace, "issuers", "web-ca")
    core = client.CoreV1Api(kube)
    names = {item.metadata.name for item in core.list_namespaced_config_map(namespace).items}
    assert "web-ca-crl" not in names, "a CRL was published without the revocation list"
    assert data_of(kube, namespace, "web-ca-revoked-00") == {"revoked.v1": GARBAGE}

    # Repaired (emptied by its owner): the next look publishes, and openssl reads the CRL.
    core.patch_namespaced_config_map("web-ca-revoked-00", namespace, {"data": {"revoked.v1": ""}})
    crl = wait_crl(operator.base_url, namespace, "web-ca", lambda _: True)
    (tmp_path / "ca.crt").write_text(ca_pem)
    (tmp_path / "ca.crl").write_bytes(crl)
    checked = openssl(
        "crl", "-inform", "DER", "-in", tmp_path / "ca.crl", "-CAfile", tmp_path / "ca.crt", "-noout"
    )
    assert "verify OK" in checked.stderr + checked.stdout
    assert len(unreadable_events(kube, namespace, "web-ca-revoked-00")) == 1
