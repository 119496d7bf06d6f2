"""The HTTP-01 solver Pod's program: answer one challenge token with its key authorization.

``certctl-operator acme-solver --token T --key-authorization K [--port 8089]``
serves ``GET /.well-known/acme-challenge/T`` with K and 404 for anything else.
Standard library only, so the Pod starts quickly and stays small. The key
authorization is the token and the account key's thumbprint: public, nothing
of the account key itself.
"""

from __future__ import annotations

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
DEFAULT_PORT = 8089


def make_server(address: str, port: int, token: str, key_authorization: str) -> ThreadingHTTPServer:
    """A server bound to ``address:port`` answering the challenge for ``token``."""
    path = CHALLENGE_PREFIX + token
    answer = key_authorization.encode("ascii")

    class ChallengeHandler(BaseHTTPRequestHandler):
        server_version = "certctl-acme-solver"
        sys_version = ""

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] == path:
                self._reply(200, answer)
            else:
                self._reply(404, b"no such challenge\n")

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # One line per request on stderr: the CA's validation attempts show in the Pod's log.
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return ThreadingHTTPServer((address, port), ChallengeHandler)


def serve(address: str, port: int, token: str, key_authorization: str) -> int:
    """Serve until SIGTERM or SIGINT; 0 then."""
    server = make_server(address, port, token, key_authorization)

    def stop(signum: int, frame: FrameType | None) -> None:
        # As PID 1 in its container the process gets no default SIGTERM action: handle it.
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bound_host, bound_port = server.server_address[:2]
    print(f"answering the HTTP-01 challenge {token} on {bound_host!s}:{bound_port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except SystemExit:
        pass
    finally:
        server.server_close()
    return 0
