"""A small CA with its own CRL and OCSP endpoints, for the kubectl plugin's tests.

:class:`PKIWorld` makes a CA (ECDSA, fast), issues leaf certificates whose
CRL distribution point and OCSP URL point at its own endpoints, keeps a set of
revoked serials, and answers ``GET <base>/crl`` (a DER CRL signed by the CA)
and ``POST <base>/ocsp`` (an OCSP response signed by the CA) from that set.
Every request is recorded. :meth:`PKIWorld.transport` serves it in-process to
an ``httpx.Client``; :meth:`PKIWorld.serve` serves it on 127.0.0.1 for a
separate process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from cryptography import x509

from certctl_operator.pki import (
    CertificateRequest,
    CertificateStatus,
    KeyAlgorithm,
    KeySpec,
    RevokedEntry,
    build_crl,
    create_self_signed_ca,
    generate_private_key,
    handle_ocsp_request,
    issue_certificate,
    private_key_to_pem,
)
from certctl_operator.pki.authority import SigningAuthority
from certctl_operator.pki.ca import GeneratedCA
from certctl_operator.pki.issue import IssuedCertificate
from certctl_operator.pki.keys import KeyEncoding, PrivateKey

EC = KeySpec(KeyAlgorithm.ECDSA, 256)


@dataclass(frozen=True)
class Leaf:
    issued: IssuedCertificate
    key: PrivateKey

    @property
    def certificate(self) -> x509.Certificate:
        return self.issued.certificate

    @property
    def key_pem(self) -> str:
        return private_key_to_pem(self.key, KeyEncoding.PKCS8)


@dataclass
class PKIWorld:
    base_url: str = "http://pki.test"
    common_name: str = "certctl test CA"
    ca: GeneratedCA = field(init=False)
    revoked: dict[int, tuple[datetime, str]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    crl_validity: timedelta = timedelta(hours=24)
    crl_now: datetime | None = None
    crl_authority: SigningAuthority | None = None
    """Sign the CRL with this authority instead of the CA (to test forged CRLs)."""

    def __post_init__(self) -> None:
        self.ca = create_self_signed_ca(self.common_name, EC, timedelta(days=365), datetime.now(UTC))

    @property
    def authority(self) -> SigningAuthority:
        return self.ca.authority

    @property
    def crl_url(self) -> str:
        return f"{self.base_url}/crl"

    @property
    def ocsp_url(self) -> str:
        return f"{self.base_url}/ocsp"

    def issue(self, dns_name: str = "web.example.test", *, urls: bool = True) -> Leaf:
        key = generate_private_key(EC)
        request = CertificateRequest(
            dns_names=(dns_name,),
            duration=timedelta(days=30),
            crl_distribution_url=self.crl_url if urls else None,
            ocsp_url=self.ocsp_url if urls else None,
        )
        return Leaf(issue_certificate(request, key, self.authority, datetime.now(UTC)), key)

    def revoke(self, leaf: Leaf, reason: str = "keyCompromise") -> None:
        self.revoked[leaf.issued.serial] = (datetime.now(UTC) - timedelta(minutes=5), reason)

    # ------------------------------------------------------------------ endpoints

    def crl_der(self) -> bytes:
        entries = [RevokedEntry(serial, at, reason) for serial, (at, reason) in self.revoked.items()]
        return build_crl(
            self.crl_authority or self.authority,
            entries,
            crl_number=7,
            now=self.crl_now or datetime.now(UTC),
            validity=self.crl_validity,
        )

    def _status(self, serial: int) -> CertificateStatus:
        if serial in self.revoked:
            at, reason = self.revoked[serial]
            return CertificateStatus.revoked(at, reason)
        return CertificateStatus.good()

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        self.requests.append((method, path))
        if method == "GET" and path == "/crl":
            return 200, "application/pkix-crl", self.crl_der()
        if method == "POST" and path == "/ocsp":
            der = handle_ocsp_request(
                body, self.authority, None, self._status, datetime.now(UTC), timedelta(hours=1)
            )
            return 200, "application/ocsp-response", der
        return 404, "text/plain", b"not found"

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            status, content_type, content = self.answer(request.method, request.url.path, request.read())
            return httpx.Response(status, content=content, headers={"Content-Type": content_type})

        return httpx.MockTransport(handle)

    @contextmanager
    def serve(self) -> Iterator[PKIWorld]:
        """Serve the endpoints on 127.0.0.1 (a free port) and point ``base_url`` at them.

        Issue leaves inside the block, so their URLs name this server.
        """
        world = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, content_type, content = world.answer(method, self.path, self.rfile.read(length))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def do_GET(self) -> None:
                self._reply("GET")

            def do_POST(self) -> None:
                self._reply("POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, name="cli-pki", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)
