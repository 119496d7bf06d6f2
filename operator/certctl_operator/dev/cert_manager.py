"""cert-manager for side-by-side measurements: its CRDs and its controller, built from source.

The CRDs come from cert-manager's main Go module (``go mod download`` puts
it into Go's module cache; ``deploy/crds/`` holds them as plain YAML).

The controller's entry point ``cmd/controller`` is a Go module of its own
that the module proxy does not serve, so it is built from the repository at
a release tag: a checkout or git repository named by the caller, or else a
shallow ``git clone`` of the tag. The source is copied (``git archive`` of the
tag, or the checkout's files) into a temporary directory inside the cache,
patched there and built with ``GOFLAGS=-mod=mod``, so dependencies come from
``GOPROXY``; the caller's checkout is never modified.

The patch leaves out the Venafi issuer: its client library
``github.com/Venafi/vcert/v5`` is not served by the module proxy. Every import
of a Venafi package outside those packages is removed; where a named import
was used only for a controller-name constant, the constant's literal is put
in its place. The build fails loudly when a later release uses those
packages in any other way.

The binary is cached under ``~/.cache/certctl-operator/cert-manager/<version>/``
(``CERTCTL_CERT_MANAGER_CACHE`` replaces the root), linked into a temporary
file and renamed into place; a file lock makes concurrent callers wait for
one build.

``python -m certctl_operator.dev.cert_manager [--source PATH] [--version V]``
builds (when needed) and prints the controller's path.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certctl_operator.dev.binaries import build_lock, cache_base, format_elapsed, is_executable
from certctl_operator.dev.controlplane import apply_crd_manifests, load_manifests
from certctl_operator.dev.processes import spawn, terminate

CERT_MANAGER_MODULE = "github.com/cert-manager/cert-manager"
CERT_MANAGER_VERSION = "v1.21.2"
CERT_MANAGER_REPOSITORY = "https://github.com/cert-manager/cert-manager"
CACHE_ENV = "CERTCTL_CERT_MANAGER_CACHE"

CRD_FILES = (
    "cert-manager.io_certificates.yaml",
    "cert-manager.io_certificaterequests.yaml",
    "cert-manager.io_issuers.yaml",
    "cert-manager.io_clusterissuers.yaml",
    "acme.cert-manager.io_orders.yaml",
    "acme.cert-manager.io_challenges.yaml",
)
"""Every CRD the controller's informers watch; it waits for all of them at start."""

VENAFI_PACKAGES = (
    "pkg/issuer/venafi",
    "pkg/controller/certificaterequests/venafi",
    "pkg/controller/certificatesigningrequests/venafi",
)
"""Packages (relative to the main module) that import the unavailable vcert library."""

# Directories of a checkout that are never part of the Go build: git's data
# and the tool binaries cert-manager's Makefile downloads (gigabytes).
_IGNORED_IN_CHECKOUT = (".git", "_bin", "_artifacts")

HEARTBEAT_SECONDS = 30.0

Progress = Callable[[str], None]


class CertManagerError(RuntimeError):
    """cert-manager's source, CRDs or controller could not be obtained or built."""


@dataclass(frozen=True)
class CertManagerController:
    """A ready-to-run cert-manager controller binary."""

    path: Path
    version: str
    left_out: tuple[str, ...]
    """Go packages the build left out (the Venafi issuer)."""


# --------------------------------------------------------------------------- CRDs


def _go() -> str:
    return shutil.which("go") or "/usr/local/go/bin/go"


def crd_dir(version: str = CERT_MANAGER_VERSION) -> Path:
    """``deploy/crds`` of cert-manager's main module at ``version`` (downloaded when not cached)."""
    result = subprocess.run(
        [_go(), "mod", "download", "-json", f"{CERT_MANAGER_MODULE}@{version}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Dir" not in info:
        raise CertManagerError(
            f"go mod download {CERT_MANAGER_MODULE}@{version} failed: {info.get('Error') or result.stderr}"
        )
    return Path(info["Dir"]) / "deploy" / "crds"


def crd_paths(version: str = CERT_MANAGER_VERSION, names: Iterable[str] = CRD_FILES) -> list[Path]:
    """The named CRD files of ``version``, checked to be plain YAML (not Helm templates)."""
    crds = crd_dir(version)
    paths = [crds / name for name in names]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise CertManagerError(f"{crds} lacks {', '.join(missing)}")
    for path in paths:
        if "{{" in path.read_text():
            raise CertManagerError(f"{path} is Helm-templated; render it before applying")
    return paths


def apply_crds(
    kubeconfig: Path, version: str = CERT_MANAGER_VERSION, names: Iterable[str] = CRD_FILES
) -> list[str]:
    """Apply cert-manager's CRDs (all the controller needs, by default); wait until Established."""
    documents = [document for _, document in load_manifests(crd_paths(version, names))]
    return apply_crd_manifests(kubeconfig, documents, timeout=120)


# --------------------------------------------------------------------------- the Venafi patch


_IMPORT_LINE_RE = r'^[ \t]*(?P<alias>[A-Za-z_][A-Za-z0-9_]*|_|\.)?[ \t]*"{path}"[ \t]*\n'


_STRING_CONSTANT_RE = re.compile(
    r'^\s*(?:const\s+)?([A-Z][A-Za-z0-9_]*)\s*(?:string\s*)?=\s*("[^"\n]*")', re.M
)


def constant_literals(go_sources: Iterable[str]) -> dict[str, str]:
    """Top-level string constants ``Name = "literal"`` found in Go source texts."""
    constants: dict[str, str] = {}
    for text in go_sources:
        for match in _STRING_CONSTANT_RE.finditer(text):
            constants.setdefault(match.group(1), match.group(2))
    return constants


def drop_package_imports(text: str, import_path: str, constants: dict[str, str]) -> str:
    """Remove the import of ``import_path`` from a Go file's text.

    A blank import just goes. A named import may only have been used for
    string constants, whose literals (from ``constants``) replace the
    references; any other use raises :class:`CertManagerError`.
    """
    pattern = re.compile(_IMPORT_LINE_RE.format(path=re.escape(import_path)), re.M)
    match = pattern.search(text)
    if match is None:
        return text
    alias = match.group("alias") or import_path.rsplit("/", 1)[-1]
    text = text[: match.start()] + text[match.end() :]
    if alias == "_":
        return text
    if alias == ".":
        raise CertManagerError(f"dot import of {import_path} cannot be removed")

    def literal(reference: re.Match[str]) -> str:
        name = reference.group(1)
        if name not in constants:
            raise CertManagerError(f"{alias}.{name} of {import_path} is not a string constant")
        return constants[name]

    text = re.sub(rf"\b{re.escape(alias)}\.([A-Za-z_][A-Za-z0-9_]*)", literal, text)
    return text


def leave_out_venafi(source: Path, module: str = CERT_MANAGER_MODULE) -> list[Path]:
    """Remove every use of the Venafi packages from the Go files of a source copy; return the edited files.

    Files inside the Venafi packages themselves, tests and the end-to-end
    test module are not part of the controller's build and stay as they are.
    """
    venafi_dirs = [source / package for package in VENAFI_PACKAGES]
    constants = {
        package: constant_literals(
            path.read_text()
            for path in sorted((source / package).glob("*.go"))
            if not path.name.endswith("_test.go")
        )
        for package in VENAFI_PACKAGES
    }
    edited: list[Path] = []
    for directory in (source / "cmd" / "controller", source / "pkg", source / "internal"):
        for path in sorted(directory.rglob("*.go")):
            if path.name.endswith("_test.go") or any(path.is_relative_to(v) for v in venafi_dirs):
                continue
            original = path.read_text()
            if 'venafi"' not in original:
                continue
            text = original
            for package in VENAFI_PACKAGES:
                text = drop_package_imports(text, f"{module}/{package}", constants[package])
            if text != original:
                path.write_text(text)
                edited.append(path)
    if not edited:
        raise CertManagerError(
            f"no Go file under {source} imports the Venafi packages; has the layout changed?"
        )
    return edited


# --------------------------------------------------------------------------- source


def _git(args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False, **kwargs)


def _tag_commit(repository: Path, version: str) -> str | None:
    result = _git(
        ["-C", str(repository), "rev-parse", "--verify", "--quiet", f"refs/tags/{version}^{{commit}}"]
    )
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def _export_tag(repository: Path, version: str, into: Path) -> None:
    archive = into.with_name(f"{into.name}.tar")
    with archive.open("wb") as out:
        result = subprocess.run(
            ["git", "-C", str(repository), "archive", "--format=tar", f"refs/tags/{version}"],
            stdout=out,
            stderr=subprocess.PIPE,
            check=False,
        )
    try:
        if result.returncode != 0:
            raise CertManagerError(f"git archive {version} in {repository} failed: {result.stderr.decode()}")
        into.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    finally:
        archive.unlink(missing_ok=True)


def copy_source(version: str, into: Path, source: Path | None, progress: Progress) -> str:
    """Put cert-manager's source at ``version`` into ``into``; return where it came from.

    ``source`` may be a git repository (bare or not) holding the tag, which is
    exported with ``git archive``, or a checkout whose files are copied as
    they are. Without ``source`` the tag is cloned from GitHub.
    """
    if source is not None:
        source = source.expanduser().resolve()
        if not source.is_dir():
            raise CertManagerError(f"cert-manager source {source} is not a directory")
        commit = _tag_commit(source, version)
        if commit is not None:
            progress(f"exporting cert-manager {version} ({commit[:12]}) from {source}")
            _export_tag(source, version, into)
            return f"tag {version} ({commit[:12]}) of {source}"
        if _is_git_repository(source) and not (source / "cmd" / "controller" / "go.mod").is_file():
            tags = _git(["-C", str(source), "tag", "--list", "v*", "--sort=-version:refname"]).stdout.split()
            newest = ", ".join(tags[:5]) or "none"
            raise CertManagerError(f"{source} has no tag {version} (its newest: {newest})")
        if not (source / "cmd" / "controller" / "go.mod").is_file():
            raise CertManagerError(f"{source} is not a cert-manager checkout (no cmd/controller/go.mod)")
        progress(
            f"copying the cert-manager checkout {source} (its tag cannot be checked; taken as {version})"
        )
        shutil.copytree(source, into, symlinks=True, ignore=shutil.ignore_patterns(*_IGNORED_IN_CHECKOUT))
        return f"checkout {source}"
    progress(f"cloning {CERT_MANAGER_REPOSITORY} at {version}")
    result = _git(
        ["clone", "--quiet", "--depth", "1", "--branch", version, CERT_MANAGER_REPOSITORY, str(into)],
        timeout=900,
    )
    if result.returncode != 0:
        raise CertManagerError(
            f"git clone of {CERT_MANAGER_REPOSITORY} at {version} failed ({result.stderr.strip()}); "
            "pass a checkout or git repository holding the tag as the cert-manager source"
        )
    return f"clone of {CERT_MANAGER_REPOSITORY} at {version}"


def _is_git_repository(path: Path) -> bool:
    return _git(["-C", str(path), "rev-parse", "--git-dir"]).returncode == 0


# --------------------------------------------------------------------------- building


def cache_root() -> Path:
    """The directory holding one sub-directory per built cert-manager version."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return cache_base() / "cert-manager"


def build_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment (``GOPROXY`` included) with ``-mod=mod`` added to ``GOFLAGS``."""
    env = dict(os.environ if environ is None else environ)
    flags = [flag for flag in env.get("GOFLAGS", "").split() if not flag.startswith("-mod=")]
    env["GOFLAGS"] = " ".join([*flags, "-mod=mod"])
    env["GOWORK"] = "off"
    return env


def _go_build(module_dir: Path, output: Path, ldflags: str, log_path: Path, progress: Progress) -> None:
    command = [_go(), "build", "-trimpath", "-v", "-ldflags", ldflags, "-o", str(output), "."]
    started = time.monotonic()
    with log_path.open("w") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        proc = spawn(command, stdout=log, stderr=subprocess.STDOUT, cwd=module_dir, env=build_environment())
        try:
            while True:
                try:
                    returncode = proc.wait(timeout=HEARTBEAT_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    lines = sum(1 for _ in log_path.open())
                    progress(
                        f"still building cert-manager's controller "
                        f"({format_elapsed(time.monotonic() - started)}, {lines} log lines)..."
                    )
        finally:
            terminate(proc, grace=5.0)
    if returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise CertManagerError(
            f"go build of cert-manager's controller failed with exit status {returncode} "
            f"(full log: {log_path}); last lines:\n{tail}"
        )


def ensure_controller(
    version: str = CERT_MANAGER_VERSION,
    *,
    source: Path | None = None,
    cache_dir: Path | None = None,
    progress: Progress = print,
) -> CertManagerController:
    """Return the cached cert-manager controller of ``version``, building it when missing.

    ``source`` is a checkout or git repository of cert-manager (see
    :func:`copy_source`); it is only read when a build is needed.
    """
    directory = (cache_dir or cache_root()) / version
    binary = directory / "controller"
    left_out = tuple(f"{CERT_MANAGER_MODULE}/{package}" for package in VENAFI_PACKAGES)
    if is_executable(binary):
        return CertManagerController(binary, version, left_out)
    with build_lock(directory.with_name(f"{version}.lock"), f"cert-manager {version}", progress):
        if is_executable(binary):
            return CertManagerController(binary, version, left_out)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in [*directory.glob("source.*"), *directory.glob(".controller.*.partial")]:
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        copy = directory / f"source.{os.getpid()}"
        partial = directory / f".controller.{os.getpid()}.partial"
        started = time.monotonic()
        try:
            origin = copy_source(version, copy, source, progress)
            edited = leave_out_venafi(copy)
            progress(
                "left out the Venafi issuer (github.com/Venafi/vcert/v5 is not on the module proxy): "
                + ", ".join(str(path.relative_to(copy)) for path in edited)
            )
            version_pkg = f"{CERT_MANAGER_MODULE}/pkg/util"
            ldflags = f"-s -w -X {version_pkg}.AppVersion={version}"
            progress(f"building cert-manager's controller {version} (minutes if Go's build cache is cold)...")
            _go_build(copy / "cmd" / "controller", partial, ldflags, directory / "build.log", progress)
            _probe(partial)
            (directory / "source.txt").write_text(
                f"{origin}\nleft out: {', '.join(left_out)}\npatched: "
                + ", ".join(str(path.relative_to(copy)) for path in edited)
                + "\n"
            )
            partial.replace(binary)
        finally:
            partial.unlink(missing_ok=True)
            shutil.rmtree(copy, ignore_errors=True)
        progress(f"built cert-manager's controller {version} in {format_elapsed(time.monotonic() - started)}")
    return CertManagerController(binary, version, left_out)


def _probe(binary: Path) -> None:
    try:
        subprocess.run([str(binary), "--help"], capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise CertManagerError(f"freshly built cert-manager controller does not run: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Build (when needed) and print the cert-manager controller's path."""
    parser = argparse.ArgumentParser(
        prog="python -m certctl_operator.dev.cert_manager",
        description="Build and cache cert-manager's controller from a release tag.",
    )
    parser.add_argument("--version", default=CERT_MANAGER_VERSION, help="release tag (default %(default)s)")
    parser.add_argument(
        "--source", type=Path, help="a cert-manager checkout or git repository holding the tag"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        controller = ensure_controller(args.version, source=args.source)
    except CertManagerError as exc:
        parser.exit(1, f"error: {exc}\n")
    print(f"controller {controller.path}")
    print(f"version    {controller.version} (ready in {time.monotonic() - started:.2f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
