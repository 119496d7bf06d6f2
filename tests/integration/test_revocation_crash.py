"""SIGKILL in the middle of revoking: after a restart each serial is revoked exactly once.

The operator is killed at three points of a revocation: right after the
Revocation is created, once it has resolved the serial (status.serialNumber
written), and once the issuer's revocation list holds the serial (before the
Revocation says Revoked). A sampler fetches the CRL over HTTP all along and
the issuer's CRL number is read at every step: neither may ever go down.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from cryptography.x509 import ocsp
from tests.support.pki_cluster import (
    ask_ocsp,
    certificate_body,
    create,
    crl_number,
    crl_reasons,
    get,
    issuer_body,
    make_ca_secret,
    revocation_body,
    wait_crl,
    wait_for,
    wait_issued,
    wait_phase,
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
        return any(e["serialNumber"] == serial for e in issuer_status().get("revokedCertificates") or [])

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

    # Each serial once on the list, with the CRL number its Revocation reports; none twice on the CRL.
    entries = issuer_status()["revokedCertificates"]
    serials = [entry["serialNumber"] for entry in entries]
    assert sorted(serials) == sorted(c.serial for c in before.values())
    for name, certificate in before.items():
        revocation = get(kube, namespace, "revocations", name)["status"]
        assert revocation["serialNumber"] == certificate.serial, name
        entry = next(e for e in entries if e["serialNumber"] == certificate.serial)
        assert entry["crlNumber"] == revocation["crlNumber"], name
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
