"""Pebble, the ACME test CA, and pebble-challtestsrv, built from Go modules for the ACME tests.

Both programs are compiled by ``go build`` inside the helper module
``tools/pebble`` and cached outside the checkout, under
``~/.cache/certctl-operator/pebble/<version>/``, exactly like helm
(:mod:`certctl_operator.dev.helm`) and the control plane
(:mod:`certctl_operator.dev.binaries`, whose build, lock and progress helpers
this module reuses). The version is read from the helper module's ``go.mod``,
so bumping it there builds anew.

* ``CERTCTL_PEBBLE_CACHE`` replaces the cache root directory.
* ``CERTCTL_PEBBLE_GOMOD`` names the helper module's ``go.mod`` (or its
  directory) when it cannot be found by searching upward.

``python -m certctl_operator.dev.pebble`` builds (when needed) and prints the paths.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
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

PEBBLE_MODULE = "github.com/letsencrypt/pebble/v2"
CACHE_ENV = "CERTCTL_PEBBLE_CACHE"
GOMOD_ENV = "CERTCTL_PEBBLE_GOMOD"
GOMOD_RELATIVE_PATH = Path("tools/pebble/go.mod")


class PebbleBuildError(BinariesError):
    """Pebble could not be located or built."""


@dataclass(frozen=True)
class PebbleBinaries:
    """Ready-to-run pebble and pebble-challtestsrv binaries of one version."""

    pebble: Path
    challtestsrv: Path
    version: str


def parse_go_mod(text: str) -> str:
    """Pebble's version out of the helper module's ``go.mod`` text."""
    version = parse_go_requirements(text).get(PEBBLE_MODULE)
    if not version:
        raise PebbleBuildError(f"go.mod does not require {PEBBLE_MODULE}")
    return version


def find_go_mod(start_points: Sequence[Path] | None = None) -> Path:
    """Locate ``tools/pebble/go.mod`` (``CERTCTL_PEBBLE_GOMOD`` wins)."""
    return locate_go_mod(GOMOD_RELATIVE_PATH, GOMOD_ENV, start_points)


def cache_root() -> Path:
    """The directory holding one sub-directory per built Pebble version."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return cache_base() / "pebble"


def targets(version: str) -> tuple[GoTarget, GoTarget]:
    """The builds of ``cmd/pebble`` (reporting its release version) and ``cmd/pebble-challtestsrv``."""
    pebble = GoTarget("pebble", f"{PEBBLE_MODULE}/cmd/pebble", f"-s -w -X main.version={version}", "-version")
    # challtestsrv has no version flag; -h exits 0 and proves the binary runs.
    challtestsrv = GoTarget("pebble-challtestsrv", f"{PEBBLE_MODULE}/cmd/pebble-challtestsrv", "-s -w", "-h")
    return pebble, challtestsrv


def ensure_pebble(
    progress: Progress = print,
    *,
    go_mod: Path | None = None,
    cache_dir: Path | None = None,
    go: str = "go",
    heartbeat: float = HEARTBEAT_SECONDS,
) -> PebbleBinaries:
    """Return the cached binaries, building the missing ones under a file lock."""
    go_mod = go_mod or find_go_mod()
    version = parse_go_mod(go_mod.read_text())
    directory = (cache_dir or cache_root()) / version
    wanted = targets(version)
    paths = tuple(directory / target.name for target in wanted)
    if not all(is_executable(path) for path in paths):
        with build_lock(directory.with_name(f"{version}.lock"), f"pebble {version}", progress):
            directory.mkdir(parents=True, exist_ok=True)
            for stale in directory.glob(".*.partial"):
                stale.unlink(missing_ok=True)
            for target, path in zip(wanted, paths, strict=True):
                if not is_executable(path):
                    go_build(target, path, go_mod.parent, go, progress, heartbeat)
    return PebbleBinaries(pebble=paths[0], challtestsrv=paths[1], version=version)


def main(argv: Sequence[str] | None = None) -> int:
    """Build (when needed) and print the binaries' paths."""
    parser = argparse.ArgumentParser(
        prog="python -m certctl_operator.dev.pebble",
        description="Build and cache Pebble and pebble-challtestsrv for the ACME tests.",
    )
    parser.parse_args(argv)
    started = time.monotonic()
    try:
        binaries = ensure_pebble()
    except BinariesError as exc:
        parser.exit(1, f"error: {exc}\n")
    print(f"pebble {binaries.pebble}")
    print(f"pebble-challtestsrv {binaries.challtestsrv}")
    print(f"version {binaries.version} (ready in {time.monotonic() - started:.2f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
