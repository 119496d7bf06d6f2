"""Revocation lists far beyond what fits in an issuer's status, judged by openssl.

20,000 revocations are written straight into the issuer's revocation-list
ConfigMaps (the storage format of docs/revocation.md), one more is revoked
through a Revocation and the real operator, and the CRL fetched over HTTP must
list all 20,001, signed, with ``openssl verify -crl_check`` refusing the
revoked certificate and accepting a good one; the same after a restart, when
the CRL (too large for its ConfigMap) is signed again from the stored list.

An issuer whose status holds a full list of the earlier format (4,000 entries
in ``revokedCertificates``) keeps every entry: the operator moves them to the
ConfigMaps, and a revocation beyond the old limit goes through.
"""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from kubernetes import client
from tests.support.pki_cluster import (
    certificate_body,
    create,
    crl_number,
    custom,
    fetch_crl,
    issuer_body,
    openssl,
    revocation_body,
    wait_crl,
    wait_for,
    wait_issued,
    wait_phase,
)
from tests.support.revocation_store import (
    REASON_CODES,
    Listed,
    archived,
    even_hex,
    journal,
    listed_serials,
    make_held_ca,
    shard_texts,
    write_archive,
)

from certctl_operator.pki import crl_der_to_pem

BULK = 20_000
EXPIRED = 500
LEGACY = 4_000


def write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


def random_serials(count: int, rng: random.Random) -> list[int]:
    """``count`` distinct positive 128-bit serials (the operator issues 128-bit ones too)."""
    serials: set[int] = set()
    while len(serials) < count:
        serials.add(rng.getrandbits(127) | 1 << 126)
    return sorted(serials)


def openssl_crl_serials(path: Path) -> list[int]:
    """The serials ``openssl crl -text`` prints for a DER CRL."""
    text = openssl("crl", "-inform", "DER", "-in", path, "-noout", "-text")
    assert text.returncode == 0, text.stderr
    return [int(found, 16) for found in re.findall(r"Serial Number: ([0-9A-F]+)", text.stdout)]


def test_twenty_thousand_stored_revocations_and_one_more_are_on_the_crl_openssl_checks(
    kube: Any, namespace: str, operator_factory: Any, tmp_path: Path
) -> None:
    operator = operator_factory(namespaces=[namespace], start=False)
    base = operator.base_url
    ca = make_held_ca(kube, namespace, "big-ca-keypair", "Big CA")
    issuer = create(
        kube, namespace, "issuers", issuer_body("big-ca", ca_secret="big-ca-keypair", base_url=base)
    )
    now = datetime.now(UTC).replace(microsecond=0)
    reasons = [name for name in REASON_CODES]
    bulk = [
        Listed(
            even_hex(serial),
            now - timedelta(days=3),
            reasons[i % len(reasons)],
            now + timedelta(days=90),
            None,
        )
        for i, serial in enumerate(random_serials(BULK + EXPIRED, random.Random(13)))
    ]
    # Some certificates expired days ago: no CRL lists them, and they leave the ConfigMaps.
    expired = [
        Listed(e.serial, now - timedelta(days=100), e.reason, now - timedelta(days=3), None)
        for e in bulk[BULK:]
    ]
    bulk = bulk[:BULK]
    started = time.monotonic()
    shards = write_archive(kube, namespace, issuer, bulk + expired)
    print(f"wrote {BULK + EXPIRED} revocations into {shards} ConfigMaps in {time.monotonic() - started:.2f}s")
    for name in ("doomed", "fine"):
        create(kube, namespace, "managedcertificates", certificate_body(name, "big-ca"))
    operator.start()
    doomed, fine = wait_issued(kube, namespace, "doomed", timeout=60), wait_issued(kube, namespace, "fine")

    create(
        kube, namespace, "revocations", revocation_body("doomed", "doomed", "keyCompromise", reissue=False)
    )
    status = wait_phase(kube, namespace, "doomed", "Revoked", timeout=60)["status"]
    started = time.monotonic()
    der = wait_crl(base, namespace, "big-ca", lambda der: crl_number(der) >= status["crlNumber"], timeout=60)
    print(f"CRL of {len(der)} bytes fetched {time.monotonic() - started:.2f}s after the Revocation settled")

    # openssl reads every entry, the signature holds, and it judges both certificates.
    ca_file = write(tmp_path / "ca.crt", ca.certificate_pem)
    crl_der, crl_pem = write(tmp_path / "crl.der", der), write(tmp_path / "crl.pem", crl_der_to_pem(der))
    expected = {int(entry.serial, 16) for entry in bulk} | {doomed.certificate.serial_number}
    serials = openssl_crl_serials(crl_der)
    assert len(serials) == len(expected) == BULK + 1
    assert set(serials) == expected
    signature = openssl("crl", "-inform", "DER", "-in", crl_der, "-noout", "-CAfile", ca_file)
    assert signature.returncode == 0 and "verify OK" in signature.stdout + signature.stderr, signature.stderr
    refused = openssl(
        "verify",
        "-crl_check",
        "-CAfile",
        ca_file,
        "-CRLfile",
        crl_pem,
        write(tmp_path / "doomed.pem", doomed.leaf_pem),
    )
    assert refused.returncode != 0 and "certificate revoked" in refused.stdout + refused.stderr, (
        refused.stdout
    )
    accepted = openssl(
        "verify",
        "-crl_check",
        "-CAfile",
        ca_file,
        "-CRLfile",
        crl_pem,
        write(tmp_path / "fine.pem", fine.leaf_pem),
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    reasons_by_serial = {
        revoked.serial_number: revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
        for revoked in x509.load_der_x509_crl(der)
        if revoked.serial_number == doomed.certificate.serial_number
    }
    assert reasons_by_serial == {doomed.certificate.serial_number: "keyCompromise"}

    # The one revoked through the operator is stored once, with its CRL number; the status stays small.
    on_list = wait_for(
        "the new revocation moved out of the issuer's status, the expired ones deleted",
        lambda: (
            (found := listed_serials(kube, namespace, "big-ca"))
            and not journal(kube, namespace, "big-ca")
            and len(found) == BULK + 1
            and found
        ),
        timeout=60,
    )
    assert {int(serial, 16) for serial in on_list} == expected
    assert on_list[doomed.serial] == status["crlNumber"]
    assert all(
        len(text.encode()) < 1024 * 1024
        for text in shard_texts(kube, namespace, "big-ca", "revoked.v1").values()
    )
    configmap = client.CoreV1Api(kube).read_namespaced_config_map("big-ca-crl", namespace)
    assert int(configmap.metadata.annotations["certctl.io/crl-number"]) >= status["crlNumber"]

    # After a restart the CRL, too large for its ConfigMap, is signed again from the stored list.
    number = crl_number(fetch_crl(base, namespace, "big-ca").content)
    operator.kill()
    operator.start()
    again = wait_crl(base, namespace, "big-ca", lambda der: crl_number(der) >= number, timeout=60)
    assert {entry.serial_number for entry in x509.load_der_x509_crl(again)} == expected
    pem_again = write(tmp_path / "again.pem", crl_der_to_pem(again))
    refused = openssl(
        "verify", "-crl_check", "-CAfile", ca_file, "-CRLfile", pem_again, tmp_path / "doomed.pem"
    )
    assert refused.returncode != 0 and "certificate revoked" in refused.stdout + refused.stderr


def test_a_full_list_of_the_earlier_format_is_kept_and_a_revocation_beyond_it_goes_through(
    kube: Any, namespace: str, operator_factory: Any, tmp_path: Path
) -> None:
    operator = operator_factory(namespaces=[namespace], start=False)
    base = operator.base_url
    ca = make_held_ca(kube, namespace, "old-ca-keypair", "Old CA")
    create(kube, namespace, "issuers", issuer_body("old-ca", ca_secret="old-ca-keypair", base_url=base))
    # What an operator of the earlier version left: every revocation in the status, the list full.
    legacy_leaf = ca.sign("legacy")
    now = datetime.now(UTC).replace(microsecond=0)
    serials = [legacy_leaf.serial_number, *random_serials(LEGACY - 1, random.Random(7))]

    def stamp(value: datetime) -> str:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")

    entries = [
        {
            "serialNumber": even_hex(serial),
            "revokedAt": stamp(now - timedelta(days=1)),
            "reason": "superseded" if i else "keyCompromise",
            "notAfter": stamp(now + timedelta(days=60)),
            "crlNumber": 1 + i % 9,
        }
        for i, serial in enumerate(serials)
    ]
    custom(kube).patch_namespaced_custom_object_status(
        "certctl.io",
        "v1alpha1",
        namespace,
        "issuers",
        "old-ca",
        {
            "status": {
                "crlNumber": 9,
                "crlThisUpdate": stamp(now - timedelta(minutes=5)),
                "crlNextUpdate": stamp(now + timedelta(hours=23)),
                "revokedCertificates": entries,
            }
        },
    )
    create(kube, namespace, "managedcertificates", certificate_body("newcomer", "old-ca"))
    operator.start()
    newcomer = wait_issued(kube, namespace, "newcomer", timeout=60)
    create(
        kube, namespace, "revocations", revocation_body("newcomer", "newcomer", "cACompromise", reissue=False)
    )
    status = wait_phase(kube, namespace, "newcomer", "Revoked", timeout=60)["status"]
    assert status["crlNumber"] > 9

    # Nothing lost: the status entries moved to the ConfigMaps with their numbers, and the new one joined.
    moved = wait_for(
        "the status entries moved to the ConfigMaps",
        lambda: (found := archived(kube, namespace, "old-ca")) and len(found) == LEGACY + 1 and found,
        timeout=60,
    )
    assert journal(kube, namespace, "old-ca") == []
    assert {serial: (e.crl_number, e.reason) for serial, e in moved.items() if serial != newcomer.serial} == {
        e["serialNumber"]: (e["crlNumber"], e["reason"]) for e in entries
    }
    assert moved[newcomer.serial].crl_number == status["crlNumber"]

    # openssl: the CRL lists all of them; the certificate revoked before the upgrade is refused, also by OCSP.
    der = wait_crl(base, namespace, "old-ca", lambda der: crl_number(der) >= status["crlNumber"], timeout=60)
    crl_der = write(tmp_path / "crl.der", der)
    assert set(openssl_crl_serials(crl_der)) == set(serials) | {newcomer.certificate.serial_number}
    ca_file = write(tmp_path / "ca.crt", ca.certificate_pem)
    legacy_file = write(tmp_path / "legacy.pem", legacy_leaf.public_bytes(Encoding.PEM))
    refused = openssl(
        "verify",
        "-crl_check",
        "-CAfile",
        ca_file,
        "-CRLfile",
        write(tmp_path / "crl.pem", crl_der_to_pem(der)),
        legacy_file,
    )
    assert refused.returncode != 0 and "certificate revoked" in refused.stdout + refused.stderr
    answer = openssl(
        "ocsp",
        "-issuer",
        ca_file,
        "-cert",
        legacy_file,
        "-url",
        f"{base}/ocsp/{namespace}/old-ca",
        "-CAfile",
        ca_file,
    )
    assert f"{legacy_file}: revoked" in answer.stdout, answer.stdout + answer.stderr
    assert "Reason: keyCompromise" in answer.stdout and "Response verify OK" in answer.stderr
