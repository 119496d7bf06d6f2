"""The ``helm`` CLI for the chart's tests and for rendering ``manifests/``, built from Go modules.

Helm is compiled by ``go build`` inside the helper module ``tools/helm`` and
cached outside the checkout, under ``~/.cache/certctl-operator/helm/<version>/``,
exactly like the control plane's binaries (:mod:`certctl_operator.dev.binaries`,
whose build, lock and progress helpers this module reuses). The version is
read from that module's ``go.mod``, so bumping it there builds anew.

* ``CERTCTL_HELM`` names an existing ``helm`` binary to use instead of building.
* ``CERTCTL_HELM_CACHE`` replaces the cache root directory.
* ``CERTCTL_HELM_GOMOD`` names the helper module's ``go.mod`` (or its
  directory) when it cannot be found by searching upward.

``python -m certctl_operator.dev.helm`` builds (when needed) and prints the path.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from certctl_operator.dev.binaries import (
    HEARTBEAT_SECONDS,
    BinariesError,
    GoTarget,
    Progress,
    build_lock,
    cache_base,
    go_build,
    is_executable,
    locate_go_mod,
    parse_go_requirements,
)

HELM_MODULE = "helm.sh/helm/v3"
HELM_PACKAGE = f"{HELM_MODULE}/cmd/helm"
CLIENT_GO_MODULE = "k8s.io/client-go"

HELM_ENV = "CERTCTL_HELM"
CACHE_ENV = "CERTCTL_HELM_CACHE"
GOMOD_ENV = "CERTCTL_HELM_GOMOD"
GOMOD_RELATIVE_PATH = Path("tools/helm/go.mod")


class HelmError(BinariesError):
    """Helm could not be located, built or run."""


@dataclass(frozen=True)
class HelmVersions:
    """What the helper module builds: helm's version and the Kubernetes minor its client speaks."""

    helm: str
    client_go: str

    @property
    def kubernetes(self) -> tuple[str, str]:
        """``(major, minor)`` of the Kubernetes release matching client-go: v0.37.x -> ("1", "37")."""
        match = re.match(r"^v0\.(\d+)\.", self.client_go)
        if not match:
            raise HelmError(f"unexpected {CLIENT_GO_MODULE} version {self.client_go!r}")
        return "1", match.group(1)


@dataclass(frozen=True)
class Helm:
    """A ready-to-run helm binary."""

    path: Path
    version: str

    def env(self, home: Path, kubeconfig: Path | None = None) -> dict[str, str]:
        """An environment that keeps helm's config, cache and data under ``home``.

        Nothing is read from or written to the user's own helm set-up, and no
        cluster is reachable unless ``kubeconfig`` is given.
        """
        env = {key: value for key, value in os.environ.items() if not key.startswith("HELM_")}
        env.update(
            HELM_CONFIG_HOME=str(home / "config"),
            HELM_CACHE_HOME=str(home / "cache"),
            HELM_DATA_HOME=str(home / "data"),
        )
        env["KUBECONFIG"] = str(kubeconfig) if kubeconfig is not None else os.devnull
        return env

    def run(
        self,
        *args: str,
        home: Path,
        kubeconfig: Path | None = None,
        check: bool = True,
        timeout: float = 300.0,
        extra_env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``helm *args``; with ``check``, a non-zero exit raises :class:`HelmError` with the output."""
        env = self.env(home, kubeconfig)
        env.update(extra_env or {})
        result = subprocess.run(
            [str(self.path), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise HelmError(
                f"helm {' '.join(args)} failed with exit status {result.returncode}:\n"
                f"{result.stderr}{result.stdout}"
            )
        return result


def parse_go_mod(text: str) -> HelmVersions:
    """Read helm's and client-go's versions out of the helper module's ``go.mod`` text."""
    modules = parse_go_requirements(text)
    helm, client_go = modules.get(HELM_MODULE), modules.get(CLIENT_GO_MODULE)
    if not helm:
        raise HelmError(f"go.mod does not require {HELM_MODULE}")
    if not client_go:
        raise HelmError(f"go.mod does not require {CLIENT_GO_MODULE}; run go mod tidy")
    return HelmVersions(helm=helm, client_go=client_go)


def find_go_mod(start_points: Sequence[Path] | None = None) -> Path:
    """Locate ``tools/helm/go.mod`` (``CERTCTL_HELM_GOMOD`` wins)."""
    return locate_go_mod(GOMOD_RELATIVE_PATH, GOMOD_ENV, start_points)


def cache_root() -> Path:
    """The directory holding one sub-directory per built helm version."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return cache_base() / "helm"


def target(versions: HelmVersions) -> GoTarget:
    """The build of ``cmd/helm``, linked the way helm's own release build links it.

    The version variables make ``helm version`` report the real release, and
    the Kubernetes version helm assumes without a cluster (``helm template``,
    ``helm lint``) is the one its client-go speaks, not helm's fallback 1.20.
    """
    major, minor = versions.kubernetes
    flags = ["-s -w"]
    flags += [
        f"-X {HELM_MODULE}/internal/version.version={versions.helm}",
        f"-X {HELM_MODULE}/internal/version.metadata=",
        f"-X {HELM_MODULE}/internal/version.gitTreeState=clean",
    ]
    for package in ("pkg/lint/rules", "pkg/chartutil"):
        flags += [
            f"-X {HELM_MODULE}/{package}.k8sVersionMajor={major}",
            f"-X {HELM_MODULE}/{package}.k8sVersionMinor={minor}",
        ]
    return GoTarget("helm", HELM_PACKAGE, " ".join(flags), "version")


def ensure_helm(
    progress: Progress = print,
    *,
    go_mod: Path | None = None,
    cache_dir: Path | None = None,
    go: str = "go",
    heartbeat: float = HEARTBEAT_SECONDS,
) -> Helm:
    """Return the cached helm, building it when it is missing.

    ``progress`` receives one line per event while building (nothing when the
    cache is warm). ``cache_dir`` replaces the cache *root*; the versioned
    sub-directory is always added. ``CERTCTL_HELM`` short-cuts everything.
    """
    override = os.environ.get(HELM_ENV)
    if override:
        path = Path(override).expanduser()
        if not is_executable(path):
            raise HelmError(f"{HELM_ENV}={override} is not an executable file")
        return Helm(path=path, version="(from $" + HELM_ENV + ")")
    go_mod = go_mod or find_go_mod()
    versions = parse_go_mod(go_mod.read_text())
    directory = (cache_dir or cache_root()) / versions.helm
    path = directory / "helm"
    if not is_executable(path):
        with build_lock(directory.with_name(f"{versions.helm}.lock"), f"helm {versions.helm}", progress):
            directory.mkdir(parents=True, exist_ok=True)
            for stale in directory.glob(".*.partial"):
                stale.unlink(missing_ok=True)
            if not is_executable(path):
                go_build(target(versions), path, go_mod.parent, go, progress, heartbeat)
    return Helm(path=path, version=versions.helm)


def main(argv: Sequence[str] | None = None) -> int:
    """Build (when needed) and print helm's path."""
    parser = argparse.ArgumentParser(
        prog="python -m certctl_operator.dev.helm",
        description="Build and cache the helm CLI used by the chart's tests and manifest rendering.",
    )
    parser.parse_args(argv)
    started = time.monotonic()
    try:
        helm = ensure_helm()
    except BinariesError as exc:
        parser.exit(1, f"error: {exc}\n")
    print(f"helm {helm.path}")
    print(f"version {helm.version} (ready in {time.monotonic() - started:.2f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
