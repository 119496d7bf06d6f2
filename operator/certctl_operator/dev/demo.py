"""``certctl-operator dev up``: the whole thing on one machine, with progress.

It builds (or reuses) kube-apiserver and etcd, starts them on loopback,
installs the CRDs, runs the operator against them, starts a small webhook
receiver for the example channel, applies ``examples/`` and then shows every
certctl object as its state changes, until Ctrl-C (or, with
``--exit-when-ready``, until the examples are reconciled).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from certctl_operator import API_GROUP
from certctl_operator.dev.binaries import ensure_binaries
from certctl_operator.dev.controlplane import ControlPlane, apply_crds
from certctl_operator.dev.operator_process import OperatorProcess

# The examples point their webhook channel and publicBaseURL at these ports.
DEMO_WEBHOOK_PORT = 8099
DEMO_OPERATOR_PORT = 8080

PLURALS = (
    "clusterissuers",
    "issuers",
    "managedcertificates",
    "notificationchannels",
    "notificationevents",
    "revocations",
)
# Applied once the certificate it revokes is Ready, so the demo shows both states.
DEFERRED_EXAMPLES = ("70-revocation.yaml",)


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def find_repo_root(start: Path | None = None) -> Path:
    for candidate in [start or Path.cwd(), *(start or Path.cwd()).parents]:
        if (candidate / "examples").is_dir() and (candidate / "crds").is_dir():
            return candidate
    here = Path(__file__).resolve()
    for candidate in here.parents:
        if (candidate / "examples").is_dir() and (candidate / "crds").is_dir():
            return candidate
    raise SystemExit("run this from a certctl-operator checkout (examples/ and crds/ not found)")


class _WebhookPrinter(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        try:
            payload = json.loads(body)
            summary = f"{payload.get('type', '?')}: {payload.get('subject', '')}"
        except ValueError:
            summary = f"{length} bytes"
        signed = "signed" if self.headers.get("X-Certctl-Signature") else "unsigned"
        _say(f"webhook receiver got a notification ({signed}) -> {summary}")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def _start_webhook_receiver() -> ThreadingHTTPServer | None:
    try:
        server = ThreadingHTTPServer(("127.0.0.1", DEMO_WEBHOOK_PORT), _WebhookPrinter)
    except OSError as error:
        _say(f"webhook receiver not started (port {DEMO_WEBHOOK_PORT}: {error.strerror})")
        return None
    threading.Thread(target=server.serve_forever, name="demo-webhook", daemon=True).start()
    _say(f"webhook receiver listening on http://127.0.0.1:{DEMO_WEBHOOK_PORT}/certctl")
    return server


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _object_state(item: dict[str, Any]) -> str:
    status = item.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    ready = conditions.get("Ready")
    phase = status.get("phase")
    parts = []
    if phase:
        parts.append(f"phase={phase}")
    if ready:
        parts.append(f"Ready={ready.get('status')} ({ready.get('reason', '')})")
    if "revision" in status:
        parts.append(f"revision={status['revision']}")
    return ", ".join(parts) or "accepted, not reconciled yet"


def _snapshot(kubectl: Callable[..., subprocess.CompletedProcess[str]]) -> dict[str, dict[str, Any]]:
    kinds = ",".join(f"{plural}.{API_GROUP}" for plural in PLURALS)
    result = kubectl("get", kinds, "-A", "-o", "json")
    objects: dict[str, dict[str, Any]] = {}
    for item in json.loads(result.stdout).get("items", []):
        meta = item["metadata"]
        key = f"{item['kind']} {meta.get('namespace', '-')}/{meta['name']}"
        objects[key] = item
    return objects


def _is_ready(item: dict[str, Any]) -> bool:
    conditions = (item.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def run_demo(exit_when_ready: bool = False, workdir: str | None = None, timeout: float = 180.0) -> int:
    root = find_repo_root()
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="certctl-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    _say("step 1/5: kube-apiserver and etcd (built from Go modules on first use, then cached)")
    binaries = ensure_binaries(progress=_say)
    _say(f"step 2/5: starting the control plane in {work}")
    with ControlPlane(work / "controlplane", binaries=binaries, progress=_say) as plane:
        env = dict(os.environ, KUBECONFIG=str(plane.kubeconfig))

        def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, check=True)

        _say("step 3/5: installing the CRDs")
        for name in apply_crds(plane.kubeconfig, root / "crds"):
            _say(f"  CRD {name} established")
        kubectl("create", "namespace", "certctl-system")

        _say("step 4/5: starting the operator")
        receiver = _start_webhook_receiver()
        operator = OperatorProcess(plane.kubeconfig, work / "operator.log")
        if _port_free(DEMO_OPERATOR_PORT):
            operator.port = DEMO_OPERATOR_PORT
        operator.env["CERTCTL_OPERATOR_NAMESPACE"] = "certctl-system"
        try:
            operator.start()
            _say(f"operator ready: {operator.base_url}/metrics, logs in {operator.log_path}")
            _say("step 5/5: applying examples/")
            examples = sorted((root / "examples").glob("*.yaml"))
            for path in examples:
                if path.name in DEFERRED_EXAMPLES:
                    continue
                kubectl("apply", "--server-side", "-f", str(path))
                _say(f"  applied {path.relative_to(root)}")
            print(
                "\nPoint kubectl at the demo cluster:\n\n"
                f"    export KUBECONFIG={plane.kubeconfig}\n"
                "    kubectl get certctl -A\n",
                flush=True,
            )
            return _watch(kubectl, root, exit_when_ready, timeout)
        except KeyboardInterrupt:
            _say("stopping")
            return 0
        finally:
            operator.stop()
            if receiver is not None:
                receiver.shutdown()
            _say("operator stopped; stopping the control plane")


def _watch(
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    root: Path,
    exit_when_ready: bool,
    timeout: float,
) -> int:
    seen: dict[str, str] = {}
    deferred = [root / "examples" / name for name in DEFERRED_EXAMPLES]
    deadline = time.monotonic() + timeout
    while True:
        objects = _snapshot(kubectl)
        for key, item in sorted(objects.items()):
            state = _object_state(item)
            if seen.get(key) != state:
                seen[key] = state
                _say(f"{key}: {state}")
        certificates_ready = all(
            _is_ready(item) for key, item in objects.items() if key.startswith("ManagedCertificate ")
        )
        if deferred and certificates_ready:
            for path in deferred:
                kubectl("apply", "--server-side", "-f", str(path))
                _say(f"  applied {path.relative_to(root)} (its certificate is Ready)")
            deferred = []
            continue  # the snapshot above predates them
        if exit_when_ready:
            if not deferred and all(_is_ready(item) for item in objects.values()):
                _say("every example is Ready")
                return 0
            if time.monotonic() > deadline:
                waiting = [key for key, item in objects.items() if not _is_ready(item)]
                _say(f"not Ready after {timeout:.0f}s: {', '.join(sorted(waiting))}")
                return 1
        time.sleep(1.0)  # refresh interval of the progress display
