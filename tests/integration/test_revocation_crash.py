"""SIGKILL in the middle of revoking: after a restart each serial is revoked exactly once.

The operator is killed at three points of a revocation: right after the
Revocation is created, once it has resolved the serial (status.serialNumber
written), and once the issuer's revocation list holds the serial (before the
Revocation says Revoked). A sampler fetches the CRL over HTTP all along and
the issuer's CRL number is read at every step: neither may ever go down.

The other crash window is while the journal of new revocations moves from the
issuer's status to its revocation-list ConfigMaps: killed between the two
steps, the entries are in both places, and must be listed once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from tests.support.pki_cluster import (
    ask_ocsp,
    certificate_body,
    create,
    crl_number,
    crl_reasons,
    custom,
    get,
    issuer_body,
    make_ca_secret,
    openssl,
    revocation_body,
    wait_crl,
    wait_for,
    wait_issued,
    wait_phase,
)
from tests.support.revocation_store import (
    Listed,
    archived,
    even_hex,
    is_listed,
    journal,
    listed_serials,
    make_held_ca,
    shard_texts,
    write_archive,
)


@contextmanager
def crl_sampler(url: str) -> Iterator[list[int]]:
    """Fetch ``url`` over and over on a thread; yields the CRL numbers seen, in order."""
    seen: list[int] = []
    done = threading.Event()

    def run() -> None:
        with httpx.Client(timeout=2.0) as http:
            while not done.is_set():
                try:
                    response = http.get(url)
                except httpx.HTTPError:  # the operator is down for a moment
                    response = None
                if response is not None and response.status_code == 200:
                    number = crl_number(response.content)
                    if not seen or seen[-1] != number:
                        seen.append(number)
                done.wait(0.02)  # sampling period

    thread = threading.Thread(target=run, name="crl-sampler", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join(5)


def test_sigkill_mid_revocation_revokes_each_serial_once_and_crl_numbers_only_grow(
    kube: Any, namespace: str, operator_factory: Any
) -> None:
    operator = operator_factory(namespaces=[namespace], start=False)
    base = operator.base_url
    make_ca_secret(kube, namespace, "team-ca-keypair", "Team CA")
    create(kube, namespace, "issuers", issuer_body("team-ca", ca_secret="team-ca-keypair", base_url=base))
    names = ("early", "resolved", "listed")
    for name in names:
        create(kube, namespace, "managedcertificates", certificate_body(name, "team-ca"))
    operator.start()
    before = {name: wait_issued(kube, namespace, name) for name in names}
    wait_crl(base, namespace, "team-ca", lambda der: True)
    issuer_numbers: list[int] = []

    def issuer_status() -> dict[str, Any]:
        status = get(kube, namespace, "issuers", "team-ca").get("status") or {}
        issuer_numbers.append(int(status.get("crlNumber") or 0))
        return dict(status)

    def listed(serial: str) -> bool:
        issuer_status()
        return is_listed(kube, namespace, "team-ca", serial)

    with crl_sampler(f"{base}/crl/{namespace}/team-ca.crl") as crl_numbers:
        # 1. Killed right after the Revocation is created.
        create(kube, namespace, "revocations", revocation_body("early", "early", "keyCompromise"))
        operator.kill()
        operator.start()
        wait_phase(kube, namespace, "early", "Revoked")

        # 2. Killed once the serial is resolved and written down, maybe before it is listed.
        create(kube, namespace, "revocations", revocation_body("resolved", "resolved", "superseded"))
        wait_for(
            "the serial resolved",
            lambda: (get(kube, namespace, "revocations", "resolved").get("status") or {}).get("serialNumber"),
            interval=0.005,
        )
        operator.kill()
        operator.start()
        wait_phase(kube, namespace, "resolved", "Revoked")

        # 3. Killed once the issuer lists the serial, before the Revocation says so.
        create(kube, namespace, "revocations", revocation_body("listed", "listed", "cACompromise"))
        wait_for("the serial listed", lambda: listed(before["listed"].serial), interval=0.005)
        operator.kill()
        operator.start()
        wait_phase(kube, namespace, "listed", "Revoked")

        final = wait_crl(
            base,
            namespace,
            "team-ca",
            lambda der: {c.certificate.serial_number for c in before.values()} <= set(crl_reasons(der)),
        )
        issuer_status()

    # Each serial once on the list (journal and archive), with the CRL number its Revocation
    # reports; none twice on the CRL.
    entries = listed_serials(kube, namespace, "team-ca")
    assert sorted(entries) == sorted(c.serial for c in before.values())
    for name, certificate in before.items():
        revocation = get(kube, namespace, "revocations", name)["status"]
        assert revocation["serialNumber"] == certificate.serial, name
        assert entries[certificate.serial] == revocation["crlNumber"], name
    assert crl_reasons(final) == {
        before["early"].certificate.serial_number: "keyCompromise",
        before["resolved"].certificate.serial_number: "superseded",
        before["listed"].certificate.serial_number: "cACompromise",
    }

    # Reissued exactly once each, never the replacement revoked.
    for name, certificate in before.items():
        after = wait_issued(kube, namespace, name, after=certificate.serial)
        assert after.revision == certificate.revision + 1, name
        status = get(kube, namespace, "managedcertificates", name)["status"]
        assert status["revokedSerialNumbers"] == [certificate.serial], name
        answer = ask_ocsp(f"{base}/ocsp/{namespace}/team-ca", certificate.certificate, certificate.ca)
        assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED, name

    # CRL numbers only grew, on the issuer and over HTTP, across three SIGKILLs.
    assert issuer_numbers == sorted(issuer_numbers)
    assert crl_numbers == sorted(crl_numbers) and len(crl_numbers) >= 2, crl_numbers
    assert crl_numbers[-1] == crl_number(final) == issuer_numbers[-1]


def test_entries_left_in_both_places_by_a_crash_while_moving_are_listed_once(
    kube: Any, namespace: str, operator_factory: Any, tmp_path: Path
) -> None:
    """The state a crash leaves between the two steps of moving the journal: each entry in both places."""
    operator = operator_factory(namespaces=[namespace], start=False)
    base = operator.base_url
    ca = make_held_ca(kube, namespace, "team-ca-keypair", "Team CA")
    issuer = create(
        kube, namespace, "issuers", issuer_body("team-ca", ca_secret="team-ca-keypair", base_url=base)
    )
    leaf = ca.sign("moving")
    now = datetime.now(UTC).replace(microsecond=0)
    serials = [even_hex(leaf.serial_number), *(even_hex(0x5EED0000 + n) for n in range(1, 200))]
    entries = [
        Listed(serial, now - timedelta(hours=1), "keyCompromise", now + timedelta(days=30), 3)
        for serial in serials
    ]
    write_archive(kube, namespace, issuer, entries)
    custom(kube).patch_namespaced_custom_object_status(
        "certctl.io",
        "v1alpha1",
        namespace,
        "issuers",
        "team-ca",
        {
            "status": {
                "crlNumber": 3,
                "crlThisUpdate": (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "crlNextUpdate": (now + timedelta(hours=23)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "revokedCertificates": [
                    {
                        "serialNumber": e.serial,
                        "revokedAt": e.revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "reason": e.reason,
                        "notAfter": e.not_after.strftime("%Y-%m-%dT%H:%M:%SZ") if e.not_after else None,
                        "crlNumber": e.crl_number,
                    }
                    for e in entries
                ],
            }
        },
    )
    operator.start()

    # The move is finished: the status is empty, each serial is once in the ConfigMaps, unchanged.
    wait_for("the journal moved", lambda: not journal(kube, namespace, "team-ca"), timeout=60)
    stored = [
        line.split(",")[0]
        for text in shard_texts(kube, namespace, "team-ca", "revoked.v1").values()
        for line in text.splitlines()
    ]
    assert sorted(stored) == sorted(serials)
    assert archived(kube, namespace, "team-ca") == {e.serial: e for e in entries}
    assert get(kube, namespace, "issuers", "team-ca")["status"]["revocationArchiveGeneration"] == 1

    # The CRL lists each serial once (openssl reads it), and OCSP answers from the moved list.
    der = wait_crl(base, namespace, "team-ca", lambda der: True, timeout=60)
    listed = [revoked.serial_number for revoked in x509.load_der_x509_crl(der)]
    assert sorted(listed) == sorted(int(serial, 16) for serial in serials)
    ca_file, leaf_file = tmp_path / "ca.crt", tmp_path / "moving.pem"
    ca_file.write_text(ca.certificate_pem)
    leaf_file.write_bytes(leaf.public_bytes(Encoding.PEM))
    answer = openssl(
        "ocsp",
        "-issuer",
        ca_file,
        "-cert",
        leaf_file,
        "-url",
        f"{base}/ocsp/{namespace}/team-ca",
        "-CAfile",
        ca_file,
    )
    assert f"{leaf_file}: revoked" in answer.stdout and "Response verify OK" in answer.stderr, answer.stdout
