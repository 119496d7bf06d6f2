"""``kubectl certctl revoke``: the Revocation it creates, and how it waits for the operator.

The operator's side is played by the test: it writes the Revocation's status
through the status subresource while a real ``kubectl-certctl`` process waits.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.support.cli_objects import (
    Result,
    certificate,
    condition,
    create,
    custom,
    get,
    mcert_not_found,
    stamp,
    wait_for,
    write_status,
)

from certctl_operator.cli.main import main

CLI = Callable[..., Result]
SERIAL = "5e1a2b3c4d"


@pytest.fixture
def cli(kubeconfig: Path, capsys: pytest.CaptureFixture[str]) -> CLI:
    capsys.readouterr()

    def run(*args: str) -> Result:
        code = main(["--kubeconfig", str(kubeconfig), *args])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return Result(code, out, err)

    return run


@pytest.fixture
def issued(kube: Any, namespace: str) -> str:
    """A ManagedCertificate whose status says it holds serial SERIAL."""
    create(kube, namespace, "managedcertificates", certificate("web"))
    write_status(
        kube,
        namespace,
        "managedcertificates",
        "web",
        {
            "conditions": [condition("Ready", "True", "Issued")],
            "serialNumber": SERIAL,
            "notAfter": stamp(timedelta(days=30)),
        },
    )
    return "web"


def revocations(kube: Any, namespace: str) -> list[dict[str, Any]]:
    items = custom(kube).list_namespaced_custom_object("certctl.io", "v1alpha1", namespace, "revocations")[
        "items"
    ]
    return list(items)


def test_no_wait_creates_the_revocation_and_exits_0(cli: CLI, kube: Any, namespace: str, issued: str) -> None:
    result = cli(
        "revoke", issued, "-n", namespace, "--reason", "keyCompromise", "--no-reissue",
        "--comment", "key found in a public repository", "--no-wait",
    )  # fmt: skip
    assert result.code == 0, result.err
    (revocation,) = revocations(kube, namespace)
    name = revocation["metadata"]["name"]
    assert name.startswith("web-keycompromise-")
    assert revocation["spec"] == {
        "certificateRef": {"name": "web"},
        "reason": "keyCompromise",
        "reissue": False,
        "comment": "key found in a public repository",
    }
    assert (
        f"created Revocation {namespace}/{name}: revoke serial {SERIAL} of ManagedCertificate {namespace}/web"
        in (result.out)
    )
    assert f"kubectl get revocations.certctl.io -n {namespace} {name} -w" in result.out


def test_reissue_is_the_default_and_names_can_be_chosen(
    cli: CLI, kube: Any, namespace: str, issued: str
) -> None:
    result = cli(
        "revoke", issued, "-n", namespace, "--reason", "superseded", "--name", "rotate-web", "--no-wait"
    )
    assert result.code == 0, result.err
    spec = get(kube, namespace, "revocations", "rotate-web")["spec"]
    assert spec == {"certificateRef": {"name": "web"}, "reason": "superseded", "reissue": True}


def _revoke_in_background(kubeconfig: Path, namespace: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "certctl_operator.cli.main", "--kubeconfig", str(kubeconfig),
         "revoke", "web", "-n", namespace, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_wait_follows_the_revocation_until_it_is_revoked(
    kubeconfig: Path, kube: Any, namespace: str, issued: str
) -> None:
    process = _revoke_in_background(
        kubeconfig, namespace, "--reason", "superseded", "--name", "r1", "--timeout", "60s"
    )
    try:
        wait_for("the Revocation to be created", lambda: revocations(kube, namespace))
        write_status(kube, namespace, "revocations", "r1", {"phase": "Pending"})
        write_status(
            kube,
            namespace,
            "revocations",
            "r1",
            {
                "phase": "Revoked",
                "serialNumber": SERIAL,
                "revokedAt": stamp(),
                "crlNumber": 3,
                "issuerRef": {"name": "ca", "kind": "Issuer"},
                "conditions": [condition("Ready", "True", "Revoked", "on CRL #3")],
            },
        )
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert f"Revocation {namespace}/r1: serial {SERIAL} revoked at " in out
    assert "listed on CRL #3 of Issuer ca" in out
    assert f"ManagedCertificate {namespace}/web gets a new certificate" in out
    # One progress line per change of state (stderr is not a terminal here).
    progress = [line for line in err.splitlines() if line.startswith(f"Revocation {namespace}/r1: ")]
    states = [line.split(": ", 1)[1].rsplit(" [", 1)[0] for line in progress]
    assert states[0] == "not picked up by the operator yet"
    assert states[-1] == "Revoked (Revoked: on CRL #3)"
    assert "Pending" in states


def test_wait_reports_a_failed_revocation(kubeconfig: Path, kube: Any, namespace: str, issued: str) -> None:
    process = _revoke_in_background(kubeconfig, namespace, "--reason", "keyCompromise", "--name", "r2")
    try:
        wait_for("the Revocation to be created", lambda: revocations(kube, namespace))
        write_status(
            kube,
            namespace,
            "revocations",
            "r2",
            {
                "phase": "Failed",
                "conditions": [condition("Ready", "False", "IssuerNotFound", "Issuer ca does not exist")],
            },
        )
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 1
    assert (
        f"error: Revocation {namespace}/r2 failed: Failed (IssuerNotFound: Issuer ca does not exist)" in err
    )


def test_wait_times_out_with_exit_4(cli: CLI, kube: Any, namespace: str, issued: str) -> None:
    result = cli(
        "revoke", issued, "-n", namespace, "--reason", "superseded", "--name", "r3", "--timeout", "2s"
    )
    assert result.code == 4
    assert f"error: timed out after 2s waiting for Revocation {namespace}/r3" in result.err
    assert "The request stands" in result.err
    assert [item["metadata"]["name"] for item in revocations(kube, namespace)] == ["r3"]


def test_refuses_what_cannot_be_revoked(cli: CLI, kube: Any, namespace: str) -> None:
    missing = cli("revoke", "nope", "-n", namespace, "--reason", "superseded")
    assert missing.code == 1
    assert missing.err.strip() == mcert_not_found(namespace, "nope")
    create(kube, namespace, "managedcertificates", certificate("fresh"))
    fresh = cli("revoke", "fresh", "-n", namespace, "--reason", "superseded")
    assert fresh.code == 1 and "has no issued certificate yet" in fresh.err
    create(kube, namespace, "managedcertificates", certificate("pulled"))
    write_status(kube, namespace, "managedcertificates", "pulled", {"serialNumber": "0abc", "revoked": True})
    pulled = cli("revoke", "pulled", "-n", namespace, "--reason", "superseded")
    assert pulled.code == 1 and "(serial 0abc) is already revoked" in pulled.err
    assert revocations(kube, namespace) == []
