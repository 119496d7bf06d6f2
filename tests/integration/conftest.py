"""Fixtures for tests against a real local control plane (etcd + kube-apiserver).

Every test in this directory is marked ``integration``. The control plane is
started once per session, with the project's CRDs (``crds/*.yaml``) applied.

Fixtures:

* ``control_plane`` (session): the started :class:`ControlPlane`.
* ``kubeconfig`` (session): path of its admin kubeconfig.
* ``kube`` (session): a synchronous ``kubernetes.client.ApiClient`` as admin.
* ``kubectl`` (session): ``kubectl(*args, input=None, check=True)`` -> CompletedProcess[str].
* ``namespace`` (function): a fresh, uniquely named namespace.
* ``helm`` (session): the helm CLI (:class:`certctl_operator.dev.helm.Helm`),
  built from Go modules like the control plane, only when a selected test
  uses this fixture.

The binaries are built (or found in the cache) once the test selection is
known and before any test runs, so a cold build is not charged to the first
test's timeout.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from certctl_operator.dev.binaries import ensure_binaries
from certctl_operator.dev.controlplane import ControlPlane, apply_crds, stop_all
from certctl_operator.dev.helm import Helm, ensure_helm
from certctl_operator.dev.operator_process import OperatorFactory
from certctl_operator.dev.operator_process import operator_factory as operator_factory_context
from certctl_operator.dev.processes import find_owned_processes, pid_alive

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
CRD_DIR = REPO_ROOT / "crds"


class Kubectl(Protocol):
    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


def _in_this_directory(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).resolve().parents


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tryfirst: the marker must be there before `-m` deselects.
    for item in items:
        if _in_this_directory(item):
            item.add_marker(pytest.mark.integration)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    selected = [item for item in session.items if _in_this_directory(item)]
    if not selected:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    capture = session.config.pluginmanager.get_plugin("capturemanager")

    def reporting(prefix: str) -> Callable[[str], None]:
        def progress(line: str) -> None:
            if reporter is not None:
                reporter.write_line(f"[{prefix}] {line}")

        return progress

    def build() -> None:
        ensure_binaries(reporting("control plane"))
        # helm is built only when a selected test asks for it.
        if any("helm" in getattr(item, "fixturenames", ()) for item in selected):
            ensure_helm(reporting("helm"))

    if capture is not None:
        with capture.global_and_fixture_disabled():
            build()
    else:
        build()


def leftover_processes(plane: ControlPlane, pids: dict[str, int]) -> list[int]:
    """PIDs of ``plane``'s processes, or of any kube-apiserver/etcd this session started, still alive."""
    leftovers = {pid for pid in pids.values() if pid_alive(pid)}
    if plane.binaries is not None:
        executables = [plane.binaries.kube_apiserver, plane.binaries.etcd]
        leftovers.update(find_owned_processes(executables=executables))
    return sorted(leftovers)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"))
    try:
        plane.start()
        apply_crds(plane.kubeconfig, CRD_DIR)
        yield plane
    finally:
        pids = plane.pids
        plane.stop()
        stop_all()
        leftovers = leftover_processes(plane, pids)
        if leftovers:
            # Clean up for whatever runs next, then fail loudly.
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            pytest.fail(f"control-plane processes survived stop(): pids {leftovers}", pytrace=False)


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Iterator[Any]:
    with control_plane.api_client() as api_client:
        yield api_client


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane) -> Kubectl:
    base = [
        "kubectl",
        f"--kubeconfig={control_plane.kubeconfig}",
        f"--cache-dir={control_plane.workdir / 'kubectl-cache'}",
    ]

    def run(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*base, *args], input=input, capture_output=True, text=True, check=False, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed with exit status {result.returncode}:\n"
                f"{result.stderr}{result.stdout}"
            )
        return result

    return run


@pytest.fixture(scope="session")
def helm() -> Helm:
    # Built (or found in the cache) in pytest_collection_finish already.
    return ensure_helm(lambda _: None)


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kube: Any) -> str:
    from kubernetes import client

    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem or 'test'}-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(kube).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


@pytest.fixture
def operator_factory(control_plane: ControlPlane, tmp_path: Path) -> Iterator[OperatorFactory]:
    """Start real ``certctl-operator run`` processes; all are stopped after the test.

    ``operator_factory(namespaces=[namespace], env={"CERTCTL_...": "..."})``
    returns a running :class:`OperatorProcess` (``.kill()``, ``.start()``,
    ``.metrics()``, ``.logs()``). On failure the operator's log is printed.
    """
    with operator_factory_context(control_plane.kubeconfig, tmp_path / "operators") as factory:
        yield factory
        for process in factory.started:
            print(f"--- {process.log_path}\n{process.log_tail(200)}")
