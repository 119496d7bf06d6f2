"""Pebble (the ACME test CA) and pebble-challtestsrv (its DNS) as processes on loopback.

The binaries are built once from Go modules and cached (certctl_operator.dev.pebble).
Pebble resolves every name through challtestsrv, which answers A queries with
127.0.0.1, so an HTTP-01 validation of any name reaches the operator's port.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from certctl_operator.dev.operator_process import free_port
from certctl_operator.dev.pebble import ensure_pebble
from certctl_operator.dev.processes import spawn, terminate
from tests.support.pki_cluster import wait_for
from tests.support.receivers import make_self_signed

LOOPBACK = "127.0.0.1"


@dataclass
class Pebble:
    """A running Pebble: its directory URL, the PEM of its TLS certificate, its management API."""

    directory_url: str
    management_url: str
    tls_cert_pem: str
    log_path: Path

    @property
    def ca_bundle(self) -> str:
        """The issuer's caBundle value: base64 of the TLS certificate's PEM."""
        return base64.b64encode(self.tls_cert_pem.encode("ascii")).decode("ascii")

    def _get(self, path: str) -> httpx.Response:
        with httpx.Client(verify=_ssl_context(self.tls_cert_pem), timeout=10.0) as client:
            return client.get(f"{self.management_url}{path}")

    def root_pem(self) -> str:
        """Pebble's issuing root (it is not part of the chain it hands out)."""
        response = self._get("/roots/0")
        response.raise_for_status()
        return response.text

    def intermediate_pem(self) -> str:
        response = self._get("/intermediates/0")
        response.raise_for_status()
        return response.text

    def cert_status(self, serial_hex: str) -> dict[str, Any]:
        """Pebble's view of one certificate: Status Valid or Revoked, and the reason."""
        response = self._get(f"/cert-status-by-serial/{serial_hex.lower()}")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _ssl_context(cert_pem: str) -> Any:
    import ssl

    return ssl.create_default_context(cadata=cert_pem)


@contextmanager
def running_pebble(
    workdir: Path,
    *,
    http_port: int,
    domain_blocklist: Sequence[str] = (),
    dns_server: str | None = None,
    eab_mac_keys: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Pebble]:
    """Pebble validating HTTP-01 on ``http_port``, resolving through challtestsrv or ``dns_server``."""
    binaries = ensure_pebble()
    workdir.mkdir(parents=True, exist_ok=True)
    tls = make_self_signed("pebble")
    (workdir / "cert.pem").write_text(tls.cert_pem)
    (workdir / "key.pem").write_text(tls.key_pem)
    listen, management = free_port(), free_port()
    config: dict[str, Any] = {
        "pebble": {
            "listenAddress": f"{LOOPBACK}:{listen}",
            "managementListenAddress": f"{LOOPBACK}:{management}",
            "certificate": str(workdir / "cert.pem"),
            "privateKey": str(workdir / "key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(eab_mac_keys),
            "externalAccountMACKeys": dict(eab_mac_keys or {}),
            "domainBlocklist": list(domain_blocklist),
            "retryAfter": {"authz": 1, "order": 1},
            "keyAlgorithm": "ecdsa",
            "profiles": {"default": {"description": "default", "validityPeriod": 7776000}},
        }
    }
    (workdir / "pebble-config.json").write_text(json.dumps(config))
    with ExitStack() as stack:
        if dns_server is None:
            dns_port, challtest_management = free_port(), free_port()
            challtest_log = (workdir / "challtestsrv.log").open("w")
            stack.callback(challtest_log.close)
            challtest = spawn(
                [
                    str(binaries.challtestsrv),
                    "-http01", "",
                    "-https01", "",
                    "-doh", "",
                    "-tlsalpn01", "",
                    "-dnsserver", f"{LOOPBACK}:{dns_port}",
                    "-management", f"{LOOPBACK}:{challtest_management}",
                    "-defaultIPv4", LOOPBACK,
                    "-defaultIPv6", "",
                ],
                stdout=challtest_log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            stack.callback(terminate, challtest, 10.0)
            dns_server = f"{LOOPBACK}:{dns_port}"
        log_path = workdir / "pebble.log"
        pebble_log = log_path.open("w")
        stack.callback(pebble_log.close)
        process_env = dict(os.environ)
        process_env.update(PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
        process_env.update(env or {})
        pebble = spawn(
            [str(binaries.pebble), "-config", str(workdir / "pebble-config.json"), "-dnsserver", dns_server],
            stdout=pebble_log,
            stderr=subprocess.STDOUT,
            env=process_env,
            cwd=workdir,
        )
        stack.callback(terminate, pebble, 10.0)
        server = Pebble(
            directory_url=f"https://{LOOPBACK}:{listen}/dir",
            management_url=f"https://{LOOPBACK}:{management}",
            tls_cert_pem=tls.cert_pem,
            log_path=log_path,
        )

        def answers() -> bool | None:
            assert pebble.poll() is None, f"pebble exited:\n{server.log_text()}"
            try:
                with httpx.Client(verify=_ssl_context(tls.cert_pem), timeout=5.0) as client:
                    return client.get(server.directory_url).status_code == 200 or None
            except httpx.HTTPError:
                return None

        wait_for("Pebble's directory", answers, timeout=60.0, interval=0.2)
        yield server
