"""A real, local Kubernetes control plane: etcd plus kube-apiserver on loopback.

This is what the integration tests, the demo and the benchmarks run the
operator against. There are no nodes, no kubelet, no scheduler and no
controller-manager: Pods never run, namespaces and owner references are not
garbage-collected, and no ServiceAccount is created automatically. CRDs
(with structural schemas, CEL rules and subresources), custom resources,
Secrets, ConfigMaps, Events, Leases, RBAC and TokenRequests all behave as in
any cluster.

Usage::

    with ControlPlane() as cp:
        apply_crds(cp.kubeconfig, Path("crds"))
        subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), "get", "ns"])

``python -m certctl_operator.dev.controlplane`` starts one and keeps it running
until interrupted.

The two processes never outlive the control plane: :meth:`ControlPlane.stop`
runs on ``with``-exit, at interpreter exit and on SIGINT/SIGTERM, and on Linux
the kernel kills them if the Python process dies without any clean-up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, TYPE_CHECKING, Any

import yaml

from certctl_operator.dev import pki
from certctl_operator.dev.binaries import Binaries, ensure_binaries
from certctl_operator.dev.processes import spawn, terminate

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

LOOPBACK = "127.0.0.1"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
ADMIN_USER = "admin"

Progress = Callable[[str], None]


class ControlPlaneError(RuntimeError):
    """The control plane failed to start or to do what was asked of it."""


def _quiet(_: str) -> None:
    pass


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(content[-lines:]) or "(empty log)"


def _free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that are free on the loopback address right now."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _http_get(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET ``url``; ``(0, b"")`` when nothing answers."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except (OSError, ssl.SSLError):
        return 0, b""


# --------------------------------------------------------------------------- life-cycle registry

_running: set[ControlPlane] = set()
_registry_lock = threading.RLock()
_previous_handlers: dict[int, Any] = {}
_atexit_registered = False


def stop_all() -> None:
    """Stop every control plane this process started and has not stopped yet."""
    with _registry_lock:
        planes = list(_running)
    for plane in planes:
        plane.stop()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # Look the previous handler up first: stopping the last control plane
    # hands the signals back and forgets it.
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    stop_all()
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _register(plane: ControlPlane, handle_signals: bool) -> None:
    global _atexit_registered
    with _registry_lock:
        _running.add(plane)
        if not _atexit_registered:
            import atexit

            atexit.register(stop_all)
            _atexit_registered = True
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                current = signal.getsignal(signum)
                if current is not _on_signal:
                    _previous_handlers[signum] = current
                    signal.signal(signum, _on_signal)


def _unregister(plane: ControlPlane) -> None:
    with _registry_lock:
        _running.discard(plane)
        if _running or threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in list(_previous_handlers.items()):
            # Give the signal back only if nobody replaced our handler since.
            if signal.getsignal(signum) is _on_signal:
                signal.signal(signum, previous)
            del _previous_handlers[signum]


# --------------------------------------------------------------------------- the control plane


class ControlPlane:
    """etcd and kube-apiserver on free loopback ports, with an admin kubeconfig.

    ``workdir`` receives the PKI, the kubeconfig, etcd's data and both logs
    (``etcd.log``, ``kube-apiserver.log``). When it is not given a temporary
    directory is made and removed again by :meth:`stop`; a given ``workdir``
    is kept (except etcd's data) so the logs can be read afterwards.
    """

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        binaries: Binaries | None = None,
        progress: Progress | None = None,
        start_timeout: float = 90.0,
        stop_grace: float = 10.0,
        apiserver_args: Sequence[str] = (),
        handle_signals: bool = True,
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="certctl-cp-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.ca_file = self.workdir / "pki" / "ca.crt"
        self.etcd_log = self.workdir / "etcd.log"
        self.apiserver_log = self.workdir / "kube-apiserver.log"
        self.server = ""
        self.etcd_url = ""
        self.started_in: float | None = None
        """Seconds from :meth:`start` to a ready API server."""
        self.binaries: Binaries | None = binaries
        """The binaries run, once :meth:`start` has found them."""

        self._progress: Progress = progress or _quiet
        self._start_timeout = start_timeout
        self._stop_grace = stop_grace
        self._apiserver_args = list(apiserver_args)
        self._handle_signals = handle_signals
        self._lock = threading.RLock()
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self._ssl: ssl.SSLContext | None = None
        self._stopped = False

    # ----------------------------------------------------------------- public

    @property
    def running(self) -> bool:
        """Whether both processes are alive."""
        procs = (self._etcd, self._apiserver)
        return all(proc is not None and proc.poll() is None for proc in procs)

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of the processes started so far, by name."""
        found = {"etcd": self._etcd, "kube-apiserver": self._apiserver}
        return {name: proc.pid for name, proc in found.items() if proc is not None}

    @property
    def admin_cert_file(self) -> Path:
        return self.workdir / "pki" / "admin.crt"

    @property
    def admin_key_file(self) -> Path:
        return self.workdir / "pki" / "admin.key"

    def start(self) -> ControlPlane:
        """Start etcd and kube-apiserver and wait until the API server is ready."""
        with self._lock:
            if self._etcd is not None:
                if self._stopped:
                    raise ControlPlaneError("a stopped control plane cannot be started again")
                return self
            binaries = self.binaries = self.binaries or ensure_binaries(self._progress)
            began = time.monotonic()
            _register(self, self._handle_signals)
            try:
                self._write_pki()
                self._launch(binaries)
                self._write_admin_kubeconfig()
                self._wait_for_default_namespace(began + self._start_timeout)
            except BaseException:
                self.stop()
                raise
            self.started_in = time.monotonic() - began
            self._progress(f"control plane ready at {self.server} in {self.started_in:.1f}s")
            return self

    def stop(self) -> None:
        """Stop both processes (SIGTERM, SIGKILL after the grace period). Idempotent."""
        with self._lock:
            self._stopped = True
            for proc in (self._apiserver, self._etcd):
                if proc is not None:
                    terminate(proc, self._stop_grace)
            for log in self._logs:
                log.close()
            self._logs.clear()
            _unregister(self)
            if self._owns_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            else:
                shutil.rmtree(self.workdir / "etcd-data", ignore_errors=True)

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver alone, keeping etcd and its data: an API outage for clients.

        :meth:`start_apiserver` brings it back at the same address with the same
        certificates, so existing kubeconfigs and clients keep working.
        """
        with self._lock:
            if self._apiserver is None or self._stopped:
                raise ControlPlaneError("the control plane is not running")
            terminate(self._apiserver, self._stop_grace)

    def start_apiserver(self) -> None:
        """Start kube-apiserver again after :meth:`stop_apiserver` and wait until it is ready."""
        with self._lock:
            if self._apiserver is None or self._stopped or self.binaries is None:
                raise ControlPlaneError("the control plane is not running")
            if self._apiserver.poll() is None:
                return
            port = int(self.server.rsplit(":", 1)[1])
            self._start_apiserver(self.binaries, port)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped" if self._stopped else "new"
        return f"<ControlPlane {state} server={self.server or '-'} workdir={self.workdir}>"

    def api_client(self) -> ApiClient:
        """A new synchronous ``kubernetes.client.ApiClient`` authenticated as admin."""
        return api_client_for(self.kubeconfig)

    def service_account_token(
        self,
        namespace: str,
        name: str,
        *,
        audiences: Sequence[str] = (),
        expiration_seconds: int = 3600,
        create: bool = True,
    ) -> str:
        """A real ServiceAccount token from the TokenRequest API.

        The ServiceAccount is created first when ``create`` is set and it does
        not exist (nothing else creates ServiceAccounts on this control plane).
        """
        from kubernetes import client

        with self.api_client() as api_client:
            core = client.CoreV1Api(api_client)
            if create:
                try:
                    core.create_namespaced_service_account(
                        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
                    )
                except client.ApiException as exc:
                    if exc.status != 409:
                        raise
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(
                    audiences=list(audiences), expiration_seconds=expiration_seconds
                )
            )
            response = core.create_namespaced_service_account_token(name, namespace, request)
            token = response.status.token if response.status else None
            if not token:
                raise ControlPlaneError(f"TokenRequest for {namespace}/{name} returned no token")
            return token

    def service_account_kubeconfig(
        self, namespace: str, name: str, path: Path | None = None, *, expiration_seconds: int = 3600
    ) -> Path:
        """Write a kubeconfig that authenticates as ServiceAccount ``namespace/name``."""
        token = self.service_account_token(namespace, name, expiration_seconds=expiration_seconds)
        path = path or self.workdir / f"kubeconfig-{namespace}-{name}"
        text = pki.render_kubeconfig(
            self.server,
            self.ca_file.read_bytes(),
            user=f"system:serviceaccount:{namespace}:{name}",
            token=token,
            namespace=namespace,
        )
        _write_private(path, text.encode())
        return path

    # ----------------------------------------------------------------- start-up steps

    def _write_pki(self) -> None:
        pki_dir = self.workdir / "pki"
        pki_dir.mkdir(parents=True, exist_ok=True)
        ca = pki.new_ca()
        serving = pki.issue(
            ca,
            "kube-apiserver",
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            ip_addresses=[LOOPBACK, "10.0.0.1"],
            server=True,
        )
        admin = pki.issue(ca, ADMIN_USER, organizations=["system:masters"], client=True)
        sa_private, sa_public = pki.new_service_account_keys()
        files = {
            "ca.crt": ca.cert_pem,
            "ca.key": ca.key_pem,
            "apiserver.crt": serving.cert_pem,
            "apiserver.key": serving.key_pem,
            "admin.crt": admin.cert_pem,
            "admin.key": admin.key_pem,
            "sa.key": sa_private,
            "sa.pub": sa_public,
        }
        for name, data in files.items():
            _write_private(pki_dir / name, data)
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.admin_cert_file), str(self.admin_key_file))
        self._ssl = context

    def _launch(self, binaries: Binaries, attempts: int = 3) -> None:
        for attempt in range(1, attempts + 1):
            etcd_port, peer_port, apiserver_port = _free_ports(3)
            try:
                self._start_etcd(binaries, etcd_port, peer_port)
                self._start_apiserver(binaries, apiserver_port)
                return
            except ControlPlaneError as exc:
                # Another process may have taken a port between picking and binding.
                if attempt == attempts or "address already in use" not in str(exc):
                    raise
                self._progress(f"port clash, retrying start-up ({exc.args[0].splitlines()[0]})")
                for proc in (self._apiserver, self._etcd):
                    if proc is not None:
                        terminate(proc, self._stop_grace)
                self._apiserver = self._etcd = None
                shutil.rmtree(self.workdir / "etcd-data", ignore_errors=True)

    def _open_log(self, path: Path) -> IO[bytes]:
        log = path.open("ab")
        self._logs.append(log)
        return log

    def _start_etcd(self, binaries: Binaries, port: int, peer_port: int) -> None:
        client_url = f"http://{LOOPBACK}:{port}"
        peer_url = f"http://{LOOPBACK}:{peer_port}"
        data_dir = self.workdir / "etcd-data"
        data_dir.mkdir(mode=0o700, exist_ok=True)
        args = [
            str(binaries.etcd),
            "--name=certctl-dev",
            f"--data-dir={data_dir}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=certctl-dev={peer_url}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync=true",
            "--logger=zap",
            "--log-outputs=stderr",
            "--log-level=warn",
        ]
        log = self._open_log(self.etcd_log)
        self._etcd = spawn(args, stdout=log, stderr=log, cwd=self.workdir)
        self.etcd_url = client_url
        deadline = time.monotonic() + self._start_timeout
        self._wait_until(
            "etcd",
            deadline,
            lambda: _healthy_etcd(_http_get(f"{client_url}/health")),
        )

    def _start_apiserver(self, binaries: Binaries, port: int) -> None:
        pki_dir = self.workdir / "pki"
        self.server = f"https://{LOOPBACK}:{port}"
        args = [
            str(binaries.kube_apiserver),
            f"--etcd-servers={self.etcd_url}",
            f"--secure-port={port}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--cert-dir={pki_dir}",
            f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
            f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
            f"--client-ca-file={pki_dir / 'ca.crt'}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount",
            f"--service-account-issuer={self.server}/",
            f"--service-account-key-file={pki_dir / 'sa.pub'}",
            f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
            "--profiling=false",
            *self._apiserver_args,
        ]
        log = self._open_log(self.apiserver_log)
        self._apiserver = spawn(args, stdout=log, stderr=log, cwd=self.workdir)
        deadline = time.monotonic() + self._start_timeout
        self._wait_until(
            "kube-apiserver",
            deadline,
            lambda: _http_get(f"{self.server}/readyz", self._ssl)[0] == 200,
        )

    def _write_admin_kubeconfig(self) -> None:
        text = pki.render_kubeconfig(
            self.server,
            self.ca_file.read_bytes(),
            user=ADMIN_USER,
            client_cert_pem=self.admin_cert_file.read_bytes(),
            client_key_pem=self.admin_key_file.read_bytes(),
        )
        _write_private(self.kubeconfig, text.encode())

    def _wait_for_default_namespace(self, deadline: float) -> None:
        # The "default" namespace is created by a start-up hook shortly after
        # /readyz turns green; manifests without a namespace need it.
        self._wait_until(
            "the default namespace",
            deadline,
            lambda: _http_get(f"{self.server}/api/v1/namespaces/default", self._ssl)[0] == 200,
        )

    def _wait_until(self, what: str, deadline: float, ready: Callable[[], bool]) -> None:
        delay = 0.05
        while True:
            for name, proc, log in (
                ("etcd", self._etcd, self.etcd_log),
                ("kube-apiserver", self._apiserver, self.apiserver_log),
            ):
                if proc is not None and proc.poll() is not None:
                    raise ControlPlaneError(
                        f"{name} exited with status {proc.returncode} while waiting for {what}; "
                        f"last lines of {log}:\n{_log_tail(log)}"
                    )
            if ready():
                return
            if time.monotonic() >= deadline:
                logs = "\n".join(
                    f"--- last lines of {log}:\n{_log_tail(log)}"
                    for log in (self.etcd_log, self.apiserver_log)
                    if log.exists()
                )
                timeout = f"{self._start_timeout:.0f}s"
                raise ControlPlaneError(f"timed out after {timeout} waiting for {what}\n{logs}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)


def api_client_for(kubeconfig: Path) -> ApiClient:
    """A new synchronous ``kubernetes.client.ApiClient`` for ``kubeconfig``; close it after use."""
    from kubernetes import config

    api_client: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), persist_config=False
    )
    return api_client


def _healthy_etcd(response: tuple[int, bytes]) -> bool:
    status, body = response
    if status != 200:
        return False
    try:
        return bool(json.loads(body).get("health") == "true")
    except ValueError:
        return False


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


# --------------------------------------------------------------------------- CRDs


def load_manifests(paths: Iterable[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Every non-empty YAML document of ``paths``, with the file it came from."""
    documents: list[tuple[Path, dict[str, Any]]] = []
    for path in paths:
        for document in yaml.safe_load_all(path.read_text()):
            if document is None:
                continue
            if not isinstance(document, dict):
                raise ControlPlaneError(f"{path}: a YAML document is not a mapping")
            documents.append((path, document))
    return documents


def apply_crd_manifests(
    kubeconfig: Path,
    manifests: Iterable[Mapping[str, Any]],
    *,
    timeout: float = 60.0,
    field_manager: str = "certctl-dev",
) -> list[str]:
    """Server-side apply CustomResourceDefinitions and wait until each is Established.

    Returns the CRD names in the order given.
    """
    from kubernetes import client

    crds = list(manifests)
    for crd in crds:
        if crd.get("kind") != "CustomResourceDefinition":
            kind, metadata = crd.get("kind"), crd.get("metadata")
            raise ControlPlaneError(f"not a CustomResourceDefinition: {kind} {metadata}")
    names: list[str] = [crd["metadata"]["name"] for crd in crds]
    with api_client_for(kubeconfig) as api_client:
        api = client.ApiextensionsV1Api(api_client)
        for name, crd in zip(names, crds, strict=True):
            api.patch_custom_resource_definition(
                name,
                dict(crd),
                field_manager=field_manager,
                force=True,
                _content_type="application/apply-patch+yaml",
            )
        deadline = time.monotonic() + timeout
        pending = set(names)
        delay = 0.05
        while pending:
            for name in sorted(pending):
                if _crd_established(api.read_custom_resource_definition(name)):
                    pending.discard(name)
            if not pending:
                break
            if time.monotonic() >= deadline:
                raise ControlPlaneError(
                    f"CRDs not Established after {timeout:.0f}s: {', '.join(sorted(pending))}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
    return names


def _crd_established(crd: Any) -> bool:
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def apply_crds(kubeconfig: Path, crd_dir: Path, *, timeout: float = 60.0) -> list[str]:
    """Apply every CRD in ``crd_dir``'s ``*.yaml``/``*.yml`` files; wait until Established.

    An empty or missing directory applies nothing. Returns the CRD names.
    """
    if not crd_dir.is_dir():
        return []
    files = sorted([*crd_dir.glob("*.yaml"), *crd_dir.glob("*.yml")])
    documents = load_manifests(files)
    for path, document in documents:
        if document.get("kind") != "CustomResourceDefinition":
            raise ControlPlaneError(f"{path}: {document.get('kind')!r} is not a CustomResourceDefinition")
    return apply_crd_manifests(kubeconfig, [document for _, document in documents], timeout=timeout)


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """Run a control plane until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m certctl_operator.dev.controlplane",
        description="Run a local etcd + kube-apiserver until Ctrl-C.",
    )
    parser.add_argument("--workdir", type=Path, help="keep PKI, kubeconfig and logs here")
    parser.add_argument("--crds", type=Path, help="apply the CRDs in this directory")
    args = parser.parse_args(argv)
    plane = ControlPlane(args.workdir, progress=print)
    stop = threading.Event()
    # A handler that only wakes the main thread; ControlPlane installs its own
    # on start, which stops the processes first and then chains to this one.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with plane:
        if args.crds:
            names = apply_crds(plane.kubeconfig, args.crds)
            print(f"applied CRDs: {', '.join(names) or '(none)'}")
        print(f"export KUBECONFIG={plane.kubeconfig}")
        print("press Ctrl-C to stop")
        while not stop.wait(1.0):
            if not plane.running:
                print("a control-plane process exited; see the logs in", plane.workdir)
                return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
