"""Run ``certctl-operator run`` as a real child process (tests, demo, benchmarks).

Tests drive the operator exactly as a user would: a separate process with
its own settings from ``CERTCTL_*`` variables, talking to the API server
through a kubeconfig. Being a real process, it can be SIGKILLed and started
again to prove that nothing important lives only in memory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from certctl_operator.dev.processes import spawn, terminate


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Fast but realistic timings for tests; a test may override any of them.
FAST_SETTINGS: Mapping[str, str] = {
    "CERTCTL_NOTIFICATION_RETRY_BASE": "1s",
    "CERTCTL_NOTIFICATION_RETRY_CAP": "30s",
    "CERTCTL_NOTIFICATION_RETRY_INTERVAL": "1s",
    "CERTCTL_ISSUANCE_RETRY_BASE": "1s",
    "CERTCTL_ISSUANCE_RETRY_CAP": "10s",
    "CERTCTL_RENEWAL_CHECK_INTERVAL": "1s",
    "CERTCTL_MINIMUM_CERTIFICATE_DURATION": "10s",
    "CERTCTL_CRL_REFRESH_CHECK_INTERVAL": "1s",
    # Test receivers listen on 127.0.0.1, which the default egress policy refuses.
    "CERTCTL_NOTIFICATION_EGRESS_ALLOWED_CIDRS": "127.0.0.0/8",
}


class OperatorProcess:
    """One ``certctl-operator run`` child process."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        namespaces: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.namespaces = tuple(namespaces)
        self.env = dict(env or {})
        self.extra_args = tuple(extra_args)
        self.port = free_port()
        self.process: subprocess.Popen[Any] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0, *, ready: bool = True) -> None:
        """Start and wait until ``/readyz`` answers 200, or with ``ready=False`` until ``/healthz`` does.

        ``ready=False`` is for a process that is not expected to become Ready
        (one that should fail, or whose API access is cut off).
        """
        assert self.process is None or self.process.poll() is not None, "already running"
        env = dict(os.environ)
        env.update(FAST_SETTINGS)
        env.update(self.env)
        env["KUBECONFIG"] = str(self.kubeconfig)
        # The Kubernetes client writes the kubeconfig's client key to temporary files and removes
        # them at exit; a SIGKILLed operator cannot, so they go beside its log, not into /tmp.
        scratch = self.log_path.parent / f"{self.log_path.stem}.tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(scratch)
        env["CERTCTL_HTTP_HOST"] = "127.0.0.1"
        env["CERTCTL_HTTP_PORT"] = str(self.port)
        args = [sys.executable, "-m", "certctl_operator", "run", "--log-format", "json"]
        for namespace in self.namespaces:
            args += ["--namespace", namespace]
        args += list(self.extra_args)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- start #{self.starts + 1}: {' '.join(args)}\n".encode())
            log.flush()
            # spawn() ties the operator's life to ours: it dies with this process.
            self.process = spawn(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.starts += 1
        if ready:
            self.wait_ready(timeout)
        else:
            self.wait_healthy(timeout)

    def wait_ready(self, timeout: float, *, interval: float = 0.1) -> None:
        self._wait_for_200("/readyz", "ready", timeout, interval)

    def wait_healthy(self, timeout: float, *, interval: float = 0.1) -> None:
        self._wait_for_200("/healthz", "serving /healthz", timeout, interval)

    def _wait_for_200(self, path: str, what: str, timeout: float, interval: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"operator exited with {code} before {what}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}{path}", timeout=1.0).status_code == 200:
                    return
            time.sleep(interval)  # polling interval of a deadline-bounded wait
        raise TimeoutError(f"operator not {what} within {timeout}s:\n{self.log_tail()}")

    def readyz(self) -> tuple[int, str]:
        """``/readyz``: (status code, body), e.g. (503, "starting") before start-up finished."""
        response = httpx.get(f"{self.base_url}/readyz", timeout=2.0)
        return response.status_code, response.text.strip()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait for the operator's own clean shutdown (SIGKILL after ``timeout``)."""
        if self.process is None:
            return None
        return terminate(self.process, grace=timeout)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the operator's process group (SIGSTOP freezes it, SIGCONT resumes)."""
        assert self.process is not None and self.process.poll() is None, "not running"
        os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL: no cleanup handlers, no goodbyes."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def restart(self, timeout: float = 60.0) -> None:
        self.kill()
        self.start(timeout)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def metrics(self) -> str:
        return httpx.get(f"{self.base_url}/metrics", timeout=5.0).text


class OperatorFactory:
    """Starts operators for a test and stops every one of them afterwards."""

    def __init__(self, kubeconfig: Path, log_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.started: list[OperatorProcess] = []

    def __call__(
        self,
        namespaces: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        start: bool = True,
        ready: bool = True,
    ) -> OperatorProcess:
        index = len(self.started) + 1
        process = OperatorProcess(
            self.kubeconfig,
            self.log_dir / f"operator-{index}.log",
            namespaces=namespaces,
            env=env,
            extra_args=extra_args,
        )
        self.started.append(process)
        if start:
            process.start(ready=ready)
        return process

    def close(self) -> None:
        for process in self.started:
            process.stop(timeout=20)


@contextlib.contextmanager
def operator_factory(kubeconfig: Path, log_dir: Path) -> Iterator[OperatorFactory]:
    factory = OperatorFactory(kubeconfig, log_dir)
    try:
        yield factory
    finally:
        factory.close()
